/* cpu_bf16.c — the CPU backend with bf16 storage (dv2_backend_cpu_bf16): the
 * float32 ops of the CPU backend, with every value that a mixed-precision GPU
 * step stores in bf16 rounded to bf16 (round to nearest even) where it is
 * stored.  It makes a bf16 training run testable on the CPU, and gives the
 * CUDA backend a reference that rounds at the same points.
 *
 * The storage points (the contract for every bf16 backend):
 *   - GEMM operands: the activation and the weight of linear and patch
 *     embedding are read as bf16 (the weight is the bf16 compute copy of the
 *     f32 master weight); GEMM outputs are stored as bf16;
 *   - attention reads q, k, v as bf16 and stores its output as bf16 (the
 *     log-sum-exp stays f32);
 *   - GELU and SwiGLU outputs (GEMM inputs) are stored as bf16, and so is
 *     the pre-activation the bias+GELU epilogue saves;
 *   - backward: activation gradients entering a GEMM backward (dout) are
 *     read as bf16 and activation gradients it produces (din, dqkv) are
 *     stored as bf16; parameter gradients accumulate in f32;
 *   - everything else is f32: the residual stream, LayerNorm (statistics and
 *     output), L2 and weight normalisation, the teacher targets, losses,
 *     optimizer state, master weights, EMA.
 * Accumulation inside every op is f32 (or double), as on the GPU.
 *
 * The table is in cpu.c, with the CPU backend's.
 *
 * The rounded copies of const inputs are made in scratch allocated per call
 * (this backend is a reference, not a fast path); an allocation failure
 * fills the output with NaN like the CPU ops do. */
#include "ops/cpu/cpu.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dv2.h"

float dv2_bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u) {
        if (u & 0x007fffffu) u |= 0x00400000u; /* NaN stays a (quiet) NaN */
    } else {
        u += 0x7fffu + ((u >> 16) & 1u);       /* to nearest, ties to even */
    }
    u &= 0xffff0000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

void dv2_bf16_round_n(float *x, size_t n) {
#pragma omp parallel for schedule(static) if (DV2_CPU_PAR(n))
    for (size_t i = 0; i < n; i++) x[i] = dv2_bf16_round(x[i]);
}

/* A bf16-rounded copy of x (n floats), or NULL. */
static float *rounded(const float *x, size_t n) {
    float *y = malloc((n ? n : 1) * sizeof *y);
    if (!y) return NULL;
#pragma omp parallel for schedule(static) if (DV2_CPU_PAR(n))
    for (size_t i = 0; i < n; i++) y[i] = dv2_bf16_round(x[i]);
    return y;
}

static void nan_fill(float *x, size_t n) {
    if (x) for (size_t i = 0; i < n; i++) x[i] = NAN;
}

void dv2_cpu_bf16_linear_forward(float *out, float *pre, const float *in, const float *w,
                                 const float *b, int N, int Cin, int Cout, int flags) {
    float *ri = rounded(in, (size_t)N * Cin), *rw = rounded(w, (size_t)Cout * Cin);
    if (ri && rw) {
        dv2_cpu_linear_forward(out, pre, ri, rw, b, N, Cin, Cout, flags);
        dv2_bf16_round_n(out, (size_t)N * Cout);
        if (flags & DV2_LINEAR_GELU) dv2_bf16_round_n(pre, (size_t)N * Cout);
    } else {
        nan_fill(out, (size_t)N * Cout);
    }
    free(ri);
    free(rw);
}

void dv2_cpu_bf16_linear_backward(float *din, float *dw, float *db, float *work,
                                  const float *dout, const float *pre, const float *in,
                                  const float *w, int N, int Cin, int Cout, int flags) {
    float *rd = rounded(dout, (size_t)N * Cout), *ri = rounded(in, (size_t)N * Cin),
          *rw = rounded(w, (size_t)Cout * Cin);
    if (rd && ri && rw) {
        dv2_cpu_linear_backward(din, dw, db, work, rd, pre, ri, rw, N, Cin, Cout, flags);
        if (din) dv2_bf16_round_n(din, (size_t)N * Cin);
    } else {
        nan_fill(din, (size_t)N * Cin);
        nan_fill(dw, (size_t)Cout * Cin);
    }
    free(rd);
    free(ri);
    free(rw);
}

void dv2_cpu_bf16_patch_embed_forward(float *out, float *col, const float *img, const float *w,
                                   const float *b, int B, int Hpx, int Wpx, int p, int D) {
    float *ri = rounded(img, (size_t)B * 3 * Hpx * Wpx), *rw = rounded(w, (size_t)D * 3 * p * p);
    size_t nout = (size_t)B * (Hpx / p) * (Wpx / p) * D;
    if (ri && rw) {
        dv2_cpu_patch_embed_forward(out, col, ri, rw, b, B, Hpx, Wpx, p, D);
        dv2_bf16_round_n(out, nout);
    } else {
        nan_fill(out, nout);
    }
    free(ri);
    free(rw);
}

void dv2_cpu_bf16_patch_embed_backward(float *dw, float *db, const float *dout, const float *col, int B,
                                    int Hpx, int Wpx, int p, int D) {
    size_t nout = (size_t)B * (Hpx / p) * (Wpx / p) * D;
    float *rd = rounded(dout, nout);
    if (rd) dv2_cpu_patch_embed_backward(dw, db, rd, col, B, Hpx, Wpx, p, D);
    else nan_fill(dw, (size_t)D * 3 * p * p);
    free(rd);
}

void dv2_cpu_bf16_attention_forward(float *out, float *lse, const float *qkv, const dv2_seqpack *sp,
                                    int H, int dh) {
    int T = sp->T;
    float *rq = rounded(qkv, (size_t)T * 3 * H * dh);
    if (rq) {
        dv2_cpu_attention_forward(out, lse, rq, sp, H, dh);
        dv2_bf16_round_n(out, (size_t)T * H * dh);
    } else {
        nan_fill(out, (size_t)T * H * dh);
    }
    free(rq);
}

void dv2_cpu_bf16_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                                     const float *lse, const dv2_seqpack *sp, int H, int dh) {
    int T = sp->T;
    size_t n = (size_t)T * H * dh;
    float *rd = rounded(dout, n), *rq = rounded(qkv, 3 * n), *ro = rounded(out, n);
    if (rd && rq && ro) {
        dv2_cpu_attention_backward(dqkv, rd, rq, ro, lse, sp, H, dh);
        dv2_bf16_round_n(dqkv, 3 * n);
    } else {
        nan_fill(dqkv, 3 * n);
    }
    free(rd);
    free(rq);
    free(ro);
}

void dv2_cpu_bf16_gelu_forward(float *out, const float *in, size_t n) {
    dv2_cpu_gelu_forward(out, in, n);
    dv2_bf16_round_n(out, n);
}

void dv2_cpu_bf16_swiglu_forward(float *out, const float *in, int N, int h) {
    dv2_cpu_swiglu_forward(out, in, N, h);
    dv2_bf16_round_n(out, (size_t)N * h);
}
