/* lbfgs.h — limited-memory BFGS minimisation of a smooth function of n
 * doubles (the linear probe's solver).  Two-loop recursion over the last m
 * correction pairs; a backtracking line search (Armijo, with cubic
 * interpolation of the step) from the unit step, the first step scaled to
 * 1/||g||; pairs with too little curvature are skipped, so the approximation
 * stays positive definite.  Stops when ||g||_inf <= gtol, when the relative
 * decrease of f stays under ftol, or after max_iter iterations. */
#ifndef DV2_LBFGS_H
#define DV2_LBFGS_H

#include <stddef.h>
#include "core/dv2.h"

/* Returns f(x) and writes its gradient into g (n doubles).  A non-finite
 * value makes the line search shorten the step. */
typedef double (*dv2_lbfgs_fn)(void *ctx, const double *x, double *g);

typedef struct dv2_lbfgs_opts {
    int m;            /* correction pairs kept (10) */
    int max_iter;     /* iterations (1000) */
    int max_ls;       /* function evaluations per line search (50) */
    double gtol;      /* stop when ||g||_inf <= gtol (1e-6) */
    double ftol;      /* stop when (f_prev - f) <= ftol * max(|f|, |f_prev|, 1) (1e-12) */
} dv2_lbfgs_opts;

typedef struct dv2_lbfgs_result {
    int iters, evals;
    double f, gnorm_inf;
    int converged;    /* 1: gtol or ftol reached; 0: max_iter or a failed line search */
} dv2_lbfgs_result;

void dv2_lbfgs_opts_default(dv2_lbfgs_opts *o);
/* Minimises from x (in: start, out: best point found).  Returns 0, or
 * DV2_ENOMEM / DV2_EINVAL (a non-finite value at the start). */
int dv2_lbfgs_minimize(double *x, size_t n, dv2_lbfgs_fn fn, void *ctx, const dv2_lbfgs_opts *o,
                       dv2_lbfgs_result *res, dv2_error *err);

#endif
