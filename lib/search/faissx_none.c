/* faissx_none.c — lib/search/faissx.h for builds without FAISS (FAISS=0): the same
 * functions, each saying that this build has no FAISS.  With FAISS the real
 * layer is lib/search/faissx.cpp and this file compiles to nothing. */
#include "search/faissx.h"

#if !defined(DV2_HAVE_FAISS) || !DV2_HAVE_FAISS

#include <stddef.h>

#define NO_FAISS(err) \
    dv2_error_set(err, DV2_EUNSUPPORTED, "this build has no FAISS (rebuild with libfaiss-dev installed)")

int dv2_faissx_available(void) { return 0; }
const char *dv2_faissx_version(void) { return "none"; }

int dv2_faissx_index_create(dv2_faissx_index **out, int dim, const char *factory, dv2_error *err) {
    *out = NULL;
    return NO_FAISS(err);
}
void dv2_faissx_index_free(dv2_faissx_index *idx) { (void)idx; }
int dv2_faissx_index_dim(const dv2_faissx_index *idx) { return 0; }
int64_t dv2_faissx_index_ntotal(const dv2_faissx_index *idx) { return 0; }
int dv2_faissx_index_is_trained(const dv2_faissx_index *idx) { return 0; }
int64_t dv2_faissx_index_nlist(const dv2_faissx_index *idx) { return 0; }
int dv2_faissx_index_train(dv2_faissx_index *idx, const float *x, int64_t n, dv2_error *err) {
    return NO_FAISS(err);
}
int dv2_faissx_index_add(dv2_faissx_index *idx, const float *x, int64_t n, dv2_error *err) {
    return NO_FAISS(err);
}
int dv2_faissx_index_set_nprobe(dv2_faissx_index *idx, int nprobe, dv2_error *err) { return NO_FAISS(err); }
int dv2_faissx_index_search(const dv2_faissx_index *idx, float *out_sim, int64_t *out_row,
                            const float *q, int64_t n, int k, dv2_error *err) {
    return NO_FAISS(err);
}
int dv2_faissx_index_range_search_alloc(const dv2_faissx_index *idx, int64_t **out_lims,
                                        int64_t **out_row, float **out_sim, const float *q,
                                        int64_t n, float min_sim, dv2_error *err) {
    *out_lims = NULL;
    *out_row = NULL;
    *out_sim = NULL;
    return NO_FAISS(err);
}
int dv2_faissx_index_save(const dv2_faissx_index *idx, const char *path, int force, const uint64_t *ids,
                          dv2_error *err) {
    return NO_FAISS(err);
}
const uint64_t *dv2_faissx_index_ids(const dv2_faissx_index *idx) { return NULL; }
int dv2_faissx_index_load(dv2_faissx_index **out, const char *path, dv2_error *err) {
    *out = NULL;
    return NO_FAISS(err);
}
int dv2_faissx_kmeans(float *out_centroids, double *out_objective, const float *x, int64_t n,
                      int dim, int k, int niter, int spherical, uint64_t seed,
                      int max_points_per_centroid, dv2_error *err) {
    return NO_FAISS(err);
}

#else
typedef int dv2_faissx_none_unused; /* keeps the translation unit non-empty */
#endif
