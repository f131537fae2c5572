/* cuda_gelu.cuh — the exact GELU x·Φ(x) and its derivative on the device,
 * in the float operation sequence of ops/cpu/cpu_act.c (its erfc and exp
 * evaluations, with __f*_rn intrinsics so that nvcc contracts nothing into
 * an FMA): the same inputs give the CPU's bits, and the bf16 backend rounds
 * the same values.  Used by the GELU entries and the GEMM's GELU epilogue. */
#ifndef DV2_OPS_CUDA_GELU_CUH
#define DV2_OPS_CUDA_GELU_CUH

/* exp(x) for x <= 0, clamped at −87 (cpu_act.c exp_neg). */
static __device__ __forceinline__ float dv2_cuda_gelu_expneg(float x) {
    x = x > -87.0f ? x : -87.0f;
    float n = __fsub_rn(__fadd_rn(__fmul_rn(x, 1.44269504088896341f), 12582912.0f), 12582912.0f);
    float r = __fsub_rn(x, __fmul_rn(n, 0.693145751953125f));
    r = __fsub_rn(r, __fmul_rn(n, 1.428606765330187e-06f));
    float p = 0.0013888888889f;
    p = __fadd_rn(0.0083333333333f, __fmul_rn(r, p));
    p = __fadd_rn(0.041666666666f, __fmul_rn(r, p));
    p = __fadd_rn(0.16666666666f, __fmul_rn(r, p));
    p = __fadd_rn(0.5f, __fmul_rn(r, p));
    p = __fadd_rn(1.0f, __fmul_rn(r, p));
    p = __fadd_rn(1.0f, __fmul_rn(r, p));
    return __fmul_rn(p, __int_as_float(((int)n + 127) << 23));
}

/* 2Φ(x) = erfc(−x/√2) (cpu_act.c phi2). */
static __device__ __forceinline__ float dv2_cuda_gelu_phi2(float x) {
    float u = __fmul_rn(x, 0.70710678118654752f), z = u < 0.0f ? -u : u;
    float t = __fdiv_rn(1.0f, __fadd_rn(1.0f, __fmul_rn(0.5f, z)));
    float p = 0.17087277f;
    p = __fadd_rn(-0.82215223f, __fmul_rn(t, p));
    p = __fadd_rn(1.48851587f, __fmul_rn(t, p));
    p = __fadd_rn(-1.13520398f, __fmul_rn(t, p));
    p = __fadd_rn(0.27886807f, __fmul_rn(t, p));
    p = __fadd_rn(-0.18628806f, __fmul_rn(t, p));
    p = __fadd_rn(0.09678418f, __fmul_rn(t, p));
    p = __fadd_rn(0.37409196f, __fmul_rn(t, p));
    p = __fadd_rn(1.00002368f, __fmul_rn(t, p));
    p = __fadd_rn(-1.26551223f, __fmul_rn(t, p));
    float c = __fmul_rn(t, dv2_cuda_gelu_expneg(__fsub_rn(p, __fmul_rn(z, z))));
    return u < 0.0f ? c : __fsub_rn(2.0f, c);
}

/* GELU(x) = 0.5·x·2Φ(x) */
static __device__ __forceinline__ float dv2_cuda_gelu(float x) {
    return __fmul_rn(__fmul_rn(0.5f, x), dv2_cuda_gelu_phi2(x));
}

/* GELU'(x) = Φ(x) + x·φ(x),  φ(x) = exp(−x²/2)/√(2π) */
static __device__ __forceinline__ float dv2_cuda_gelu_grad(float x) {
    float q = dv2_cuda_gelu_expneg(__fmul_rn(__fmul_rn(-0.5f, x), x));
    return __fadd_rn(__fmul_rn(0.5f, dv2_cuda_gelu_phi2(x)), __fmul_rn(__fmul_rn(x, 0.3989422804014327f), q));
}

#endif
