/* cpu_norm.c — CPU backend: LayerNorm (two-pass statistics in double, in
 * eight partial sums per row),
 * row L2 normalization and the weight normalization of the heads' last
 * layer.  Parameter-gradient reductions run over column blocks with double
 * accumulators so results do not depend on the number of threads. */
#include <math.h>
#include <stdlib.h>
#include "ops/cpu/cpu.h"

/* Row sums in double over 8 interleaved partial sums (element c goes to
 * sum c mod 8), added pairwise at the end: a fixed order, so the same bits
 * on every machine and thread count, without one chain of dependent
 * additions per row. */
#define NACC 8
static inline double tree8(const double *a) {
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* Σ x[c] */
static double row_sum(const float *x, int C) {
    double a[NACC] = {0};
    int c = 0;
    for (; c + NACC <= C; c += NACC)
        for (int k = 0; k < NACC; k++) a[k] += x[c + k];
    for (int k = 0; c + k < C; k++) a[k] += x[c + k];
    return tree8(a);
}

/* Σ (x[c] − mu)² */
static double row_sq(const float *x, double mu, int C) {
    double a[NACC] = {0};
    int c = 0;
    for (; c + NACC <= C; c += NACC)
        for (int k = 0; k < NACC; k++) {
            double d = x[c + k] - mu;
            a[k] += d * d;
        }
    for (int k = 0; c + k < C; k++) {
        double d = x[c + k] - mu;
        a[k] += d * d;
    }
    return tree8(a);
}

/* Σ g[c]·w[c] into *s1 and Σ g[c]·w[c]·(x[c] − m)·r into *s2 */
static void row_dots(double *s1, double *s2, const float *g, const float *w, const float *x,
                     float m, float r, int C) {
    double a1[NACC] = {0}, a2[NACC] = {0};
    int c = 0;
    for (; c + NACC <= C; c += NACC)
        for (int k = 0; k < NACC; k++) {
            double gx = (double)g[c + k] * w[c + k];
            a1[k] += gx;
            a2[k] += gx * ((x[c + k] - m) * r);
        }
    for (int k = 0; c + k < C; k++) {
        double gx = (double)g[c + k] * w[c + k];
        a1[k] += gx;
        a2[k] += gx * ((x[c + k] - m) * r);
    }
    *s1 = tree8(a1);
    *s2 = tree8(a2);
}

void dv2_cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                               const float *w, const float *b, int N, int C, float eps) {
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)N * C))
    for (long n = 0; n < N; n++) {
        /* restrict: out never overlaps in, w or b, so the last loop vectorises */
        const float *restrict x = in + n * C, *restrict wr = w, *restrict br = b;
        float *restrict y = out + n * C;
        double mu = row_sum(x, C) / C, v = row_sq(x, mu, C);
        float r = (float)(1.0 / sqrt(v / C + (double)eps));
        float m = (float)mu;
        for (int c = 0; c < C; c++) y[c] = (x[c] - m) * r * wr[c] + br[c];
        mean[n] = m;
        rstd[n] = r;
    }
}

void dv2_cpu_layernorm_backward(float *din, float *dw, float *db, const float *dout,
                                const float *in, const float *w, const float *mean,
                                const float *rstd, int N, int C) {
    if (din) {
        #pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)N * C))
        for (long n = 0; n < N; n++) {
            const float *x = in + n * C, *g = dout + n * C;
            float m = mean[n], r = rstd[n];
            double s1, s2;
            row_dots(&s1, &s2, g, w, x, m, r, C);
            float a1 = (float)(s1 / C), a2 = (float)(s2 / C);
            float *restrict d = din + n * C; /* din overlaps no input */
            const float *restrict xr = x, *restrict gr = g, *restrict wr = w;
            for (int c = 0; c < C; c++) {
                float xh = (xr[c] - m) * r;
                d[c] += r * (gr[c] * wr[c] - a1 - xh * a2);
            }
        }
    }
    if (!dw && !db) return;
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)N * C))
    for (int c0 = 0; c0 < C; c0 += 32) {
        int c1 = c0 + 32 < C ? c0 + 32 : C;
        double aw[32] = {0}, ab[32] = {0};
        for (long n = 0; n < N; n++) {
            const float *x = in + n * C, *g = dout + n * C;
            float m = mean[n], r = rstd[n];
            for (int c = c0; c < c1; c++) {
                aw[c - c0] += (double)g[c] * ((x[c] - m) * r);
                ab[c - c0] += g[c];
            }
        }
        for (int c = c0; c < c1; c++) {
            if (dw) dw[c] += (float)aw[c - c0];
            if (db) db[c] += (float)ab[c - c0];
        }
    }
}

void dv2_cpu_l2norm_forward(float *out, float *norm, const float *in, int N, int C, float eps) {
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)N * C))
    for (long n = 0; n < N; n++) {
        const float *x = in + n * C;
        double s = 0;
        for (int c = 0; c < C; c++) s += (double)x[c] * x[c];
        float nr = (float)sqrt(s);
        norm[n] = nr;
        float inv = 1.0f / (nr > eps ? nr : eps);
        for (int c = 0; c < C; c++) out[n * C + c] = x[c] * inv;
    }
}

/* For ||x|| > eps: d(x/||x||) = (g − x̂ (x̂·g)) / ||x||; below eps the map is x/eps. */
void dv2_cpu_l2norm_backward(float *din, const float *dout, const float *in, const float *norm,
                             int N, int C, float eps) {
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)N * C))
    for (long n = 0; n < N; n++) {
        const float *x = in + n * C, *g = dout + n * C;
        float *d = din + n * C;
        float nr = norm[n];
        if (nr > eps) {
            double s = 0;
            for (int c = 0; c < C; c++) s += (double)x[c] * g[c];
            float inv = 1.0f / nr, k = (float)(s / ((double)nr * nr * nr));
            for (int c = 0; c < C; c++) d[c] += g[c] * inv - x[c] * k;
        } else {
            for (int c = 0; c < C; c++) d[c] += g[c] / eps;
        }
    }
}

void dv2_cpu_weightnorm_forward(float *w, float *vnorm, const float *v, const float *g,
                                int K, int C) {
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)K * C))
    for (long k = 0; k < K; k++) {
        const float *vr = v + k * C;
        double s = 0;
        for (int c = 0; c < C; c++) s += (double)vr[c] * vr[c];
        float nr = (float)sqrt(s);
        vnorm[k] = nr;
        float a = g[k] / nr;
        for (int c = 0; c < C; c++) w[k * C + c] = vr[c] * a;
    }
}

/* w = g v/||v||:  dg = (dw·v)/||v||;  dv = (g/||v||)(dw − v (dw·v)/||v||²). */
void dv2_cpu_weightnorm_backward(float *dv, float *dg, const float *dw, const float *v,
                                 const float *g, const float *vnorm, int K, int C) {
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)K * C))
    for (long k = 0; k < K; k++) {
        const float *vr = v + k * C, *gr = dw + k * C;
        double s = 0;
        for (int c = 0; c < C; c++) s += (double)gr[c] * vr[c];
        float nr = vnorm[k];
        if (dg) dg[k] += (float)(s / nr);
        if (dv) {
            float a = g[k] / nr, b = (float)(s / ((double)nr * nr));
            for (int c = 0; c < C; c++) dv[k * C + c] += a * (gr[c] - vr[c] * b);
        }
    }
}
