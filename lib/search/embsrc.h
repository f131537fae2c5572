/* embsrc.h — an embedding matrix (lib/format/matrix.h) opened as a search source
 * (lib/search/knn.h dv2_vecsrc) for dv2-dedup and dv2-retrieve.
 *
 * An uncompressed matrix on a regular file is memory-mapped, float32 or
 * float16: rows are converted to float32 and normalised block by block as the
 * search reads them, so a pool larger than RAM is searched through the page
 * cache and the only per-row memory is the ids and labels (12 bytes a row).
 * A compressed matrix or a pipe is loaded whole (dv2_matrix_load, float32).
 * A NaN or infinite vector is an error naming the file, row and id. */
#ifndef DV2_EMBSRC_H
#define DV2_EMBSRC_H

#include <stddef.h>
#include <stdint.h>
#include "core/dv2.h"
#include "search/knn.h"
#include "format/matrix.h"

typedef struct dv2_embsrc {
    dv2_vecsrc src;        /* rows of this matrix; src.ctx points back here */
    const char *name;      /* the path given (not copied) */
    dv2_matrix_info info;
    int64_t n;
    int dim;
    const uint64_t *ids;   /* n entries */
    const int32_t *labels; /* n entries */
    int mapped;            /* 1: vectors read from the mapping */
    /* private */
    dv2_matrix m_;         /* loaded whole (not mapped f16) */
    void *map_;
    size_t map_len_;
    const uint8_t *rows_;
    size_t row_bytes_;
    uint64_t *own_ids_;
    int32_t *own_labels_;
} dv2_embsrc;

/* Opens path ("-" = stdin).  e must not move afterwards (src.ctx points at it). */
int dv2_embsrc_open(dv2_embsrc *e, const char *path, dv2_error *err);
void dv2_embsrc_close(dv2_embsrc *e);

#endif
