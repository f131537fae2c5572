/* dedup.h — copy-detection deduplication as in DINOv2 (App. A.3):
 *
 *   1. the k nearest pool neighbours of every pool image by cosine (k = 64);
 *   2. keep the edges with similarity > threshold (0.6);
 *   3. connected components of that graph with union-find;
 *   4. keep one representative per component.
 *   Optional score normalisation (the margin, after SSCD's background
 *   normalisation): an edge i-j is kept only when its similarity also
 *   exceeds by `margin` the similarity of the margin_rank-th nearest pool
 *   neighbour of i and of j, so an image in a dense region of the
 *   descriptor space (many near-identical non-copies) needs a match that
 *   stands out from its neighbourhood, and such regions are not chained
 *   into one component.  Leakage likewise: an image leaks only if its best
 *   similarity to the against sets also beats its own background by the
 *   margin.
 *   Leakage removal: every component that holds an image whose similarity to
 *   any image of the "against" sets (evaluation sets) is > against_threshold
 *   (0.45) is dropped whole.
 *
 * Representative rule (deterministic): the member that comes first in the
 * pool (lowest row: the first input matrix first, then row order).  Putting
 * the preferred source first on the command line keeps its copies.
 *
 * The work is split in two so that it can be distributed (lib/core/dist.h):
 *   dv2_dedup_search   searches the pool rows [q0, q1) against the whole pool
 *                      (and the against sets), streaming queries in blocks;
 *                      it unions edges into a full-size union-find as it goes,
 *                      so edges are never stored;
 *   dv2_dedup_merge    combines the partial results of all ranks (links of the
 *                      local forests, best and leakage similarities) and
 *                      classifies every row.
 * Because components and the min-row representative do not depend on edge
 * order, R processes give exactly the output of one. */
#ifndef DV2_DEDUP_H
#define DV2_DEDUP_H

#include <stdint.h>
#include "core/dv2.h"
#include "core/dist.h"
#include "search/knn.h"
#include "curate/uf.h"

enum { DV2_DEDUP_KEPT = 0, DV2_DEDUP_COPY = 1, DV2_DEDUP_LEAK = 2 };

typedef struct dv2_dedup_params {
    int k;                    /* neighbours per image (64) */
    float threshold;          /* edge if similarity > threshold (0.6) */
    float against_threshold;  /* leakage if similarity > this (0.45) */
    int margin_on;            /* 1: keep an edge only if it beats both ends' background by margin */
    float margin;             /* by how much (e.g. 0.05) */
    int margin_rank;          /* background: the similarity of this neighbour (10; <= k) */
    int64_t query_block;      /* pool rows searched at once (0: dv2_dedup_block) */
    dv2_knn_opts pool_knn;    /* backend for pool-vs-pool */
    dv2_knn_opts against_knn; /* backend for pool-vs-against */
    /* progress: called after each query block with rows done so far (may be NULL) */
    void (*progress)(void *ctx, int64_t done, int64_t total);
    void *progress_ctx;
} dv2_dedup_params;
void dv2_dedup_params_default(dv2_dedup_params *p);

/* Per-rank partial result. */
typedef struct dv2_dedup_part {
    int64_t n, q0, q1;   /* pool size and the searched rows */
    dv2_uf uf;           /* n rows, edges of rows q0..q1-1 */
    float *best_sim;     /* q1-q0: similarity of the nearest other pool image (-inf if none) */
    float *leak_sim;     /* q1-q0: best similarity to any against image (-inf if none) */
    int64_t *leak_row;   /* q1-q0: the against row of leak_sim (-1 if none) */
    int64_t edges;       /* edges above threshold found (with the margin: kept by it, after the merge) */
    /* with the margin: the background of rows q0..q1-1 and the edges above
     * threshold found from them, united only in dv2_dedup_merge once every
     * row's background is known */
    float *bg, margin;
    struct dv2_dedup_cand {
        int64_t a, b;
        float s;
    } *cand;
    int64_t ncand, capcand, dropped; /* dropped: candidates the margin removed */
} dv2_dedup_part;

/* The final classification of every pool row. */
typedef struct dv2_dedup_result {
    int64_t n;
    int64_t *root;       /* representative row of each row's component */
    int64_t *comp;       /* dense component number (0.. in order of representatives) */
    uint8_t *status;     /* DV2_DEDUP_KEPT / COPY / LEAK */
    float *best_sim;     /* as in dv2_dedup_part, for all rows */
    float *leak_sim;
    int64_t *leak_row;
    int64_t kept, copies, leaked, components, multi_components, largest, edges;
    int64_t margin_dropped;  /* edges above threshold that the margin removed */
    float *bg;               /* with the margin: every row's background, else NULL */
    float margin;            /* with the margin: by how much */
} dv2_dedup_result;

/* The query block in effect: query_block, or 1024 rows for the exact CPU
 * search (its similarity tile is block × 8192 floats) and 65536 for FAISS
 * and the GPU. */
int64_t dv2_dedup_block(const dv2_dedup_params *p);

/* The rows [q0, q1) this rank searches out of n: contiguous ranges of whole
 * query blocks, so every rank issues the same BLAS calls a single process
 * would. */
void dv2_dedup_split(int64_t n, int64_t query_block, int rank, int world, int64_t *q0, int64_t *q1);

/* Searches pool rows [q0, q1).  against may be NULL (no leakage removal). */
int dv2_dedup_search(dv2_dedup_part *part, const dv2_vecsrc *pool, const dv2_vecsrc *against,
                     int64_t q0, int64_t q1, const dv2_dedup_params *p, dv2_error *err);
void dv2_dedup_part_free(dv2_dedup_part *part);

/* Combines the parts of all ranks (collectives of d; every rank calls it and
 * every rank gets the full result). */
int dv2_dedup_merge(dv2_dedup_result *res, dv2_dedup_part *part, const dv2_dist *d,
                    float against_threshold, dv2_error *err);
void dv2_dedup_result_free(dv2_dedup_result *res);

/* The median over the rows of the similarity to the nearest other pool
 * image (rows without one left out; -inf when none has one).  Above
 * DV2_DEDUP_DEGENERATE the features do not tell images apart (a constant
 * vector, a random-init class token) and the dedup is meaningless. */
#define DV2_DEDUP_DEGENERATE 0.999f
float dv2_dedup_median_nn(const dv2_dedup_result *res);

#endif
