/* knn.h — cosine k-nearest-neighbour search over vector sources, the one
 * engine under dv2-dedup, dv2-retrieve and dv2-probe's k-NN classifier.
 *
 * A dv2_vecsrc is n rows of dim floats that can be read in blocks, already
 * L2-normalised (so cosine similarity is a dot product).  Sources may be
 * plain float arrays, embedding matrices memory-mapped from disk (float32 or
 * float16, converted block by block) or a subset of another source; nothing
 * here needs the whole database in memory.
 *
 * A dv2_knn searcher answers k-NN queries against one database source with
 * one of two backends:
 *   - exact: our own brute force, OpenBLAS sgemm of a query block against
 *     streamed database blocks, shared out between the threads in pieces
 *     fixed by the database alone, plus a partial top-k per query; memory
 *     is bounded by the block sizes, not by the database (see
 *     dv2_knn_exact_peak), except that a database up to cache_bytes is
 *     converted once and kept, and a source in place is used where it lies.
 *     Results do not depend on the number of threads.  This is the
 *     reference that the GPU search mirrors.
 *   - cuda: the same brute force on the GPU (kernels/cuda_knn.h), same contract;
 *     the database must fit in device memory.
 *   - faiss: an index built from a factory string (lib/search/faissx.h), trained on
 *     a deterministic sample of the database, database added block by block,
 *     searched with nprobe.
 * Results are ordered by similarity, best first; ties go to the lower database
 * row, so results do not depend on block sizes or on how queries are split
 * between processes (the exact backend keeps database blocks and the order
 * of accumulation fixed). */
#ifndef DV2_KNNSEARCH_H
#define DV2_KNNSEARCH_H

#include <stdint.h>
#include <stddef.h>
#include "core/dv2.h"

typedef struct dv2_vecsrc dv2_vecsrc;
/* Fills out (count × dim floats) with rows [start, start+count), normalised. */
typedef int (*dv2_vecsrc_read_fn)(const dv2_vecsrc *src, float *out, int64_t start,
                                  int64_t count, dv2_error *err);
struct dv2_vecsrc {
    int64_t n;
    int dim;
    dv2_vecsrc_read_fn read;
    const void *ctx;      /* the backing data */
    const int64_t *rows;  /* subset sources: rows of the parent (n entries) */
    const dv2_vecsrc *parent;
    int nparts;           /* concatenated sources: parent[0..nparts-1] */
    const float *x;       /* in-place sources: row i at x + i*ld, not normalised */
    size_t ld;
    const float *inv_norm; /* in-place sources: 1/||row i|| (0 for a zero row) */
};

/* A source over a float array x (n × dim), normalised as it is read. */
void dv2_vecsrc_floats(dv2_vecsrc *src, const float *x, int64_t n, int dim);
/* A source over rows in place: row i at x + i*ld (ld >= dim) with its
 * inverse L2 norm inv_norm[i] (0 for a zero row); both arrays stay the
 * caller's.  The exact backend multiplies the raw rows where they lie (a
 * memory-mapped matrix is never copied) and scales each product by the
 * row's inverse norm; reads return normalised rows. */
void dv2_vecsrc_rows(dv2_vecsrc *src, const float *x, int64_t n, int dim, size_t ld, const float *inv_norm);
/* A source of the given rows of parent (rows stays owned by the caller and
 * must outlive src). */
void dv2_vecsrc_subset(dv2_vecsrc *src, const dv2_vecsrc *parent, const int64_t *rows, int64_t n);
/* The rows of parts[0], then parts[1], ... (all of one dimension, checked
 * by the caller); parts stays owned by the caller. */
void dv2_vecsrc_concat(dv2_vecsrc *src, const dv2_vecsrc *parts, int nparts);
/* Reads rows [start, start+count) of src into out (count × dim). */
int dv2_vecsrc_read(const dv2_vecsrc *src, float *out, int64_t start, int64_t count, dv2_error *err);

/* Normalises rows in place to unit L2 norm.  Zero rows stay zero (they match
 * nothing).  A NaN or infinite value is DV2_ECORRUPT naming the row
 * (first_row + i).  Returns 0 or the status. */
int dv2_knn_normalize(float *x, int64_t n, int dim, int64_t first_row, dv2_error *err);

enum { DV2_KNN_EXACT = 0, DV2_KNN_FAISS = 1, DV2_KNN_CUDA = 2 };

/* 1 when this build has the GPU brute-force search (kernels/cuda_knn.h). */
int dv2_knn_cuda_built(void);

typedef struct dv2_knn_opts {
    int backend;             /* DV2_KNN_EXACT, DV2_KNN_FAISS or DV2_KNN_CUDA (exact, on
                                the GPU: the database is copied to device memory) */
    const char *factory;     /* faiss: "IVF4096,PQ32", ...; NULL = "Flat" */
    int nprobe;              /* faiss IVF: lists visited; 0 = FAISS default (1) */
    int64_t train_max;       /* faiss: at most this many training vectors, evenly
                                spaced over the database (0: 256 per list, at least 100k) */
    int64_t db_block;        /* rows of the database read at once (0 = 8192) */
    const char *index_load;  /* faiss: load this index (built over the same database)
                                instead of building one */
    const char *index_save;  /* faiss: write the built index here (atomically) */
    const uint64_t *index_ids;  /* faiss: record ids, stored with a saved index (an
                                   IndexIDMap, so FAISS returns them) and checked
                                   row by row against a loaded one; NULL: rows only */
    const int64_t *index_rows;  /* with index_ids: row r of the database has id
                                   index_ids[index_rows[r]] (a subset); NULL: r */
    int force;               /* faiss: index_save may overwrite */
    int64_t cache_bytes;     /* exact: a database of at most this many float32 bytes is
                                converted once and kept in memory; larger ones are
                                streamed (0 = 2 GiB, < 0 = always stream) */
} dv2_knn_opts;
void dv2_knn_opts_default(dv2_knn_opts *o);

typedef struct dv2_knn dv2_knn; /* opaque */

/* Builds a searcher over db (kept by reference: db must outlive it).  For
 * faiss this trains and fills the index, reading db block by block. */
int dv2_knn_create(dv2_knn **out, const dv2_vecsrc *db, const dv2_knn_opts *o, dv2_error *err);
void dv2_knn_free(dv2_knn *s);

/* The k best database rows of each of the nq queries q (nq × dim, normalised):
 * out_sim, out_row are nq × k, best first; missing results are row -1 with
 * similarity -INFINITY.  Candidates with similarity <= min_sim are dropped
 * (pass -INFINITY to keep all).  self_first >= 0 says that query i is database
 * row self_first + i, which is then never returned (self-search). */
int dv2_knn_search(dv2_knn *s, float *out_sim, int64_t *out_row, const float *q, int64_t nq,
                   int k, float min_sim, int64_t self_first, dv2_error *err);

/* Bytes the exact backend allocates for one search of nq queries of dimension
 * dim with k results and the given database block (used to document and test
 * the memory bound). */
size_t dv2_knn_exact_peak(int64_t nq, int dim, int k, int64_t db_block);

#endif
