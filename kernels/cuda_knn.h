/* cuda_knn.h — brute-force cosine k-nearest-neighbour search on the GPU: the
 * database lives on the device in float32, each block of queries is one
 * cuBLAS SGEMM against database blocks followed by a per-query top-k kernel
 * that keeps only candidates above the running k-th best (see cuda_knn.cu).
 * Callable from C; all functions return 0 or a DV2_E* status and fill err.
 * Rows must already be L2-normalised (cosine = dot product).  Results follow
 * the CPU exact search's contract (lib/search/knn.h): best first, ties to the
 * lower database row, missing results are row -1 with similarity -INFINITY. */
#ifndef DV2_KERNELS_KNN_H
#define DV2_KERNELS_KNN_H

#include <stdint.h>
#include "core/dv2.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DV2_CUDA_KNN_MAX_K 1024

typedef struct dv2_cuda_knn dv2_cuda_knn;

/* Number of CUDA devices (0 when there is none or no driver), and a
 * description of device 0 in desc ("NVIDIA H100 80GB HBM3, sm_90, 79 GiB"). */
int dv2_cuda_device_count(char *desc, size_t desc_len);

/* A searcher for dim-dimensional rows, with room for capacity database rows. */
int dv2_cuda_knn_create(dv2_cuda_knn **out, int dim, int64_t capacity, dv2_error *err);
/* Appends n host rows x (n × dim) to the device database. */
int dv2_cuda_knn_add(dv2_cuda_knn *s, const float *x, int64_t n, dv2_error *err);
/* The k (1..DV2_CUDA_KNN_MAX_K) best rows of each host query (nq × dim):
 * out_sim / out_row are nq × k host arrays.  Candidates with similarity <=
 * min_sim are dropped.  self_first >= 0 excludes database row self_first + i
 * from the results of query i (self-search). */
int dv2_cuda_knn_search(dv2_cuda_knn *s, float *out_sim, int64_t *out_row, const float *q,
                        int64_t nq, int k, float min_sim, int64_t self_first, dv2_error *err);
void dv2_cuda_knn_free(dv2_cuda_knn *s);

#ifdef __cplusplus
}
#endif
#endif
