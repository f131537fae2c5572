/* probe.h — frozen-feature evaluations of dv2-probe that compare a test set
 * against a training set held in memory (or memory-mapped): the k-NN
 * classifier of the official evaluation and instance retrieval (mAP,
 * recall@k).  The linear probe is lib/eval/logreg.h.
 *
 * The test set is streamed: callers read it in blocks (lib/format/matrix.h),
 * normalise each block (dv2_probe_normalize) and hand it to the *_block
 * functions, which keep running totals.  Similarities are cosines: a blocked
 * sgemm of the query block against the raw training rows (leading dimension
 * ld, so a mapped matrix is used in place) scaled by the training rows'
 * inverse norms.  The k-NN neighbours come from the exact search of
 * lib/search/knn.h over the training rows in place (dv2_vecsrc_rows), on
 * the CPU or the GPU.  Memory: query block x database block floats plus the
 * per-query top-k lists, independent of the training set's size.
 *
 * Orders are total and deterministic: a neighbour ranks before another if
 * its similarity is higher, or equal and its training row is lower; class
 * scores tie in favour of the lower class index. */
#ifndef DV2_PROBE_H
#define DV2_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include "core/dv2.h"
#include "search/knn.h"

#define DV2_PROBE_MAX_KS 16
#define DV2_PROBE_MAX_CLASSES (1 << 24) /* k-NN class scores are dense arrays */

/* The training side: vectors (not modified), labels, ids, inverse norms and
 * (for retrieval) the rows grouped by label. */
typedef struct dv2_probe_db {
    const float *x;        /* n rows of dim floats, row i at x + i*ld */
    size_t n, dim, ld;
    const int32_t *labels;
    const uint64_t *ids;
    float *inv_norm;       /* 1/||x_i||, 0 for a zero row */
    int32_t max_label;     /* -1 when n == 0 */
    int64_t *by_label;     /* rows sorted by (label, row); for retrieval */
    size_t db_block;       /* training rows per sgemm (default 4096) */
    dv2_vecsrc src;        /* the rows in place, for the k-NN search */
} dv2_probe_db;

/* Checks the training rows (finite values, labels >= 0: "NAME: row R (id I)
 * ...") and computes the norms.  The arrays stay owned by the caller. */
int dv2_probe_db_init(dv2_probe_db *db, const float *x, size_t n, size_t dim, size_t ld,
                      const int32_t *labels, const uint64_t *ids, const char *name,
                      dv2_error *err);
/* Fills db->by_label (needed by retrieval). */
int dv2_probe_db_group_labels(dv2_probe_db *db, dv2_error *err);
void dv2_probe_db_free(dv2_probe_db *db);

/* Scales each of the n rows of x (n x dim, contiguous) to unit L2 norm; zero
 * rows stay zero.  A non-finite value is DV2_ECORRUPT naming NAME and the row
 * first_row + i. */
int dv2_probe_normalize(float *x, size_t n, size_t dim, uint64_t first_row, const char *name,
                        dv2_error *err);

/* ---- k-NN classifier (spec §17.1) ---------------------------------------------- */

typedef struct dv2_probe_knn {
    int nk;
    int ks[DV2_PROBE_MAX_KS];   /* ascending */
    int kmax;                   /* neighbours kept: max(ks), at most the training size */
    double temperature;         /* softmax temperature T (0.07) */
    int uniform;                /* 1: every neighbour weighs 1 (plain majority vote) */
    int nclass;                 /* training max label + 1 */
    uint64_t n;                 /* test rows seen */
    uint64_t top1[DV2_PROBE_MAX_KS], top5[DV2_PROBE_MAX_KS]; /* correct counts per k */
    dv2_knn *engine;            /* exact search over db->src */
} dv2_probe_knn;

/* ks[nk] (any order, each >= 1), T > 0.  Sets kmax = min(max k, db->n) and
 * opens the search over db (which must stay where it is until
 * dv2_probe_knn_free): backend DV2_KNN_EXACT (the CPU) or DV2_KNN_CUDA (the
 * same search on the GPU; the training rows are copied to device memory). */
int dv2_probe_knn_init(dv2_probe_knn *s, const dv2_probe_db *db, const int *ks, int nk,
                       double temperature, int uniform, int backend, dv2_error *err);
void dv2_probe_knn_free(dv2_probe_knn *s);
/* Classifies nq normalised queries q (nq x dim) with true labels and adds
 * to the counts.  A test label outside [0, nclass) counts as wrong; a
 * negative one is an error (NAME: row R has no label). */
int dv2_probe_knn_block(dv2_probe_knn *s, const dv2_probe_db *db, const float *q, size_t nq,
                        const int32_t *labels, uint64_t first_row, const char *name,
                        dv2_error *err);
/* ---- instance retrieval ------------------------------------------------------------ */

/* Queries are the test rows, the database the training rows; a query's
 * positives are the database rows with its label.  A database row with the
 * query's own id is ignored (so a set can be probed against itself).  The
 * whole database is ranked: AP = mean over positives of (positives up to
 * it) / (its rank); recall@k = 1 when a positive is among the first k.
 * Queries without any positive are counted apart and left out. */
#define DV2_PROBE_RECALL_KS 3
typedef struct dv2_probe_retr {
    uint64_t n;                 /* queries evaluated (with >= 1 positive) */
    uint64_t no_positive;       /* queries left out */
    double ap_sum;
    int recall_k[DV2_PROBE_RECALL_KS];      /* 1, 5, 10 */
    uint64_t recall_hits[DV2_PROBE_RECALL_KS];
} dv2_probe_retr;

void dv2_probe_retr_init(dv2_probe_retr *s);
int dv2_probe_retr_block(dv2_probe_retr *s, const dv2_probe_db *db, const float *q, size_t nq,
                         const uint64_t *ids, const int32_t *labels, dv2_error *err);

#endif
