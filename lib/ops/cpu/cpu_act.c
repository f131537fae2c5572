/* cpu_act.c — CPU backend: activations (exact GELU, SwiGLU), the
 * LayerScale residual with stochastic-depth subsets, token assembly
 * (CLS, registers, mask token, positional embedding) and row gather/scatter.
 * Reductions over rows (parameter gradients, scatter with repeated rows) are
 * split over column blocks, so no two threads write the same element and the
 * summation order is fixed. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "ops/cpu/cpu.h"
#include "ops/cpu/cpu_vec.h"

#define CBLK 64

/* Exact GELU, x·Φ(x) = 0.5·x·erfc(−x/√2), evaluated as erfc of |x|/√2 with
 * the Numerical Recipes erfcc approximation (fractional error < 1.2e-7 in
 * exact arithmetic) and an exp of Cody-Waite reduction + degree-6 Taylor
 * polynomial (cpu_vec.c).  Against a double-precision reference the float
 * result is within 3e-7 relative for |x| < 4 and keeps its relative accuracy
 * in the negative tail, where 1 + erff(x/√2) cancels.  The vector kernels
 * give the same bits on every instruction set, length and alignment. */

/* Chunks of 4096 elements spread over the threads. */
#define ACT_CHUNK 4096

void dv2_cpu_gelu_forward(float *out, const float *in, size_t n) {
    const dv2_cpu_vec_ops *v = dv2_cpu_vec();
    size_t nc = (n + ACT_CHUNK - 1) / ACT_CHUNK;
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR(n))
    for (size_t c = 0; c < nc; c++) {
        size_t i = c * ACT_CHUNK, e = i + ACT_CHUNK < n ? i + ACT_CHUNK : n;
        v->gelu(out + i, in + i, e - i);
    }
}

/* d/dx x·Φ(x) = Φ(x) + x·φ(x),  φ(x) = exp(−x²/2)/√(2π). */
void dv2_cpu_gelu_backward(float *din, const float *dout, const float *in, size_t n,
                           int accumulate) {
    const dv2_cpu_vec_ops *v = dv2_cpu_vec();
    size_t nc = (n + ACT_CHUNK - 1) / ACT_CHUNK;
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR(n))
    for (size_t c = 0; c < nc; c++) {
        size_t i = c * ACT_CHUNK, e = i + ACT_CHUNK < n ? i + ACT_CHUNK : n;
        v->gelu_grad(din + i, dout + i, in + i, e - i, accumulate);
    }
}

void dv2_cpu_swiglu_forward(float *out, const float *in, int N, int h) {
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)N * h))
    for (long n = 0; n < N; n++) {
        const float *x1 = in + n * 2 * h, *x2 = x1 + h;
        float *o = out + n * h;
        for (int j = 0; j < h; j++) o[j] = x1[j] / (1.0f + expf(-x1[j])) * x2[j];
    }
}

void dv2_cpu_swiglu_backward(float *din, const float *dout, const float *in, int N, int h) {
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)N * h))
    for (long n = 0; n < N; n++) {
        const float *x1 = in + n * 2 * h, *x2 = x1 + h, *g = dout + n * h;
        float *d1 = din + n * 2 * h, *d2 = d1 + h;
        for (int j = 0; j < h; j++) {
            float s = 1.0f / (1.0f + expf(-x1[j]));
            float silu = x1[j] * s;
            d1[j] += g[j] * x2[j] * (s + x1[j] * s * (1.0f - s));
            d2[j] += g[j] * silu;
        }
    }
}

void dv2_cpu_residual_forward(float *x, const float *y, const float *gamma, const int *rows,
                              const float *scale, int n, int C) {
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)n * C))
    for (long i = 0; i < n; i++) {
        float *xr = x + (size_t)(rows ? rows[i] : i) * C;
        const float *yr = y + i * C;
        float s = scale ? scale[i] : 1.0f;
        for (int c = 0; c < C; c++) xr[c] += s * gamma[c] * yr[c];
    }
}

void dv2_cpu_residual_backward(float *dy, float *dgamma, const float *dx, const float *y,
                               const float *gamma, const int *rows, const float *scale,
                               int n, int C) {
    if (dy) {
        #pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)n * C))
        for (long i = 0; i < n; i++) {
            const float *g = dx + (size_t)(rows ? rows[i] : i) * C;
            float s = scale ? scale[i] : 1.0f;
            for (int c = 0; c < C; c++) dy[i * C + c] += s * gamma[c] * g[c];
        }
    }
    if (!dgamma) return;
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)n * C))
    for (int c0 = 0; c0 < C; c0 += CBLK) {
        int c1 = c0 + CBLK < C ? c0 + CBLK : C;
        double acc[CBLK] = {0};
        for (long i = 0; i < n; i++) {
            const float *g = dx + (size_t)(rows ? rows[i] : i) * C, *yr = y + i * C;
            double s = scale ? scale[i] : 1.0;
            for (int c = c0; c < c1; c++) acc[c - c0] += s * yr[c] * g[c];
        }
        for (int c = c0; c < c1; c++) dgamma[c] += (float)acc[c - c0];
    }
}

void dv2_cpu_embed_tokens_forward(float *x, const float *patch, const float *cls,
                                  const float *reg, const float *pos, const uint8_t *mask,
                                  const float *mask_token, int B, int N, int R, int D) {
    int S = 1 + R + N;
    #pragma omp parallel for collapse(2) schedule(static) if (DV2_CPU_PAR((size_t)B * S * D))
    for (int b = 0; b < B; b++)
        for (int t = 0; t < S; t++) {
            float *xr = x + ((size_t)b * S + t) * D;
            if (t == 0) {
                for (int c = 0; c < D; c++) xr[c] = cls[c] + pos[c];
            } else if (t <= R) {
                memcpy(xr, reg + (size_t)(t - 1) * D, sizeof(float) * (size_t)D);
            } else {
                int j = t - 1 - R;
                const float *src = (mask && mask[(size_t)b * N + j]) ? mask_token
                                   : patch + ((size_t)b * N + j) * D;
                const float *pr = pos + (size_t)(1 + j) * D;
                for (int c = 0; c < D; c++) xr[c] = src[c] + pr[c];
            }
        }
}

void dv2_cpu_embed_tokens_backward(float *dpatch, float *dcls, float *dreg, float *dpos,
                                   float *dmask_token, const float *dx, const uint8_t *mask,
                                   int B, int N, int R, int D) {
    int S = 1 + R + N;
    if (dpatch) {
        #pragma omp parallel for collapse(2) schedule(static) if (DV2_CPU_PAR((size_t)B * N * D))
        for (int b = 0; b < B; b++)
            for (int j = 0; j < N; j++) {
                if (mask && mask[(size_t)b * N + j]) continue;
                const float *g = dx + ((size_t)b * S + 1 + R + j) * D;
                float *d = dpatch + ((size_t)b * N + j) * D;
                for (int c = 0; c < D; c++) d[c] += g[c];
            }
    }
    /* sums over the batch, in column blocks of contiguous reads, double accumulators */
    if (dpos) {
        #pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)B * (N + 1) * D))
        for (int j = 0; j <= N; j++) {
            int t = j == 0 ? 0 : R + j;
            for (int c0 = 0; c0 < D; c0 += CBLK) {
                int c1 = c0 + CBLK < D ? c0 + CBLK : D;
                double acc[CBLK] = {0};
                for (int b = 0; b < B; b++) {
                    const float *g = dx + ((size_t)b * S + t) * D;
                    for (int c = c0; c < c1; c++) acc[c - c0] += g[c];
                }
                for (int c = c0; c < c1; c++) dpos[(size_t)j * D + c] += (float)acc[c - c0];
            }
        }
    }
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)B * S * D))
    for (int c0 = 0; c0 < D; c0 += CBLK) {
        int c1 = c0 + CBLK < D ? c0 + CBLK : D;
        double sc[CBLK] = {0}, sm[CBLK] = {0};
        for (int b = 0; b < B; b++) {
            const float *row = dx + (size_t)b * S * D;
            for (int c = c0; c < c1; c++) sc[c - c0] += row[c];
            if (dreg)
                for (int r = 0; r < R; r++)
                    for (int c = c0; c < c1; c++) dreg[(size_t)r * D + c] += row[(size_t)(1 + r) * D + c];
            if (dmask_token && mask)
                for (int j = 0; j < N; j++)
                    if (mask[(size_t)b * N + j])
                        for (int c = c0; c < c1; c++) sm[c - c0] += row[(size_t)(1 + R + j) * D + c];
        }
        for (int c = c0; c < c1; c++) {
            if (dcls) dcls[c] += (float)sc[c - c0];
            if (dmask_token) dmask_token[c] += (float)sm[c - c0];
        }
    }
}

void dv2_cpu_gather_rows(float *out, const float *in, const int *rows, int n, int C) {
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)n * C))
    for (long i = 0; i < n; i++)
        memcpy(out + i * C, in + (size_t)rows[i] * C, sizeof(float) * (size_t)C);
}

void dv2_cpu_scatter_add_rows(float *out, const float *in, const int *rows, int n, int C) {
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)n * C))
    for (int c0 = 0; c0 < C; c0 += CBLK) {
        int c1 = c0 + CBLK < C ? c0 + CBLK : C;
        for (long i = 0; i < n; i++) {
            float *o = out + (size_t)rows[i] * C;
            const float *s = in + i * C;
            for (int c = c0; c < c1; c++) o[c] += s[c];
        }
    }
}
