/* fuzz_idx.c — libFuzzer target for the IDX (MNIST format) readers: the
 * input is a file read as images, as labels, counted and sniffed (raw or
 * gzip-compressed).  Errors are the expected outcome; any crash, sanitizer
 * report, leak or hang is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "format/idx.h"
#include "memfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dv2_error err;
    char path[64];
    volatile size_t sink = 0;
    int fd = memfile(path, sizeof path, data, size);
    dv2_idx_images im;
    if (dv2_idx_read_images(&im, path, &err) == 0) {
        sink += (size_t)im.n * im.rows * im.cols ? im.pixels[0] : 0;
        dv2_idx_images_free(&im);
    }
    uint8_t *labels = NULL;
    uint32_t n = 0;
    if (dv2_idx_read_labels(&labels, &n, path, &err) == 0) {
        sink += n ? labels[n - 1] : 0;
        free(labels);
    }
    sink += dv2_idx_count(path) + (size_t)dv2_idx_sniff(path);
    close(fd);
    (void)sink;
    return 0;
}
