/* probe_eval.h — the whole evaluation of dv2-probe: the training matrix
 * loaded (mapped when possible), the linear probe fitted on it, the test
 * matrix streamed once in blocks, each block handed to the k-NN classifier
 * (probe.h), the linear probe (logreg.h) and instance retrieval; the
 * results gathered for the program to print. */
#ifndef DV2_PROBE_EVAL_H
#define DV2_PROBE_EVAL_H

#include <stddef.h>
#include <stdint.h>
#include "core/dv2.h"
#include "eval/logreg.h"
#include "eval/probe.h"
#include "format/matrix.h"

typedef struct dv2_probe_eval_opts {
    int knn, linear, retrieval;         /* which evaluations (at least one) */
    int ks[DV2_PROBE_MAX_KS], nk;       /* k-NN: the k values */
    double temperature;                 /* k-NN softmax temperature (0.07) */
    int uniform;                        /* k-NN: 1 = majority vote */
    int knn_backend;                    /* DV2_KNN_EXACT (CPU) or DV2_KNN_CUDA */
    const double *cs;                   /* linear: the C values, or NULL for the grid */
    int ncs;
    int full_grid;                      /* linear: the official 45 values */
    int max_iter;                       /* linear: L-BFGS iterations per fit (1000) */
    double holdout;                     /* linear: fraction held out to choose C (0.1) */
    uint64_t seed;                      /* linear: the held-out split */
    size_t block;                       /* test rows per block (1024) */
    /* called after each fit of the C sweep (may be NULL) */
    void (*on_fit)(void *ctx, int i, double c, double top1);
    /* called with the test rows done so far and the total (0 when unknown,
     * a stream), first with done = 0 (may be NULL) */
    void (*on_progress)(void *ctx, uint64_t done, uint64_t total);
    void *ctx;
} dv2_probe_eval_opts;
void dv2_probe_eval_opts_default(dv2_probe_eval_opts *o);

typedef struct dv2_probe_eval {
    dv2_matrix train;                   /* the training matrix */
    int train_loaded;
    char test_name[512];                /* the test matrix as messages name it */
    uint64_t test_rows;
    dv2_probe_knn knn;                  /* k-NN counts (knn.n rows) */
    dv2_logreg_sweep_result lr;         /* linear: the sweep and the chosen C */
    uint64_t lr_top1, lr_top5;          /* linear: correct test rows */
    int lr_fits, lr_stopped;            /* linear: fits run, and those cut short by max_iter */
    dv2_probe_retr retr;                /* retrieval totals */
    double load_s, linear_s, test_s;    /* seconds: training matrix, linear fits, test pass */
} dv2_probe_eval;

/* Runs the evaluations of o with train and test (paths; "-" is standard
 * input for one of them) into e, which the caller frees with
 * dv2_probe_eval_free whatever the result.  Errors name the matrix and the
 * row. */
int dv2_probe_eval_run(dv2_probe_eval *e, const char *train, const char *test, const dv2_probe_eval_opts *o,
                       dv2_error *err);
void dv2_probe_eval_free(dv2_probe_eval *e);

#endif
