/* logreg.c — multinomial logistic regression (logreg.h): the blocked
 * objective and gradient for L-BFGS, evaluation, the C grids and the
 * held-out C sweep. */
#include "eval/logreg.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "eval/lbfgs.h"
#include "core/rng.h"

void dv2_logreg_opts_default(dv2_logreg_opts *o) {
    o->max_iter = 1000;
    o->gtol = 1e-6;
    o->ftol = 1e-10;
    o->block = 1024;
}

int dv2_logreg_init(dv2_logreg *m, size_t dim, size_t nclass, dv2_error *err) {
    m->dim = dim;
    m->nclass = nclass;
    m->theta = dv2_calloc_array(nclass * (dim + 1), sizeof(double));
    if (!m->theta || nclass == 0 || dim == 0) {
        free(m->theta);
        m->theta = NULL;
        return dv2_error_set(err, nclass && dim ? DV2_ENOMEM : DV2_EINVAL,
                             "logistic regression: cannot hold %zu classes x %zu features", nclass, dim);
    }
    return DV2_OK;
}

void dv2_logreg_free(dv2_logreg *m) {
    if (!m) return;
    free(m->theta);
    m->theta = NULL;
}

typedef struct fitctx {
    size_t D, K;
    const float *x;
    size_t ld;
    const int32_t *y;
    const int64_t *rows; /* NULL: rows 0..N-1 */
    size_t N, block;
    double C;
    float *W;
    int nt;              /* threads; per-thread buffers below */
    float **xb, **Z, **GW;
    double **g, *loss;
} fitctx;

/* Points at rows [b0, b0+nb) of the fit set (gathering listed rows into xb). */
static const float *block_rows(const fitctx *c, float *xb, size_t b0, size_t nb, size_t *ldx) {
    if (!c->rows) {
        *ldx = c->ld;
        return c->x + b0 * c->ld;
    }
    for (size_t i = 0; i < nb; i++)
        memcpy(xb + i * c->D, c->x + (size_t)c->rows[b0 + i] * c->ld, c->D * sizeof(float));
    *ldx = c->D;
    return xb;
}

/* Loss and gradient of one block, added to the thread's accumulators. */
static void block_objective(const fitctx *c, const double *b, int t, size_t b0, size_t nb) {
    size_t D = c->D, K = c->K, KD = K * D, ldx;
    float *Z = c->Z[t], *GW = c->GW[t];
    double *g = c->g[t];
    const float *X = block_rows(c, c->xb[t], b0, nb, &ldx);
    /* Z (nb x K) = X (nb x D) . W^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)K, (int)D, 1.0f, X, (int)ldx,
                c->W, (int)D, 0.0f, Z, (int)K);
    double l = 0;
    for (size_t i = 0; i < nb; i++) {
        float *z = Z + i * K;
        int yi = c->y[c->rows ? (size_t)c->rows[b0 + i] : b0 + i];
        double mx = -INFINITY, se = 0;
        for (size_t k = 0; k < K; k++) {
            double v = (double)z[k] + b[k];
            if (v > mx) mx = v;
        }
        for (size_t k = 0; k < K; k++) se += exp((double)z[k] + b[k] - mx);
        double lse = mx + log(se);
        l += lse - ((double)z[yi] + b[yi]);
        /* z becomes dCE/dlogits = softmax - onehot */
        for (size_t k = 0; k < K; k++) {
            z[k] = (float)(exp((double)z[k] + b[k] - lse) - (k == (size_t)yi));
            g[KD + k] += z[k];
        }
    }
    c->loss[t] += l;
    /* GW (K x D) = Z^T (K x nb) . X (nb x D) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)D, (int)nb, 1.0f, Z, (int)K, X,
                (int)ldx, 0.0f, GW, (int)D);
    for (size_t i = 0; i < KD; i++) g[i] += GW[i];
}

/* The scaled objective ΣCE/N + ||W||²/(2CN) and its gradient.  Blocks are
 * split statically between threads and the per-thread sums added in thread
 * order, so a run is reproducible for a given thread count. */
static double objective(void *vctx, const double *theta, double *grad) {
    fitctx *c = vctx;
    size_t D = c->D, K = c->K, KD = K * D, np = KD + K;
    double wsq = 0;
    for (size_t i = 0; i < KD; i++) {
        c->W[i] = (float)theta[i];
        wsq += theta[i] * theta[i];
    }
    size_t nblocks = (c->N + c->block - 1) / c->block;
    for (int t = 0; t < c->nt; t++) {
        memset(c->g[t], 0, np * sizeof(double));
        c->loss[t] = 0;
    }
    /* small problems run serially: thread start-up would cost more than the work */
    int par = nblocks > 1 && (double)c->N * (double)KD > 2e7;
#pragma omp parallel num_threads(c->nt) if (par)
    {
        int t = omp_get_thread_num();
#pragma omp for schedule(static)
        for (size_t bi = 0; bi < nblocks; bi++) {
            size_t b0 = bi * c->block, nb = c->N - b0 < c->block ? c->N - b0 : c->block;
            block_objective(c, theta + KD, t, b0, nb);
        }
    }
    double loss = 0;
    memset(grad, 0, np * sizeof(double));
    for (int t = 0; t < c->nt; t++) {
        loss += c->loss[t];
        for (size_t i = 0; i < np; i++) grad[i] += c->g[t][i];
    }
    double invN = 1.0 / (double)c->N, invCN = invN / c->C;
    for (size_t i = 0; i < KD; i++) grad[i] = grad[i] * invN + theta[i] * invCN;
    for (size_t k = 0; k < K; k++) grad[KD + k] *= invN;
    return loss * invN + 0.5 * wsq * invCN;
}

static void fitctx_free(fitctx *c) {
    for (int t = 0; t < c->nt; t++) {
        if (c->xb) free(c->xb[t]);
        if (c->Z) free(c->Z[t]);
        if (c->GW) free(c->GW[t]);
        if (c->g) free(c->g[t]);
    }
    free(c->xb);
    free(c->Z);
    free(c->GW);
    free(c->g);
    free(c->loss);
    free(c->W);
}

int dv2_logreg_fit(dv2_logreg *m, const float *x, size_t ld, const int32_t *y, size_t n,
                   const int64_t *rows, size_t nrows, double C, const dv2_logreg_opts *opt,
                   int *iters, dv2_error *err) {
    return dv2_logreg_fit_ex(m, x, ld, y, n, rows, nrows, C, opt, iters, NULL, err);
}

int dv2_logreg_fit_ex(dv2_logreg *m, const float *x, size_t ld, const int32_t *y, size_t n,
                      const int64_t *rows, size_t nrows, double C, const dv2_logreg_opts *opt,
                      int *iters, int *stopped, dv2_error *err) {
    if (stopped) *stopped = 0;
    dv2_logreg_opts o;
    if (opt) o = *opt;
    else dv2_logreg_opts_default(&o);
    if (!(C > 0) || !isfinite(C))
        return dv2_error_set(err, DV2_EINVAL, "logistic regression: C must be > 0");
    fitctx c = {.D = m->dim, .K = m->nclass, .x = x, .ld = ld, .y = y, .rows = rows,
                .N = rows ? nrows : n, .block = o.block ? o.block : 1024, .C = C,
                .nt = omp_get_max_threads()};
    if (c.N == 0) return dv2_error_set(err, DV2_EINVAL, "logistic regression: no training rows");
    for (size_t i = 0; i < c.N; i++) {
        int32_t yi = y[rows ? (size_t)rows[i] : i];
        if (yi < 0 || (size_t)yi >= c.K)
            return dv2_error_set(err, DV2_EINVAL, "logistic regression: label %d out of range", yi);
    }
    if (c.block > c.N) c.block = c.N;
    size_t np = c.K * (c.D + 1);
    int ok = (c.W = dv2_malloc_array(c.K * c.D, sizeof(float))) != NULL;
    ok = ok && (c.xb = calloc((size_t)c.nt, sizeof(float *))) && (c.Z = calloc((size_t)c.nt, sizeof(float *))) &&
         (c.GW = calloc((size_t)c.nt, sizeof(float *))) && (c.g = calloc((size_t)c.nt, sizeof(double *))) &&
         (c.loss = calloc((size_t)c.nt, sizeof(double)));
    for (int t = 0; ok && t < c.nt; t++) {
        c.Z[t] = dv2_malloc_array(c.block * c.K, sizeof(float));
        c.GW[t] = dv2_malloc_array(c.K * c.D, sizeof(float));
        c.g[t] = dv2_calloc_array(np, sizeof(double));
        c.xb[t] = rows ? dv2_malloc_array(c.block * c.D, sizeof(float)) : NULL;
        ok = c.Z[t] && c.GW[t] && c.g[t] && (!rows || c.xb[t]);
    }
    int rc = DV2_OK;
    if (!ok) {
        rc = dv2_error_set(err, DV2_ENOMEM, "logistic regression: out of memory");
    } else {
        dv2_lbfgs_opts lo;
        dv2_lbfgs_opts_default(&lo);
        lo.max_iter = o.max_iter;
        lo.gtol = o.gtol;
        lo.ftol = o.ftol;
        dv2_lbfgs_result res;
        rc = dv2_lbfgs_minimize(m->theta, np, objective, &c, &lo, &res, err);
        if (iters) *iters = res.iters;
        if (stopped) *stopped = !rc && !res.converged && res.iters >= o.max_iter;
    }
    fitctx_free(&c);
    return rc;
}

/* Scores one row: top-1 and top-5 hits for label yi. */
static void score_row(const dv2_logreg *m, const float *z, int32_t yi, uint64_t *t1, uint64_t *t5) {
    size_t K = m->nclass;
    const double *b = m->theta + K * m->dim;
    if (yi < 0 || (size_t)yi >= K) return;
    double zy = (double)z[yi] + b[yi];
    size_t best = 0, ahead = 0;
    double zb = (double)z[0] + b[0];
    for (size_t k = 0; k < K; k++) {
        double v = (double)z[k] + b[k];
        if (v > zb) {
            zb = v;
            best = k;
        }
        if (v > zy || (v == zy && k < (size_t)yi)) ahead++;
    }
    *t1 += best == (size_t)yi;
    *t5 += ahead < 5;
}

static void eval_impl(const dv2_logreg *m, const float *x, size_t ld, const int32_t *y,
                      const int64_t *rows, size_t nq, uint64_t *top1, uint64_t *top5) {
    size_t K = m->nclass, D = m->dim, B = 1024;
    float *W = dv2_malloc_array(K * D, sizeof(float));
    float *Z = dv2_malloc_array(B * K, sizeof(float));
    float *xb = rows ? dv2_malloc_array(B * D, sizeof(float)) : NULL;
    if (!W || !Z || (rows && !xb)) { /* cannot score: leave counts unchanged */
        free(W);
        free(Z);
        free(xb);
        return;
    }
    for (size_t i = 0; i < K * D; i++) W[i] = (float)m->theta[i];
    uint64_t t1 = 0, t5 = 0;
    for (size_t b0 = 0; b0 < nq; b0 += B) {
        size_t nb = nq - b0 < B ? nq - b0 : B, ldx = ld;
        const float *X = x + b0 * ld;
        if (rows) {
            for (size_t i = 0; i < nb; i++)
                memcpy(xb + i * D, x + (size_t)rows[b0 + i] * ld, D * sizeof(float));
            X = xb;
            ldx = D;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)K, (int)D, 1.0f, X,
                    (int)ldx, W, (int)D, 0.0f, Z, (int)K);
        for (size_t i = 0; i < nb; i++)
            score_row(m, Z + i * K, y[rows ? (size_t)rows[b0 + i] : b0 + i], &t1, &t5);
    }
    *top1 += t1;
    *top5 += t5;
    free(W);
    free(Z);
    free(xb);
}

void dv2_logreg_eval(const dv2_logreg *m, const float *q, size_t ld, const int32_t *y, size_t nq,
                     uint64_t *top1, uint64_t *top5) {
    eval_impl(m, q, ld, y, NULL, nq, top1, top5);
}

void dv2_logreg_eval_rows(const dv2_logreg *m, const float *x, size_t ld, const int32_t *y,
                          const int64_t *rows, size_t nrows, uint64_t *top1, uint64_t *top5) {
    eval_impl(m, x, ld, y, rows, nrows, top1, top5);
}

int dv2_logreg_grid(double *out, int full) {
    int n = full ? 45 : 12;
    for (int i = 0; i < n; i++) {
        double e = full ? -6.0 + 11.0 * i / 44.0 : -6.0 + i;
        out[i] = pow(10.0, e);
    }
    return n;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int dv2_logreg_sweep(dv2_logreg *m, dv2_logreg_sweep_result *res, const float *x, size_t ld,
                     const int32_t *y, size_t n, const double *cs, int nc, double holdout,
                     uint64_t seed, const dv2_logreg_opts *o,
                     void (*progress)(void *ctx, int i, double c, double top1), void *ctx,
                     dv2_error *err) {
    memset(res, 0, sizeof *res);
    if (nc < 1 || nc > 64) return dv2_error_set(err, DV2_EINVAL, "logistic regression: 1 to 64 values of C");
    memcpy(res->cs, cs, (size_t)nc * sizeof(double));
    qsort(res->cs, (size_t)nc, sizeof(double), cmp_double);
    res->nc = nc;
    if (nc == 1) {
        res->best_c = res->cs[0];
        res->n_fit = n;
        return dv2_logreg_fit_ex(m, x, ld, y, n, NULL, 0, res->best_c, o, &res->refit_iters,
                                 &res->refit_unconverged, err);
    }
    size_t nh = (size_t)llround(holdout * (double)n);
    if (nh < 1 || nh >= n)
        return dv2_error_set(err, DV2_EINVAL,
                             "logistic regression: %zu training rows are too few to hold out %g of them",
                             n, holdout);
    int64_t *perm = dv2_malloc_array(n, sizeof(int64_t));
    size_t np = m->nclass * (m->dim + 1);
    double *best = dv2_malloc_array(np, sizeof(double));
    if (!perm || !best) {
        free(perm);
        free(best);
        return dv2_error_set(err, DV2_ENOMEM, "logistic regression: out of memory");
    }
    dv2_rng r;
    dv2_rng_seed(&r, seed, 0);
    for (size_t i = 0; i < n; i++) perm[i] = (int64_t)i;
    for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
        size_t j = (size_t)dv2_rng_below(&r, i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int64_t *hold = perm, *fit = perm + nh; /* sorted, for locality in a mapped matrix */
    qsort(hold, nh, sizeof(int64_t), cmp_i64);
    qsort(fit, n - nh, sizeof(int64_t), cmp_i64);
    res->n_fit = n - nh;
    res->n_holdout = nh;
    double best_top1 = -1;
    int rc = DV2_OK;
    for (int i = 0; i < nc && !rc; i++) {
        rc = dv2_logreg_fit_ex(m, x, ld, y, n, fit, n - nh, res->cs[i], o, &res->iters[i],
                               &res->unconverged[i], err);
        if (rc) break;
        uint64_t t1 = 0, t5 = 0;
        dv2_logreg_eval_rows(m, x, ld, y, hold, nh, &t1, &t5);
        res->holdout_top1[i] = 100.0 * (double)t1 / (double)nh;
        if (res->holdout_top1[i] > best_top1) {
            best_top1 = res->holdout_top1[i];
            res->best_c = res->cs[i];
            memcpy(best, m->theta, np * sizeof(double));
        }
        if (progress) progress(ctx, i, res->cs[i], res->holdout_top1[i]);
    }
    if (!rc) {
        memcpy(m->theta, best, np * sizeof(double));
        rc = dv2_logreg_fit_ex(m, x, ld, y, n, NULL, 0, res->best_c, o, &res->refit_iters,
                               &res->refit_unconverged, err);
    }
    free(perm);
    free(best);
    return rc;
}
