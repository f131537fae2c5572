/* lbfgs.c — L-BFGS with a backtracking line search (lbfgs.h). */
#include "eval/lbfgs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void dv2_lbfgs_opts_default(dv2_lbfgs_opts *o) {
    o->m = 10;
    o->max_iter = 1000;
    o->max_ls = 50;
    o->gtol = 1e-6;
    o->ftol = 1e-12;
}

static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static double norm_inf(const double *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

int dv2_lbfgs_minimize(double *x, size_t n, dv2_lbfgs_fn fn, void *ctx, const dv2_lbfgs_opts *opt,
                       dv2_lbfgs_result *res, dv2_error *err) {
    dv2_lbfgs_opts o;
    if (opt) o = *opt;
    else dv2_lbfgs_opts_default(&o);
    if (o.m < 1) o.m = 1;
    size_t m = (size_t)o.m;
    double *g = malloc(n * sizeof(double)), *d = malloc(n * sizeof(double));
    double *xt = malloc(n * sizeof(double)), *gt = malloc(n * sizeof(double));
    double *S = dv2_malloc_array(m * n, sizeof(double)), *Y = dv2_malloc_array(m * n, sizeof(double));
    double *rho = malloc(m * sizeof(double)), *alpha = malloc(m * sizeof(double));
    memset(res, 0, sizeof *res);
    int rc = DV2_OK;
    if (!g || !d || !xt || !gt || !S || !Y || !rho || !alpha) {
        rc = dv2_error_set(err, DV2_ENOMEM, "lbfgs: out of memory for %zu parameters", n);
        goto out;
    }
    double f = fn(ctx, x, g);
    res->evals = 1;
    if (!isfinite(f)) {
        rc = dv2_error_set(err, DV2_EINVAL, "lbfgs: objective not finite at the start");
        goto out;
    }
    size_t stored = 0, newest = 0; /* ring of correction pairs */
    for (res->iters = 0; res->iters < o.max_iter; res->iters++) {
        if (norm_inf(g, n) <= o.gtol) {
            res->converged = 1;
            break;
        }
        /* d = -H g by the two-loop recursion */
        memcpy(d, g, n * sizeof(double));
        for (size_t c = 0; c < stored; c++) {
            size_t i = (newest + m - c) % m;
            alpha[i] = rho[i] * dot(S + i * n, d, n);
            for (size_t j = 0; j < n; j++) d[j] -= alpha[i] * Y[i * n + j];
        }
        double gamma;
        if (stored) {
            const double *s = S + newest * n, *y = Y + newest * n;
            gamma = dot(s, y, n) / dot(y, y, n);
        } else {
            gamma = 1.0 / sqrt(dot(g, g, n)); /* first step of length 1 */
        }
        for (size_t j = 0; j < n; j++) d[j] *= gamma;
        for (size_t c = stored; c-- > 0;) {
            size_t i = (newest + m - c) % m;
            double beta = rho[i] * dot(Y + i * n, d, n);
            for (size_t j = 0; j < n; j++) d[j] += S[i * n + j] * (alpha[i] - beta);
        }
        for (size_t j = 0; j < n; j++) d[j] = -d[j];
        double dg = dot(d, g, n);
        if (!(dg < 0)) { /* not a descent direction: restart from steepest descent */
            stored = 0;
            double inv = 1.0 / sqrt(dot(g, g, n));
            for (size_t j = 0; j < n; j++) d[j] = -g[j] * inv;
            dg = dot(d, g, n);
        }
        /* backtracking line search, Armijo condition */
        double t = 1.0, ft = 0;
        int ok = 0;
        for (int ls = 0; ls < o.max_ls; ls++) {
            for (size_t j = 0; j < n; j++) xt[j] = x[j] + t * d[j];
            ft = fn(ctx, xt, gt);
            res->evals++;
            if (isfinite(ft) && ft <= f + 1e-4 * t * dg) {
                ok = 1;
                break;
            }
            /* minimiser of the quadratic through f, dg and ft, kept in [0.1t, 0.5t] */
            double tn = isfinite(ft) ? -dg * t * t / (2.0 * (ft - f - dg * t)) : 0.5 * t;
            if (!(tn >= 0.1 * t)) tn = 0.1 * t;
            if (tn > 0.5 * t) tn = 0.5 * t;
            t = tn;
        }
        if (!ok) break; /* no decrease found: x is as good as this precision allows */
        double ys = 0, yy = 0;
        for (size_t j = 0; j < n; j++) {
            double sj = xt[j] - x[j], yj = gt[j] - g[j];
            ys += sj * yj;
            yy += yj * yj;
        }
        if (ys > 1e-10 * yy && yy > 0) { /* keep the pair (overwrites the oldest) */
            size_t slot = stored ? (newest + 1) % m : 0;
            for (size_t j = 0; j < n; j++) {
                S[slot * n + j] = xt[j] - x[j];
                Y[slot * n + j] = gt[j] - g[j];
            }
            rho[slot] = 1.0 / ys;
            newest = slot;
            if (stored < m) stored++;
        }
        double fprev = f;
        memcpy(x, xt, n * sizeof(double));
        memcpy(g, gt, n * sizeof(double));
        f = ft;
        double scale = fmax(fmax(fabs(f), fabs(fprev)), 1.0);
        if (fprev - f <= o.ftol * scale) {
            res->iters++;
            res->converged = 1;
            break;
        }
    }
    res->f = f;
    res->gnorm_inf = norm_inf(g, n);
out:
    free(g);
    free(d);
    free(xt);
    free(gt);
    free(S);
    free(Y);
    free(rho);
    free(alpha);
    return rc;
}
