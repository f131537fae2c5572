/* fuzz_json.c — libFuzzer target for the strict JSON parser: the input is
 * parsed, with and without a node limit, and the tree is walked (keys,
 * strings, numbers).  Errors are the expected outcome; any crash,
 * sanitizer report, leak or hang is a bug. */
#include <stdint.h>
#include <string.h>

#include "core/json.h"

static size_t walk(const dv2_json *v, int depth) {
    size_t s = 1;
    int64_t i;
    if (depth > 200) return s;
    if (dv2_json_type(v) == DV2_JSON_STRING) s += strlen(dv2_json_str(v));
    if (dv2_json_int(v, &i) == 0) s += (size_t)(i & 1);
    if (dv2_json_type(v) == DV2_JSON_OBJECT || dv2_json_type(v) == DV2_JSON_ARRAY)
        for (size_t k = 0; k < dv2_json_len(v); k++) {
            if (dv2_json_type(v) == DV2_JSON_OBJECT) s += dv2_json_get(v, dv2_json_key(v, k)) != NULL;
            s += walk(dv2_json_at(v, k), depth + 1);
        }
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dv2_error err;
    volatile size_t sink = 0;
    for (size_t lim = 0; lim < 2; lim++) {
        dv2_json_doc *d = NULL;
        if (dv2_json_parse(&d, (const char *)data, size, lim ? 64 : 0, &err) == 0) {
            sink += walk(dv2_json_root(d), 0);
            dv2_json_free(d);
        }
    }
    (void)sink;
    return 0;
}
