/* uf.h — disjoint sets over rows 0..n-1 (the connected components of
 * the thresholded k-NN graph in dv2-dedup).
 *
 * The root of every set is its smallest row: a union links the root with the
 * larger row under the one with the smaller row.  So the representative of a
 * component does not depend on the order in which edges arrive (one process
 * or many, any block order), and dv2_uf_find(x) is the first row of x's
 * component in pool order.  Finds halve paths; memory is 8 bytes per row. */
#ifndef DV2_UNIONFIND_H
#define DV2_UNIONFIND_H

#include <stdint.h>
#include "core/dv2.h"

typedef struct dv2_uf {
    int64_t n;
    int64_t *parent;
} dv2_uf;

/* Every row its own set.  DV2_ENOMEM if the array cannot be allocated. */
int dv2_uf_init(dv2_uf *uf, int64_t n, dv2_error *err);
void dv2_uf_free(dv2_uf *uf);
/* The smallest row of a's set. */
int64_t dv2_uf_find(dv2_uf *uf, int64_t a);
/* Joins the sets of a and b; returns 1 if they were separate, 0 if not. */
int dv2_uf_union(dv2_uf *uf, int64_t a, int64_t b);
/* Points every row straight at its root (after all unions); then
 * uf->parent[i] is the root of i. */
void dv2_uf_flatten(dv2_uf *uf);

#endif
