/* faissx.h — the thin C layer over the FAISS C++ API (lib/search/faissx.cpp), the
 * only C++ in dv2.  It exposes what dedup and retrieval need and nothing more:
 * an inner-product index built from a factory string ("Flat", "IVF4096,Flat",
 * "IVF4096,PQ32", "OPQ32,IVF65536,PQ32", ...), training, adding, k-NN and range
 * search, nprobe, save/load, and k-means (optionally spherical).
 *
 * Every FAISS exception is caught inside the layer and becomes a DV2_E* status
 * with the exception's text in the dv2_error.  Vectors are float32, row-major,
 * and are expected L2-normalised by the caller (cosine = inner product).
 * Index rows are numbered 0, 1, 2, ... in the order they were added; searches
 * return rows.  A saved index can carry the record id of every row: it is
 * then written as a FAISS IndexIDMap over the index, so that FAISS itself
 * (faiss.read_index in Python) returns dv2 ids (as int64: the bits of the
 * uint64 id); loading such a file gives back the inner index and the ids.
 *
 * When dv2 is built without FAISS (FAISS=0) lib/search/faissx_none.c provides the
 * same functions: dv2_faissx_available() returns 0 and everything else returns
 * DV2_EUNSUPPORTED with a message saying the build has no FAISS. */
#ifndef DV2_FAISSX_H
#define DV2_FAISSX_H

#include <stdint.h>
#include "core/dv2.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dv2_faissx_index dv2_faissx_index; /* opaque */

/* 1 when this build links FAISS, 0 otherwise. */
int dv2_faissx_available(void);
/* FAISS version string ("1.7.3") or "none". */
const char *dv2_faissx_version(void);

/* Creates an empty inner-product index of dimension dim from a FAISS factory
 * string.  "Flat" gives an exact IndexFlatIP.  IVF-PQ indexes skip FAISS's
 * polysemous training (only Hamming-filtered search needs it; it can take
 * minutes), the same as the factory's "np" suffix. */
int dv2_faissx_index_create(dv2_faissx_index **out, int dim, const char *factory,
                            dv2_error *err);
void dv2_faissx_index_free(dv2_faissx_index *idx); /* NULL is fine */

int dv2_faissx_index_dim(const dv2_faissx_index *idx);
int64_t dv2_faissx_index_ntotal(const dv2_faissx_index *idx);
int dv2_faissx_index_is_trained(const dv2_faissx_index *idx);
/* The number of inverted lists of an IVF index, 0 for others. */
int64_t dv2_faissx_index_nlist(const dv2_faissx_index *idx);

/* Trains the index (IVF centroids, PQ codebooks) on x (n × dim). */
int dv2_faissx_index_train(dv2_faissx_index *idx, const float *x, int64_t n, dv2_error *err);
/* Appends x (n × dim); the new rows get numbers ntotal .. ntotal+n-1. */
int dv2_faissx_index_add(dv2_faissx_index *idx, const float *x, int64_t n, dv2_error *err);
/* Sets how many inverted lists a search visits (IVF indexes); DV2_EINVAL for
 * an index without inverted lists. */
int dv2_faissx_index_set_nprobe(dv2_faissx_index *idx, int nprobe, dv2_error *err);

/* k nearest rows of each of the n queries: out_sim and out_row are n × k,
 * best first; missing results have row -1 and similarity -INFINITY. */
int dv2_faissx_index_search(const dv2_faissx_index *idx, float *out_sim, int64_t *out_row,
                            const float *q, int64_t n, int k, dv2_error *err);

/* All rows with similarity > min_sim for each query.  Allocates (malloc)
 * *out_lims (n+1 entries), *out_row and *out_sim (lims[n] entries); results of
 * query i are at [lims[i], lims[i+1]).  The caller frees the three arrays. */
int dv2_faissx_index_range_search_alloc(const dv2_faissx_index *idx, int64_t **out_lims,
                                        int64_t **out_row, float **out_sim, const float *q,
                                        int64_t n, float min_sim, dv2_error *err);

/* Writes the index atomically (lib/core/afile.h); an existing path needs force.
 * ids (ntotal entries, or NULL): the record id of each row, stored with it
 * (an IndexIDMap). */
int dv2_faissx_index_save(const dv2_faissx_index *idx, const char *path, int force,
                          const uint64_t *ids, dv2_error *err);
/* Reads an index written by dv2_faissx_index_save (or by FAISS: an
 * IndexIDMap is unwrapped and its ids kept). */
int dv2_faissx_index_load(dv2_faissx_index **out, const char *path, dv2_error *err);
/* The record ids stored with a loaded index (ntotal entries), or NULL. */
const uint64_t *dv2_faissx_index_ids(const dv2_faissx_index *idx);

/* k-means of x (n × dim) into k centroids (out_centroids: k × dim) with
 * FAISS's Clustering: niter iterations, seed, at most max_points_per_centroid
 * training points per centroid (0: FAISS's default of 256), spherical (1:
 * centroids re-normalised and points assigned by inner product, for cosine
 * data).  *out_objective (may be NULL) receives the final objective FAISS
 * reports (sum of similarities when spherical, of squared distances
 * otherwise). */
int dv2_faissx_kmeans(float *out_centroids, double *out_objective, const float *x, int64_t n,
                      int dim, int k, int niter, int spherical, uint64_t seed,
                      int max_points_per_centroid, dv2_error *err);

#ifdef __cplusplus
}
#endif

#endif
