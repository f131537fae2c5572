/* cpu_vec.h — internal: the CPU backend's vector math (exact GELU and its
 * derivative, the attention softmax rows, column sums), one source compiled
 * for SSE2, AVX2 and AVX-512F and chosen once at run time from the CPU's
 * features.
 *
 * Every variant runs the same sequence of IEEE operations on 16 lanes (no
 * fused multiply-add; a short tail goes through a padded block), so the
 * results are bit-identical across instruction sets, lengths and
 * alignments: a run on an AVX-512 server reproduces one on an older CPU
 * (the column sums add each column in its own lane, in row order).
 * DV2_CPU_ISA=sse2|avx2|avx512 asks for a variant (tests; a variant the CPU
 * lacks falls back to the best it has, with a warning). */
#ifndef DV2_OPS_CPU_VEC_H
#define DV2_OPS_CPU_VEC_H

#include <stddef.h>

typedef struct {
    const char *name; /* "sse2", "avx2", "avx512" */
    /* out[i] = x·Φ(x), x = in[i] (in place allowed) */
    void (*gelu)(float *out, const float *in, size_t n);
    /* din[i] (+)= dout[i]·(Φ(x) + x·φ(x)): overwrite, or add when accumulate */
    void (*gelu_grad)(float *din, const float *dout, const float *in, size_t n, int accumulate);
    /* max over r[0..n) ignoring NaNs (−inf when n = 0 or all NaN) */
    float (*max)(const float *r, int n);
    /* r[j] ← exp(r[j] − shift) (r[j] − shift ≤ 88); returns Σ r[j], summed
     * in 16 float lanes and the lanes in double, in a fixed order */
    double (*exp_sum)(float *r, int n, float shift);
    /* p[j] ← exp(p[j] − lse); dp[j] ← p[j]·(dp[j] − d) */
    void (*softmax_grad)(float *p, float *dp, int n, float lse, float d);
    /* acc[o] += Σ_n x[n·ld + o] for o < w, each column summed in double in
     * row order (column sums of a row block: bias gradients) */
    void (*colsum)(double *acc, const float *x, long N, size_t ld, int w);
} dv2_cpu_vec_ops;

/* The variant for this CPU (chosen on the first call; thread-safe). */
const dv2_cpu_vec_ops *dv2_cpu_vec(void);
/* A named variant, or NULL when unknown or not supported by this CPU. */
const dv2_cpu_vec_ops *dv2_cpu_vec_get(const char *name);

#endif
