/* idx.h — reading IDX files (the MNIST / Fashion-MNIST format), raw or
 * gzip-compressed (zlib reads both): unsigned-byte image arrays
 * (magic 0x00000803, N x rows x cols) and label vectors (0x00000801, N). */
#ifndef DV2_IDX_H
#define DV2_IDX_H

#include <stddef.h>
#include <stdint.h>
#include "core/dv2.h"

#define DV2_IDX_MAX_ITEMS 100000000u
#define DV2_IDX_MAX_SIDE 4096u

typedef struct dv2_idx_images {
    uint32_t n, rows, cols;
    uint8_t *pixels; /* n*rows*cols bytes, image i at pixels + i*rows*cols */
} dv2_idx_images;

int dv2_idx_read_images(dv2_idx_images *im, const char *path, dv2_error *err);
void dv2_idx_images_free(dv2_idx_images *im);
/* *labels is malloc'd (n bytes). */
int dv2_idx_read_labels(uint8_t **labels, uint32_t *n, const char *path, dv2_error *err);
/* Number of items an IDX file declares (header only), 0 if unreadable. */
uint32_t dv2_idx_count(const char *path);
/* 1 if path's (decompressed) content starts with an IDX unsigned-byte magic. */
int dv2_idx_sniff(const char *path);

#endif
