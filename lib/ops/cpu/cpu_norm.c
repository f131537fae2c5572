/* cpu_norm.c — CPU backend: LayerNorm (two-pass statistics in double),
 * row L2 normalization and the weight normalization of the heads' last
 * layer.  Parameter-gradient reductions run over column blocks with double
 * accumulators so results do not depend on the number of threads. */
#include <math.h>
#include <stdlib.h>
#include "ops/cpu/cpu.h"

void dv2_cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                               const float *w, const float *b, int N, int C, float eps) {
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)N * C))
    for (long n = 0; n < N; n++) {
        const float *x = in + n * C;
        float *y = out + n * C;
        double s = 0;
        for (int c = 0; c < C; c++) s += x[c];
        double mu = s / C, v = 0;
        for (int c = 0; c < C; c++) { double d = x[c] - mu; v += d * d; }
        float r = (float)(1.0 / sqrt(v / C + (double)eps));
        float m = (float)mu;
        for (int c = 0; c < C; c++) y[c] = (x[c] - m) * r * w[c] + b[c];
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
            double s1 = 0, s2 = 0;
            for (int c = 0; c < C; c++) {
                double gx = (double)g[c] * w[c];
                s1 += gx;
                s2 += gx * ((x[c] - m) * r);
            }
            float a1 = (float)(s1 / C), a2 = (float)(s2 / C);
            float *d = din + n * C;
            for (int c = 0; c < C; c++) {
                float xh = (x[c] - m) * r;
                d[c] += r * (g[c] * w[c] - a1 - xh * a2);
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
