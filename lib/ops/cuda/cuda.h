/* cuda.h — internal: the CUDA backends ("cuda": float32 storage, FP32
 * GEMMs without TF32; "cuda-bf16": bf16 values stored at the points listed
 * in ops/cpu/cpu_bf16.c, GEMMs on bf16 tensor cores with f32 accumulation).
 * The context, the memory entries, the GEMM helpers, the collectives and
 * the table are in cuda.cu; the kernels by op family in cuda_*.cu.  Every entry has the semantics of the ops.h entry of
 * the same name and is held to the CPU backend by tests/test_backend_ops.
 *
 * Rules for every kernel file:
 *   - work is queued on the backend's stream (dv2_cuda_stream), never on the
 *     default stream, and never synchronises unless it returns a host value;
 *   - scratch comes from dv2_cuda_workspace (the arena; valid until the next
 *     workspace call) or dv2_cuda_small (a fixed 64 KiB device buffer for
 *     reduction results, valid until the next dv2_cuda_small call);
 *   - after its launches an entry returns dv2_cuda_launched(be), which turns
 *     a launch error into the sticky status;
 *   - deterministic: no floating-point atomics; reductions in a fixed order,
 *     so the same inputs give the same bits on every run (resume stays
 *     exact);
 *   - in the bf16 backend (dv2_cuda_bf16(be)) values are rounded with
 *     dv2_bf16r exactly where cpu_bf16.c rounds. */
#ifndef DV2_OPS_CUDA_H
#define DV2_OPS_CUDA_H

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dv2.h"
#include "ops/ops.h"

struct dv2_dist;
struct dv2_error;

/* The context of one CUDA backend object. */
typedef struct dv2_cuda_ctx {
    int device, bf16;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *ws;                    /* the workspace arena (device) */
    size_t ws_cap, ws_high;
    void *small;                 /* 64 KiB device scratch for reduction results */
    void *pinned;                /* 64 KiB pinned host buffer for host results */
    int status;                  /* first failure (sticky) */
    uint64_t to_host, to_device;
    char device_name[128];
    void *nccl;                  /* ncclComm_t of the collectives (NULL until the first) */
    int nccl_world, nccl_off;
    size_t mem_total, mem_free_min; /* cudaMemGetInfo after each allocation */
    cudaStream_t comm_stream;    /* the started collectives (NCCL; made on first use) */
    cudaEvent_t ev_start, ev_done; /* stream → comm_stream, comm_stream → stream */
    int coll_pending;            /* collectives started on comm_stream and not waited for */
} dv2_cuda_ctx;

#define DV2_CUDA_SMALL_BYTES 65536
#define DV2_CUDA_THREADS 256

static inline dv2_cuda_ctx *dv2_cuda_ctx_of(const dv2_backend *be) { return (dv2_cuda_ctx *)be->ctx; }
static inline cudaStream_t dv2_cuda_stream(const dv2_backend *be) { return dv2_cuda_ctx_of(be)->stream; }
static inline int dv2_cuda_bf16(const dv2_backend *be) { return dv2_cuda_ctx_of(be)->bf16; }

/* Records status as the sticky failure (first wins); returns status. */
int dv2_cuda_fail(const dv2_backend *be, int status);
/* After a group of launches: a launch error becomes the sticky status
 * (DV2_EIO, DV2_ENOMEM for an allocation failure); returns the status. */
int dv2_cuda_launched(const dv2_backend *be);
/* Checks one CUDA runtime / cuBLAS result the same way. */
int dv2_cuda_check(const dv2_backend *be, cudaError_t e);
int dv2_cuda_check_blas(const dv2_backend *be, cublasStatus_t s);
/* `bytes` of the arena (grows, synchronising once, when too small); NULL and
 * DV2_ENOMEM sticky when it cannot grow. */
void *dv2_cuda_workspace(const dv2_backend *be, size_t bytes);
/* The fixed 64 KiB device scratch, and its pinned host twin. */
void *dv2_cuda_small(const dv2_backend *be);
void *dv2_cuda_pinned(const dv2_backend *be);
/* Fills x (n floats; may be NULL) with NaN on the stream: the output of an
 * op that could not run. */
void dv2_cuda_nan_fill(const dv2_backend *be, float *x, size_t n);
/* Grid size for n elements at `threads` per block (at most 65535·8 blocks;
 * kernels loop with a grid stride). */
static inline unsigned dv2_cuda_grid(size_t n, int threads) {
    size_t g = (n + (size_t)threads - 1) / (size_t)threads;
    if (g < 1) g = 1;
    if (g > 524280) g = 524280;
    return (unsigned)g;
}

/* Row-major GEMM on the stream, C (M,N) = alpha·op(A)·op(B) + beta·C
 * (op(A) is M×K, op(B) K×N; lda, ldb, ldc the row strides), FP32 without
 * TF32.  Returns a status (sticky on failure). */
int dv2_cuda_sgemm(const dv2_backend *be, int transA, int transB, int M, int N, int K,
                   float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                   float *C, int ldc);
/* The same with bf16 operands (f32 accumulate, f32 C): A and B are bf16
 * arrays on the device. */
int dv2_cuda_gemm_bf16(const dv2_backend *be, int transA, int transB, int M, int N, int K,
                       float alpha, const __nv_bfloat16 *A, int lda, const __nv_bfloat16 *B,
                       int ldb, float beta, float *C, int ldc);
/* dst (n, bf16) ← src (n, f32) rounded to nearest even; and f32 x (n) ←
 * bf16-rounded x in place. */
int dv2_cuda_to_bf16(const dv2_backend *be, __nv_bfloat16 *dst, const float *src, size_t n);
int dv2_cuda_round_bf16(const dv2_backend *be, float *x, size_t n);

/* Round to nearest even, the same bits as dv2_bf16_round (cpu_bf16.c). */
static __device__ __forceinline__ float dv2_bf16r(float x) {
    unsigned u = __float_as_uint(x);
    if ((u & 0x7f800000u) == 0x7f800000u) {
        if (u & 0x007fffffu) u |= 0x00400000u;
    } else {
        u += 0x7fffu + ((u >> 16) & 1u);
    }
    return __uint_as_float(u & 0xffff0000u);
}
/* The same value as a stored bf16 (dv2_bf16r's upper half). */
static __device__ __forceinline__ __nv_bfloat16 dv2_bf16s(float x) {
    __nv_bfloat16_raw r;
    r.x = (unsigned short)(__float_as_uint(dv2_bf16r(x)) >> 16);
    return r;
}

/* The sum of v over the DV2_CUDA_THREADS threads of a block, in a fixed tree
 * order (the same bits every run), returned to every thread; sh is shared
 * scratch of DV2_CUDA_THREADS doubles; every thread of the block must call it. */
static __device__ __forceinline__ double dv2_cuda_block_sum(double v, double *sh) {
    int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int s = DV2_CUDA_THREADS / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] = __dadd_rn(sh[t], sh[t + s]);
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

/* ---- the entries, by family (semantics: ops.h) ------------------------------ */
/* cuda_linear.cu: GEMM with epilogues, patch embedding, input pixels,
 * positional-embedding resampling */
int dv2_cuda_linear_forward(const dv2_backend *be, float *out, float *pre, const float *in,
                            const float *w, const dv2_bf16 *w16, const float *b, int N, int Cin,
                            int Cout, int flags);
int dv2_cuda_linear_backward(const dv2_backend *be, float *din, float *dw, float *db, float *work,
                             const float *dout, const float *pre, const float *in, const float *w,
                             const dv2_bf16 *w16, int N, int Cin, int Cout, int flags);
int dv2_cuda_patch_embed_forward(const dv2_backend *be, float *out, float *col, const float *img,
                                 const float *w, const dv2_bf16 *w16, const float *b, int B,
                                 int Hpx, int Wpx, int p, int D);
int dv2_cuda_patch_embed_backward(const dv2_backend *be, float *dw, float *db, const float *dout,
                                  const float *col, int B, int Hpx, int Wpx, int p, int D);
int dv2_cuda_pixels_forward(const dv2_backend *be, float *out, const uint8_t *px, int n, int H,
                            int W);
int dv2_cuda_posembed_forward(const dv2_backend *be, float *out, float *scratch, const float *pos,
                              const float *wy, const float *wx, int M, int oh, int ow, int D);
int dv2_cuda_posembed_backward(const dv2_backend *be, float *dpos, float *scratch,
                               const float *dout, const float *wy, const float *wx, int M, int oh,
                               int ow, int D);

/* cuda_attn.cu: fused variable-length attention (online softmax) */
int dv2_cuda_attention_forward(const dv2_backend *be, float *out, float *lse, const float *qkv,
                               const dv2_seqpack *sp, int H, int dh);
int dv2_cuda_attention_backward(const dv2_backend *be, float *dqkv, const float *dout,
                                const float *qkv, const float *out, const float *lse,
                                const dv2_seqpack *sp, int H, int dh);

/* cuda_norm.cu: token assembly, LayerNorm, L2 and weight normalisation */
int dv2_cuda_embed_tokens_forward(const dv2_backend *be, float *x, const float *patch,
                                  const float *cls, const float *reg, const float *pos,
                                  const uint8_t *mask, const float *mask_token, int B, int N, int R,
                                  int D);
int dv2_cuda_embed_tokens_backward(const dv2_backend *be, float *dpatch, float *dcls, float *dreg,
                                   float *dpos, float *dmask_token, const float *dx,
                                   const uint8_t *mask, int B, int N, int R, int D);
int dv2_cuda_layernorm_forward(const dv2_backend *be, float *out, float *mean, float *rstd,
                               const float *in, const float *w, const float *b, int N, int C,
                               float eps);
int dv2_cuda_layernorm_backward(const dv2_backend *be, float *din, float *dw, float *db,
                                const float *dout, const float *in, const float *w,
                                const float *mean, const float *rstd, int N, int C);
int dv2_cuda_l2norm_forward(const dv2_backend *be, float *out, float *norm, const float *in, int N,
                            int C, float eps);
int dv2_cuda_l2norm_backward(const dv2_backend *be, float *din, const float *dout, const float *in,
                             const float *norm, int N, int C, float eps);
int dv2_cuda_weightnorm_forward(const dv2_backend *be, float *w, float *vnorm, const float *v,
                                const float *g, int K, int C);
int dv2_cuda_weightnorm_backward(const dv2_backend *be, float *dv, float *dg, const float *dw,
                                 const float *v, const float *g, const float *vnorm, int K, int C);

/* cuda_act.cu: activations, residual + LayerScale, row movement,
 * elementwise and reductions, AdamW, EMA */
int dv2_cuda_gelu_forward(const dv2_backend *be, float *out, const float *in, size_t n);
int dv2_cuda_gelu_backward(const dv2_backend *be, float *din, const float *dout, const float *in,
                           size_t n);
int dv2_cuda_swiglu_forward(const dv2_backend *be, float *out, const float *in, int N, int h);
int dv2_cuda_swiglu_backward(const dv2_backend *be, float *din, const float *dout, const float *in,
                             int N, int h);
int dv2_cuda_residual_forward(const dv2_backend *be, float *x, const float *y, const float *gamma,
                              const int *rows, const float *scale, int n, int C);
int dv2_cuda_residual_backward(const dv2_backend *be, float *dy, float *dgamma, const float *dx,
                               const float *y, const float *gamma, const int *rows,
                               const float *scale, int n, int C);
int dv2_cuda_gather_rows(const dv2_backend *be, float *out, const float *in, const int *rows, int n,
                         int C);
int dv2_cuda_scatter_add_rows(const dv2_backend *be, float *out, const float *in, const int *rows,
                              int n, int C);
int dv2_cuda_add(const dv2_backend *be, float *y, const float *x, size_t n);
int dv2_cuda_scale(const dv2_backend *be, float *x, float a, size_t n);
int dv2_cuda_sumsq(const dv2_backend *be, double *h_out, const float *x, size_t n);
int dv2_cuda_all_finite(const dv2_backend *be, int *h_out, const float *x, size_t n);
int dv2_cuda_adamw_step(const dv2_backend *be, float *p, dv2_bf16 *p16, float *m, float *v,
                        const float *g, size_t n, float lr, float wd, float beta1, float beta2,
                        float eps, int t);
int dv2_cuda_ema_update(const dv2_backend *be, float *teacher, dv2_bf16 *teacher16,
                        const float *student, size_t n, float mom);

/* cuda_loss.cu: teacher targets, centers, DINO, iBOT, KoLeo; collapse
 * statistics */
int dv2_cuda_softmax_center_forward(const dv2_backend *be, float *q, const float *t,
                                    const float *center, int N, int K, float temp);
int dv2_cuda_center_update(const dv2_backend *be, float *center, const float *t, int N, int K,
                           float scale_sum, float scale_apply, float momentum,
                           const struct dv2_dist *comm, struct dv2_error *err);
int dv2_cuda_sinkhorn_knopp_forward(const dv2_backend *be, float *q, const float *t, int N, int K,
                                    float temp, int n_iter, double n_total,
                                    const struct dv2_dist *comm, struct dv2_error *err);
int dv2_cuda_dino_forward(const dv2_backend *be, float *loss, const float *s_l, const float *s_g,
                          const float *q, int B, int L, int K, float temp);
int dv2_cuda_dino_backward(const dv2_backend *be, float *ds_l, float *ds_g, float dloss_local,
                           float dloss_global, const float *s_l, const float *s_g, const float *q,
                           int B, int L, int K, float temp);
int dv2_cuda_ibot_forward(const dv2_backend *be, float *loss, const float *s_p, const float *q,
                          const float *w, int M, int K, int n_crops, float temp);
int dv2_cuda_ibot_backward(const dv2_backend *be, float *ds_p, float dloss, const float *s_p,
                           const float *q, const float *w, int M, int K, int n_crops, float temp);
int dv2_cuda_koleo_forward(const dv2_backend *be, float *loss, int *nn, const float *x, int N,
                           int C);
int dv2_cuda_koleo_backward(const dv2_backend *be, float *dx, float dloss, const float *x,
                            const int *nn, int N, int C);
int dv2_cuda_collapse_stats(const dv2_backend *be, double *out, const float *q, const float *t,
                            const float *cls, const float *g, const float *v, int N, int K, int D,
                            int d);

/* cuda.cu: collectives (NCCL on the device buffers, or host-staged copies
 * through core/dist) */
int dv2_cuda_allreduce_sum(const dv2_backend *be, float *buf, size_t n, const struct dv2_dist *comm,
                           struct dv2_error *err);
int dv2_cuda_reduce_scatter_sum(const dv2_backend *be, float *out, const float *in, size_t n,
                                const struct dv2_dist *comm, struct dv2_error *err);
int dv2_cuda_all_gather(const dv2_backend *be, float *out, const float *in, size_t n,
                        const struct dv2_dist *comm, struct dv2_error *err);
/* the non-blocking forms: NCCL on a stream of their own (a blocking
 * collective first joins it) */
int dv2_cuda_allreduce_sum_start(const dv2_backend *be, float *buf, size_t n, const struct dv2_dist *comm,
                                 struct dv2_error *err);
int dv2_cuda_reduce_sum_start(const dv2_backend *be, float *buf, size_t n, int root,
                              const struct dv2_dist *comm, struct dv2_error *err);

#endif
