/* fuzz_image.c — libFuzzer target for the image decoders (JPEG, PNG, PNM):
 * the input is sniffed, its header read, and when the header says it is
 * small it is decoded; the decoded size must agree with the header.
 * Errors are the expected outcome; any crash, sanitizer report, leak or
 * hang is a bug. */
#include <stdint.h>
#include <stdlib.h>

#include "image/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dv2_error err;
    int w = 0, h = 0, fmt = 0;
    (void)dv2_image_sniff(data, size);
    if (dv2_image_info(&w, &h, &fmt, data, size, &err) != 0) return 0;
    if ((long)w * h > (1 << 20)) return 0; /* decoding huge images only measures speed */
    dv2_image img;
    dv2_image_init(&img);
    if (dv2_image_decode(&img, data, size, &err) == 0 && (img.w != w || img.h != h)) __builtin_trap();
    dv2_image_free(&img);
    return 0;
}
