/* retrieve.h — self-supervised retrieval as in DINOv2 (§3, App. A.4): pick
 * pool images that look like a curated query set.
 *
 *   sample-based   the n nearest pool images of every query image (cosine);
 *                  by default each pool image is listed once, with its best
 *                  query (highest similarity, ties to the lower query row);
 *                  keep_repeats lists every (query, neighbour) pair, the
 *                  "collisions" the paper counts.
 *   cluster-based  spherical k-means of the pool into K clusters (FAISS),
 *                  every pool image assigned to its nearest centroid, every
 *                  query image too; from every cluster that holds more than
 *                  min_queries query images, per_cluster pool images drawn
 *                  at random (seeded per cluster), and the total capped at
 *                  cap by a seeded random subset.
 *
 * Both split the work across ranks (lib/core/dist.h) by whole query (or pool)
 * blocks and give every rank the same result as one process. */
#ifndef DV2_RETRIEVE_H
#define DV2_RETRIEVE_H

#include <stdint.h>
#include "core/dist.h"
#include "core/dv2.h"
#include "search/knn.h"

typedef struct dv2_retrieve_params {
    int n;                   /* sample-based: neighbours per query */
    int keep_repeats;        /* sample-based: list repeated pool images */
    int clusters;            /* cluster-based: K */
    int64_t per_cluster;     /* M */
    int64_t min_queries;     /* a cluster is used if it holds more query images than this */
    int64_t cap;             /* at most this many images in total (0 = no cap) */
    int niter;               /* k-means iterations (20) */
    int64_t kmeans_max_points; /* k-means trains on at most this many points per centroid (256) */
    uint64_t seed;
    int64_t query_block;     /* rows searched at once (0: 1024 exact, 65536 FAISS/GPU) */
    dv2_knn_opts knn;        /* backend for the neighbour search */
    void (*progress)(void *ctx, int64_t done, int64_t total);
    void *progress_ctx;
} dv2_retrieve_params;
void dv2_retrieve_params_default(dv2_retrieve_params *p);

typedef struct dv2_retrieve_hit {
    int64_t pool_row;
    int64_t from;            /* query row (sample-based) or cluster (cluster-based) */
    float sim;               /* to the query, or to the cluster centroid */
    int32_t pad_;
} dv2_retrieve_hit;

typedef struct dv2_retrieve_out {
    dv2_retrieve_hit *hits;  /* sample: by query then rank (repeats) or by pool row (unique);
                                clusters: by cluster then pool row */
    int64_t n;
    int64_t pairs;           /* sample: (query, neighbour) pairs found before removing repeats */
    int64_t clusters_used;   /* clusters: clusters above min_queries */
    int64_t capped;          /* clusters: images dropped by the cap */
    double kmeans_objective; /* clusters: FAISS's final objective (sum of cosines) */
    double build_seconds;    /* sample: building the searcher (index training and adding) */
    double search_seconds;   /* sample: reading the queries and searching them */
} dv2_retrieve_out;

int dv2_retrieve_sample(dv2_retrieve_out *out, const dv2_vecsrc *queries, const dv2_vecsrc *pool,
                        const dv2_retrieve_params *p, const dv2_dist *d, dv2_error *err);
int dv2_retrieve_clusters(dv2_retrieve_out *out, const dv2_vecsrc *queries, const dv2_vecsrc *pool,
                          const dv2_retrieve_params *p, const dv2_dist *d, dv2_error *err);
void dv2_retrieve_out_free(dv2_retrieve_out *out);

/* Spherical k-means of src (FAISS): trains on at most max_points*k rows,
 * evenly spaced; centroids is k × dim.  Rank 0 computes, every rank gets
 * the centroids. */
int dv2_retrieve_kmeans(float *centroids, double *objective, const dv2_vecsrc *src, int k, int niter,
                        int64_t max_points, uint64_t seed, const dv2_dist *d, dv2_error *err);
/* The nearest centroid of rows [r0, r1) of src: cluster[i - r0], sim[i - r0]. */
int dv2_retrieve_assign(int32_t *cluster, float *sim, const dv2_vecsrc *src, int64_t r0, int64_t r1,
                        const float *centroids, int k, int64_t block, dv2_error *err);

#endif
