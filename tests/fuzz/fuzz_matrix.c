/* fuzz_matrix.c — libFuzzer target for the embedding-matrix readers: the
 * input bytes are a matrix file (plain or zstd), read row by row by the
 * streaming reader and whole by dv2_matrix_load; the first 4096 bytes are
 * also decoded as a header alone.  Errors are the expected outcome; any
 * crash, sanitizer report, leak or hang is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "format/matrix.h"
#include "memfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dv2_error err;
    char path[64];
    volatile size_t sink = 0;
    int fd = memfile(path, sizeof path, data, size);
    dv2_matrix_reader *r = NULL;
    if (dv2_matrix_reader_open(&r, path, &err) == 0) {
        const dv2_matrix_info *info = dv2_matrix_reader_info(r);
        size_t dim = info->dim, cap = 16;
        if (dim <= (1u << 16)) {
            uint64_t ids[16];
            int32_t labels[16];
            float *v = malloc(cap * (dim ? dim : 1) * sizeof *v);
            int64_t k;
            while (v && (k = dv2_matrix_reader_read(r, ids, labels, v, cap, &err)) > 0) sink += (size_t)k;
            free(v);
        }
    }
    dv2_matrix_reader_close(r);
    dv2_matrix m;
    if (dv2_matrix_load(&m, path, 0, &err) == 0) sink += m.rows;
    dv2_matrix_free(&m);
    close(fd);
    if (size >= 4096) {
        dv2_matrix_info info;
        if (dv2_matrix_header_decode(&info, data, "header", &err) == 0) sink += info.dim;
    }
    (void)sink;
    return 0;
}
