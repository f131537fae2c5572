/* cpu_bf16.c — the CPU backend with bf16 storage ("cpu-bf16"): the
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
 * The weights' compute copies (ops.h, be->weights_bf16): this backend keeps
 * them, and its GEMMs read the weight from the copy (widened, exact) after
 * checking it against the master weight rounded; a copy that differs (a
 * path that wrote the master weight and not its copy) fails the op with
 * DV2_EINVAL and NaN outputs, so a stale copy cannot pass a bf16 test here
 * and then silently use old weights on a GPU, which reads only the copy.
 *
 * The rounded copies of const inputs are made in the backend's workspace
 * (this backend is a reference, not a fast path); when it cannot grow the
 * output is filled with NaN and the backend's status records the failure. */
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

static dv2_bf16 bits_of(float x) {
    uint32_t u;
    x = dv2_bf16_round(x);
    memcpy(&u, &x, sizeof u);
    return (dv2_bf16)(u >> 16);
}

void dv2_bf16_store_n(dv2_bf16 *dst, const float *src, size_t n) {
#pragma omp parallel for schedule(static) if (DV2_CPU_PAR(n))
    for (size_t i = 0; i < n; i++) dst[i] = bits_of(src[i]);
}

void dv2_bf16_load_n(float *dst, const dv2_bf16 *src, size_t n) {
#pragma omp parallel for schedule(static) if (DV2_CPU_PAR(n))
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)src[i] << 16;
        memcpy(&dst[i], &u, sizeof u);
    }
}

/* dst (n) ← the weight w as the GEMM reads it: w16 widened when there is a
 * copy (after checking it is w rounded), else w rounded; returns dst + n, or
 * NULL when the copy is stale. */
static float *weight_into(float *dst, const float *w, const dv2_bf16 *w16, size_t n) {
    if (!w16) {
#pragma omp parallel for schedule(static) if (DV2_CPU_PAR(n))
        for (size_t i = 0; i < n; i++) dst[i] = dv2_bf16_round(w[i]);
        return dst + n;
    }
    int same = 1;
#pragma omp parallel for schedule(static) reduction(&& : same) if (DV2_CPU_PAR(n))
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)w16[i] << 16;
        memcpy(&dst[i], &u, sizeof u);
        same = same && bits_of(w[i]) == w16[i];
    }
    return same ? dst + n : NULL;
}

/* dst (n) ← x rounded to bf16; returns dst + n (the next free float). */
static float *round_into(float *dst, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (DV2_CPU_PAR(n))
    for (size_t i = 0; i < n; i++) dst[i] = dv2_bf16_round(x[i]);
    return dst + n;
}

/* `floats` floats of the backend's workspace, or NULL (the status is set). */
static float *scratch(const dv2_backend *be, size_t floats) {
    return dv2_cpu_workspace(be, sizeof(float) * (floats ? floats : 1));
}

int dv2_cpu_bf16_linear_forward(const dv2_backend *be, float *out, float *pre, const float *in,
                                const float *w, const dv2_bf16 *w16, const float *b, int N,
                                int Cin, int Cout, int flags) {
    size_t ni = (size_t)N * Cin, nw = (size_t)Cout * Cin;
    float *ri = scratch(be, ni + nw);
    if (!ri) {
        dv2_cpu_nan_fill(out, (size_t)N * Cout);
        return DV2_ENOMEM;
    }
    float *rw = round_into(ri, in, ni);
    if (!weight_into(rw, w, w16, nw)) {
        dv2_cpu_nan_fill(out, (size_t)N * Cout);
        if (flags & DV2_LINEAR_GELU) dv2_cpu_nan_fill(pre, (size_t)N * Cout);
        return dv2_cpu_fail(be, DV2_EINVAL);
    }
    dv2_cpu_linear_forward(out, pre, ri, rw, b, N, Cin, Cout, flags);
    dv2_bf16_round_n(out, (size_t)N * Cout);
    if (flags & DV2_LINEAR_GELU) dv2_bf16_round_n(pre, (size_t)N * Cout);
    return DV2_OK;
}

int dv2_cpu_bf16_linear_backward(const dv2_backend *be, float *din, float *dw, float *db,
                                 float *work, const float *dout, const float *pre,
                                 const float *in, const float *w, const dv2_bf16 *w16, int N,
                                 int Cin, int Cout, int flags) {
    size_t nd = (size_t)N * Cout, ni = (size_t)N * Cin, nw = (size_t)Cout * Cin;
    float *rd = scratch(be, nd + ni + (din ? nw : 0));
    if (!rd) {
        dv2_cpu_nan_fill(din, ni);
        dv2_cpu_nan_fill(dw, nw);
        return DV2_ENOMEM;
    }
    float *ri = round_into(rd, dout, nd), *rw = round_into(ri, in, ni);
    if (din && !weight_into(rw, w, w16, nw)) { /* the weight is read for din only */
        dv2_cpu_nan_fill(din, ni);
        dv2_cpu_nan_fill(dw, nw);
        return dv2_cpu_fail(be, DV2_EINVAL);
    }
    dv2_cpu_linear_backward(din, dw, db, work, rd, pre, ri, din ? rw : NULL, N, Cin, Cout, flags);
    if (din) dv2_bf16_round_n(din, ni);
    return DV2_OK;
}

int dv2_cpu_bf16_patch_embed_forward(const dv2_backend *be, float *out, float *col,
                                     const float *img, const float *w, const dv2_bf16 *w16,
                                     const float *b, int B, int Hpx, int Wpx, int p, int D) {
    size_t ni = (size_t)B * 3 * Hpx * Wpx, nw = (size_t)D * 3 * p * p;
    size_t nout = (size_t)B * (Hpx / p) * (Wpx / p) * D;
    float *ri = scratch(be, ni + nw);
    if (!ri) {
        dv2_cpu_nan_fill(out, nout);
        return DV2_ENOMEM;
    }
    float *rw = round_into(ri, img, ni);
    if (!weight_into(rw, w, w16, nw)) {
        dv2_cpu_nan_fill(out, nout);
        return dv2_cpu_fail(be, DV2_EINVAL);
    }
    dv2_cpu_patch_embed_forward(out, col, ri, rw, b, B, Hpx, Wpx, p, D);
    dv2_bf16_round_n(out, nout);
    return DV2_OK;
}

int dv2_cpu_bf16_patch_embed_backward(const dv2_backend *be, float *dw, float *db,
                                      const float *dout, const float *col, int B, int Hpx,
                                      int Wpx, int p, int D) {
    size_t nout = (size_t)B * (Hpx / p) * (Wpx / p) * D;
    float *rd = scratch(be, nout);
    if (!rd) {
        dv2_cpu_nan_fill(dw, (size_t)D * 3 * p * p);
        return DV2_ENOMEM;
    }
    round_into(rd, dout, nout);
    dv2_cpu_patch_embed_backward(dw, db, rd, col, B, Hpx, Wpx, p, D);
    return DV2_OK;
}

/* Attention's rounded inputs and its score blocks share one workspace:
 * the rounded copies first, the kernel's work after them. */
int dv2_cpu_bf16_attention_forward(const dv2_backend *be, float *out, float *lse,
                                   const float *qkv, const dv2_seqpack *sp, int H, int dh) {
    size_t n = (size_t)sp->T * H * dh;
    float *rq = scratch(be, 3 * n + dv2_cpu_attention_work(sp, 0));
    if (!rq) {
        dv2_cpu_nan_fill(out, n);
        return DV2_ENOMEM;
    }
    float *work = round_into(rq, qkv, 3 * n);
    dv2_cpu_attention_forward(out, lse, rq, sp, H, dh, work);
    dv2_bf16_round_n(out, n);
    return DV2_OK;
}

int dv2_cpu_bf16_attention_backward(const dv2_backend *be, float *dqkv, const float *dout,
                                    const float *qkv, const float *out, const float *lse,
                                    const dv2_seqpack *sp, int H, int dh) {
    size_t n = (size_t)sp->T * H * dh;
    float *rd = scratch(be, 5 * n + dv2_cpu_attention_work(sp, 1));
    if (!rd) {
        dv2_cpu_nan_fill(dqkv, 3 * n);
        return DV2_ENOMEM;
    }
    float *rq = round_into(rd, dout, n), *ro = round_into(rq, qkv, 3 * n);
    float *work = round_into(ro, out, n);
    dv2_cpu_attention_backward(dqkv, rd, rq, ro, lse, sp, H, dh, work);
    dv2_bf16_round_n(dqkv, 3 * n);
    return DV2_OK;
}

int dv2_cpu_bf16_gelu_forward(const dv2_backend *be, float *out, const float *in, size_t n) {
    (void)be;
    dv2_cpu_gelu_forward(out, in, n);
    dv2_bf16_round_n(out, n);
    return DV2_OK;
}

int dv2_cpu_bf16_swiglu_forward(const dv2_backend *be, float *out, const float *in, int N, int h) {
    (void)be;
    dv2_cpu_swiglu_forward(out, in, N, h);
    dv2_bf16_round_n(out, (size_t)N * h);
    return DV2_OK;
}
