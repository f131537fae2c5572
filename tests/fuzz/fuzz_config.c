/* fuzz_config.c — libFuzzer target for the training-config parser: the
 * input is parsed as a config file over the defaults, validated, written
 * back, and its first line is also applied as a key=value override.
 * Errors are the expected outcome; any crash, sanitizer report, leak or
 * hang is a bug. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dv2_error err;
    dv2_config c;
    dv2_config_defaults(&c);
    if (dv2_config_parse(&c, (const char *)data, size, "fuzz", &err) == 0 && dv2_config_validate(&c, &err) == 0) {
        FILE *f = fopen("/dev/null", "w");
        if (f) {
            dv2_config_write(&c, f);
            fclose(f);
        }
    }
    size_t n = 0;
    while (n < size && data[n] != '\n' && data[n] != 0) n++;
    char *line = malloc(n + 1);
    if (!line) return 0;
    memcpy(line, data, n);
    line[n] = 0;
    dv2_config_defaults(&c);
    (void)dv2_config_override(&c, line, &err);
    free(line);
    return 0;
}
