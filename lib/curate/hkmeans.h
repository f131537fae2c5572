/* hkmeans.h — hierarchical k-means and hierarchical balanced sampling, the
 * curation of Vo et al. 2024 ("Automatic data curation for self-supervised
 * learning: a clustering-based approach"), for dv2-hkmeans.
 *
 * Building (bottom-up): level 1 clusters the pool vectors, level t clusters
 * the centroids of level t-1 (squared L2 k-means with k-means++ seeds and
 * GEMM assignment; see hkmeans.c for why not FAISS's k-means).  Within a level,
 * each resampling step takes `sample` points of every cluster (the closest
 * to its centroid, or random ones), re-runs k-means on that more balanced
 * subset and reassigns every input to the new centroids, so dense concepts
 * stop holding most of the centroids.  Each level is saved atomically to
 * DIR/level-L.hkm with its parameters and a hash of its input; a rerun with
 * the same input and parameters reuses it (resumable per level), anything
 * else recomputes it and the levels above.
 *
 * Sampling (top-down): a target size is split over the top clusters, then
 * over the children of each cluster, down to the points: at every node the
 * largest per-child cap x with sum(min(x, cap_i)) <= budget (cap_i the
 * child's size times the multiplier, 1 by default), the remainder
 * one each to random children above the cap; in a level-1 cluster the points
 * are taken at random or closest to the centroid first.  Sampling reads only
 * the saved tree, so it reruns with another target without clustering.
 *
 * Under MPI (dist with world > 1) every rank holds the whole input; the
 * nearest-centroid assignment, the O(n k dim) part, and the k-means++
 * seeding's distance updates are split across ranks by whole blocks of
 * rows, the same blocks one process uses, and merged exactly (each
 * assignment is settled in double, so the BLAS's threads do not matter);
 * everything else runs identically on every rank, so the tree is
 * byte-identical to one process.  Rank 0 writes the files.  The functions
 * never print. */
#ifndef DV2_HKMEANS_H
#define DV2_HKMEANS_H

#include <stdint.h>
#include "core/dist.h"
#include "core/dv2.h"

#define DV2_HKM_MAX_LEVELS 8

/* Progress of a level being built (rank 0 only): done of total units of
 * work (one unit: a point-to-centroid distance in the assignment GEMM; a
 * seed's scalar pass counts 28 per row; total is the most the level can
 * take, reached when it ends). */
typedef void (*dv2_hkm_progress_fn)(void *ctx, int level, uint64_t done, uint64_t total);

typedef struct dv2_hkm_params {
    int levels;
    int k[DV2_HKM_MAX_LEVELS];      /* clusters per level */
    int steps[DV2_HKM_MAX_LEVELS];  /* resampling steps per level (0 = plain k-means) */
    int sample[DV2_HKM_MAX_LEVELS]; /* points taken per cluster in a resampling step */
    int resample_closest;           /* 1: the closest points (the paper's "c"), 0: random ("r") */
    int niter;                      /* Lloyd iterations per k-means (default 50) */
    uint64_t seed;
    int force;                      /* recompute every level even if saved */
    dv2_hkm_progress_fn progress;   /* may be NULL */
    void *progress_ctx;
} dv2_hkm_params;

void dv2_hkm_params_default(dv2_hkm_params *p);

/* One level as saved: the inputs of level 1 are the pool rows, of level t
 * the centroids of level t-1. */
typedef struct dv2_hkm_level {
    int64_t n;          /* inputs */
    int k, dim;
    float *centroids;   /* k × dim */
    int32_t *assign;    /* n: cluster of each input */
    float *dist;        /* n: squared L2 distance to that centroid */
} dv2_hkm_level;

typedef struct dv2_hkm_tree {
    int levels;
    dv2_hkm_level lv[DV2_HKM_MAX_LEVELS];
    int64_t n;          /* pool rows */
    uint64_t *ids;      /* n: their ids */
} dv2_hkm_tree;

/* The k-means++ seeding of a level (its main k-means and every resampling
 * step): wall seconds, and the point-to-seed distances computed against the
 * n k of a plain pass (the rest were pruned; on this process's rows). */
typedef struct dv2_hkm_seed_stats {
    double seconds;
    int64_t computed, full;
} dv2_hkm_seed_stats;

/* What dv2_hkm_build reports after each level (1-based); reused = 1 when it
 * was loaded from DIR, and then only seconds is set. */
typedef struct dv2_hkm_level_info {
    int level, reused;
    double seconds;
    int64_t empty;      /* empty clusters after the last assignment */
    dv2_hkm_seed_stats seeding;
} dv2_hkm_level_info;

typedef void (*dv2_hkm_level_fn)(void *ctx, const dv2_hkm_level_info *info);

/* Builds (or resumes) the tree of x (n × dim, row-major, as stored) with
 * record ids in dir (created if missing).  dist may be NULL (one process);
 * otherwise every rank calls it with the same arguments. */
int dv2_hkm_build(const char *dir, const float *x, const uint64_t *ids, int64_t n, int dim,
                  const dv2_hkm_params *p, const dv2_dist *dist, dv2_hkm_level_fn cb, void *ctx,
                  dv2_error *err);

/* Loads the tree saved in dir (every level up to the last one present). */
int dv2_hkm_load(dv2_hkm_tree *t, const char *dir, dv2_error *err);
void dv2_hkm_tree_free(dv2_hkm_tree *t);

/* Hierarchical balanced sampling of min(target, n multiplier) pool rows.
 * closest: 1 takes the points of a level-1 cluster closest to its centroid
 * first, 0 at random (seeded).  multiplier (>= 1): the times one pool row
 * may be taken; every cluster's capacity is its size times it, and a
 * level-1 cluster given at least its size takes all its points once per
 * whole multiple, then the rest as above (the reference sampler's
 * multiplier).  *out (malloc'd, *nout entries) holds the pool ids in
 * ascending order, an id repeated as often as it was taken. */
int dv2_hkm_sample(uint64_t **out, int64_t *nout, const dv2_hkm_tree *t, int64_t target, int closest,
                   int multiplier, uint64_t seed, dv2_error *err);

#endif
