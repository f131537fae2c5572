/* logreg.h — multinomial logistic regression on frozen features, the linear
 * probe of dv2-probe (spec §17.3), with scikit-learn's meaning of C:
 *
 *     minimise  C * sum_i CE(softmax(W x_i + b), y_i) + ||W||^2 / 2
 *
 * (the intercept b is not regularised).  Solved with L-BFGS (lib/eval/lbfgs.h) on
 * the equivalent objective divided by C*N, so gradients are of order one
 * whatever N and C.  The objective is evaluated over row blocks: sgemm for
 * the logits and the weight gradient, float storage, double sums; the
 * training rows are used in place (leading dimension ld) or through a list
 * of row indices (gathered one block at a time), so memory stays bounded by
 * the block size.  Parameters: the weights W (nclass x dim) and b (nclass),
 * kept in one double vector [W row-major, b].
 *
 * The C sweep (dv2_logreg_sweep) follows §17.3: a seeded 10% of the training
 * rows held out, a fit per C on the rest (ascending C, each warm-started from
 * the previous solution), the C with the best held-out top-1 (the smallest
 * on ties), then a refit on every row with it. */
#ifndef DV2_LOGREG_H
#define DV2_LOGREG_H

#include <stddef.h>
#include <stdint.h>
#include "core/dv2.h"

typedef struct dv2_logreg {
    size_t dim, nclass;
    double *theta;   /* nclass*dim weights then nclass biases */
} dv2_logreg;

typedef struct dv2_logreg_opts {
    int max_iter;     /* L-BFGS iterations per fit (1000, as the official cuML call) */
    double gtol;      /* gradient tolerance of the scaled objective (1e-6) */
    double ftol;      /* relative decrease tolerance (1e-10) */
    size_t block;     /* rows per evaluation block (1024) */
} dv2_logreg_opts;

void dv2_logreg_opts_default(dv2_logreg_opts *o);
int dv2_logreg_init(dv2_logreg *m, size_t dim, size_t nclass, dv2_error *err); /* zero model */
void dv2_logreg_free(dv2_logreg *m);

/* Fits m on rows (the listed ones, or all n when rows is NULL) of x (row i at
 * x + i*ld) with labels y in [0, nclass), starting from m's current
 * parameters.  iters (may be NULL) receives the L-BFGS iteration count. */
int dv2_logreg_fit(dv2_logreg *m, const float *x, size_t ld, const int32_t *y, size_t n,
                   const int64_t *rows, size_t nrows, double C, const dv2_logreg_opts *o,
                   int *iters, dv2_error *err);
/* The same; *stopped (may be NULL) is 1 when the fit ended at max_iter
 * without reaching the tolerances (the solution is not converged). */
int dv2_logreg_fit_ex(dv2_logreg *m, const float *x, size_t ld, const int32_t *y, size_t n,
                      const int64_t *rows, size_t nrows, double C, const dv2_logreg_opts *o,
                      int *iters, int *stopped, dv2_error *err);

/* Scores nq rows q (nq x dim, rows ld apart) and adds the top-1 / top-5
 * correct counts against labels y (a label outside [0, nclass) is wrong).
 * Class ties go to the lower index. */
void dv2_logreg_eval(const dv2_logreg *m, const float *q, size_t ld, const int32_t *y, size_t nq,
                     uint64_t *top1, uint64_t *top5);
/* The same over listed rows of x. */
void dv2_logreg_eval_rows(const dv2_logreg *m, const float *x, size_t ld, const int32_t *y,
                          const int64_t *rows, size_t nrows, uint64_t *top1, uint64_t *top5);

/* The C grids: "short" = 10^-6 .. 10^5 by decades (12 values, every one of
 * them in the full grid), "full" = 10^linspace(-6, 5, 45) of the official
 * evaluation.  Returns the count (<= 45) written to out. */
int dv2_logreg_grid(double *out, int full);

typedef struct dv2_logreg_sweep_result {
    int nc;
    double cs[64];           /* the grid, ascending */
    double holdout_top1[64]; /* held-out top-1 (%) per C */
    int iters[64];
    double best_c;
    int refit_iters;
    int unconverged[64];     /* 1: the fit of that C stopped at max_iter short of the tolerances */
    int refit_unconverged;   /* the same for the final refit */
    size_t n_fit, n_holdout;
} dv2_logreg_sweep_result;

/* The §17.3 selection on x (n rows, ld apart) with labels y in [0, nclass),
 * over cs[nc] (any order), holding out a fraction (0.1) drawn with seed; m
 * ends as the refit on all rows.  With one C nothing is held out: m is
 * simply fitted on all rows.  progress (may be NULL) is called after each fit. */
int dv2_logreg_sweep(dv2_logreg *m, dv2_logreg_sweep_result *res, const float *x, size_t ld,
                     const int32_t *y, size_t n, const double *cs, int nc, double holdout,
                     uint64_t seed, const dv2_logreg_opts *o,
                     void (*progress)(void *ctx, int i, double c, double top1), void *ctx,
                     dv2_error *err);

#endif
