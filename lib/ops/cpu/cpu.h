/* cpu.h — internal: the kernels of the CPU backends, defined in
 * lib/ops/cpu/cpu_*.c by op family and adapted into the backend tables in
 * lib/ops/cpu/cpu.c.  Semantics are those of the lib/ops/ops.h entry of the
 * same name (the kernels take no backend argument and return nothing unless
 * they can fail).  Callers outside the backend open a backend
 * (dv2_backend_open) and use its entries, not these names. */
#ifndef DV2_OPS_CPU_H
#define DV2_OPS_CPU_H

#include "ops/ops.h"

/* OpenMP threshold: loops over fewer elements run on one thread.  Each
 * parallel region ends in a barrier; on a busy machine a barrier waits for a
 * descheduled sibling, so tiny regions cost more than they save (the same
 * idea as PyTorch's grain size). */
#define DV2_CPU_PAR(work) ((size_t)(work) >= (size_t)32768)

/* cpu.c: the backend objects and their context */
/* The workspace entry (ops.h): scratch from the backend's arena. */
void *dv2_cpu_workspace(const dv2_backend *be, size_t bytes);
/* Records status as the backend's sticky failure (the first one wins);
 * returns status. */
int dv2_cpu_fail(const dv2_backend *be, int status);
/* x (n floats) ← NaN (the output of an op that could not run); x may be NULL. */
void dv2_cpu_nan_fill(float *x, size_t n);

/* cpu_linear.c */
#include <cblas.h>
/* Row-major sgemm C = alpha·op(A)·op(B) + beta·C in fixed blocks of 128
 * rows of C (or columns when C is wide and short) spread over the OpenMP
 * threads, each block a single-threaded OpenBLAS call; the result does not
 * depend on the number of threads.  OpenBLAS's own threads are set to
 * one for the duration (and restored): two thread pools on the same cores
 * would spin against each other. */
void dv2_cpu_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* Brackets a region that calls BLAS from several OpenMP threads:
 * returns the previous OpenBLAS thread count, which _end restores. */
int dv2_cpu_blas_single_begin(void);
void dv2_cpu_blas_single_end(int saved);
void dv2_cpu_linear_forward(float *out, float *pre, const float *in, const float *w,
                            const float *b, int N, int Cin, int Cout, int flags);
void dv2_cpu_linear_backward(float *din, float *dw, float *db, float *work, const float *dout,
                             const float *pre, const float *in, const float *w, int N, int Cin,
                             int Cout, int flags);
void dv2_cpu_patch_embed_forward(float *out, float *col, const float *img, const float *w,
                                 const float *b, int B, int Hpx, int Wpx, int p, int D);
void dv2_cpu_patch_embed_backward(float *dw, float *db, const float *dout, const float *col,
                                  int B, int Hpx, int Wpx, int p, int D);

/* cpu_comm.c */
int dv2_cpu_allreduce_sum(float *buf, size_t n, const struct dv2_dist *comm, struct dv2_error *err);
int dv2_cpu_reduce_scatter_sum(float *out, const float *in, size_t n, const struct dv2_dist *comm,
                               struct dv2_error *err);
int dv2_cpu_all_gather(float *out, const float *in, size_t n, const struct dv2_dist *comm,
                       struct dv2_error *err);

/* cpu_posembed.c */
void dv2_cpu_posembed_forward(float *out, float *scratch, const float *pos, const float *wy,
                              const float *wx, int M, int oh, int ow, int D);
void dv2_cpu_posembed_backward(float *dpos, float *scratch, const float *dout, const float *wy,
                               const float *wx, int M, int oh, int ow, int D);

/* cpu_norm.c */
void dv2_cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                               const float *w, const float *b, int N, int C, float eps);
void dv2_cpu_layernorm_backward(float *din, float *dw, float *db, const float *dout,
                                const float *in, const float *w, const float *mean,
                                const float *rstd, int N, int C);
void dv2_cpu_l2norm_forward(float *out, float *norm, const float *in, int N, int C, float eps);
void dv2_cpu_l2norm_backward(float *din, const float *dout, const float *in, const float *norm,
                             int N, int C, float eps);
void dv2_cpu_weightnorm_forward(float *w, float *vnorm, const float *v, const float *g,
                                int K, int C);
void dv2_cpu_weightnorm_backward(float *dv, float *dg, const float *dw, const float *v,
                                 const float *g, const float *vnorm, int K, int C);

/* cpu_attn.c: work is scratch of dv2_cpu_attention_work(sp, backward) floats
 * (a block of scores per OpenMP thread). */
size_t dv2_cpu_attention_work(const dv2_seqpack *sp, int backward);
void dv2_cpu_attention_forward(float *out, float *lse, const float *qkv, const dv2_seqpack *sp,
                               int H, int dh, float *work);
void dv2_cpu_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                const float *out, const float *lse, const dv2_seqpack *sp,
                                int H, int dh, float *work);

/* cpu_stats.c: the collapse diagnostics (train/collapse.h) into out
 * (DV2_STATS_N doubles, enum dv2_stat), sums in double. */
/* Target slots of q (n, K), rows summing to 1.  work: K doubles; seen: K ints. */
void dv2_cpu_stats_targets(double *out, const float *q, int n, int K, double *work, int *seen);
/* Spread of the rows of x (n, dim): *std = mean over columns of the column's
 * standard deviation (two-pass); *cos = mean pairwise cosine of distinct rows
 * (1 when n < 2).  work: dim doubles. */
void dv2_cpu_stats_spread(double *std, double *cos, const float *x, int n, int dim, double *work);
/* Prototype slots from g (K) and v (K, d).  work: d² + d doubles. */
void dv2_cpu_stats_prototypes(double *out, const float *g, const float *v, int K, int d,
                              double *work);

/* cpu_act.c */
void dv2_cpu_gelu_forward(float *out, const float *in, size_t n);
/* din = dout ⊙ GELU'(in), or din += … when accumulate */
void dv2_cpu_gelu_backward(float *din, const float *dout, const float *in, size_t n,
                           int accumulate);
void dv2_cpu_swiglu_forward(float *out, const float *in, int N, int h);
void dv2_cpu_swiglu_backward(float *din, const float *dout, const float *in, int N, int h);
void dv2_cpu_residual_forward(float *x, const float *y, const float *gamma, const int *rows,
                              const float *scale, int n, int C);
void dv2_cpu_residual_backward(float *dy, float *dgamma, const float *dx, const float *y,
                               const float *gamma, const int *rows, const float *scale,
                               int n, int C);
void dv2_cpu_embed_tokens_forward(float *x, const float *patch, const float *cls,
                                  const float *reg, const float *pos, const uint8_t *mask,
                                  const float *mask_token, int B, int N, int R, int D);
void dv2_cpu_embed_tokens_backward(float *dpatch, float *dcls, float *dreg, float *dpos,
                                   float *dmask_token, const float *dx, const uint8_t *mask,
                                   int B, int N, int R, int D);
void dv2_cpu_gather_rows(float *out, const float *in, const int *rows, int n, int C);
void dv2_cpu_scatter_add_rows(float *out, const float *in, const int *rows, int n, int C);

/* cpu_optim.c */
void dv2_cpu_add(float *y, const float *x, size_t n);
void dv2_cpu_scale(float *x, float a, size_t n);
double dv2_cpu_sumsq(const float *x, size_t n);
int dv2_cpu_all_finite(const float *x, size_t n);
void dv2_cpu_adamw_step(float *p, float *m, float *v, const float *g, size_t n, float lr,
                        float wd, float beta1, float beta2, float eps, int t);
void dv2_cpu_ema_update(float *teacher, const float *student, size_t n, float mom);

/* cpu_bf16.c: the ops of the "cpu-bf16" backend that differ from the CPU
 * backend's (they round to bf16 where a GPU stores bf16; see that file). */
float dv2_bf16_round(float x); /* round to nearest even; NaN stays NaN */
void dv2_bf16_round_n(float *x, size_t n);
/* dst (n) ← the bf16 bits of src (dv2_bf16_round, upper half): a compute copy. */
void dv2_bf16_store_n(dv2_bf16 *dst, const float *src, size_t n);
/* dst (n) ← src widened (exact). */
void dv2_bf16_load_n(float *dst, const dv2_bf16 *src, size_t n);
/* The table entries of the bf16 backend (their scratch is the backend's workspace). */
int dv2_cpu_bf16_linear_forward(const dv2_backend *be, float *out, float *pre, const float *in,
                                const float *w, const dv2_bf16 *w16, const float *b, int N,
                                int Cin, int Cout, int flags);
int dv2_cpu_bf16_linear_backward(const dv2_backend *be, float *din, float *dw, float *db,
                                 float *work, const float *dout, const float *pre,
                                 const float *in, const float *w, const dv2_bf16 *w16, int N,
                                 int Cin, int Cout, int flags);
int dv2_cpu_bf16_patch_embed_forward(const dv2_backend *be, float *out, float *col,
                                     const float *img, const float *w, const dv2_bf16 *w16,
                                     const float *b, int B, int Hpx, int Wpx, int p, int D);
int dv2_cpu_bf16_patch_embed_backward(const dv2_backend *be, float *dw, float *db,
                                      const float *dout, const float *col, int B, int Hpx,
                                      int Wpx, int p, int D);
int dv2_cpu_bf16_attention_forward(const dv2_backend *be, float *out, float *lse,
                                   const float *qkv, const dv2_seqpack *sp, int H, int dh);
int dv2_cpu_bf16_attention_backward(const dv2_backend *be, float *dqkv, const float *dout,
                                    const float *qkv, const float *out, const float *lse,
                                    const dv2_seqpack *sp, int H, int dh);
int dv2_cpu_bf16_gelu_forward(const dv2_backend *be, float *out, const float *in, size_t n);
int dv2_cpu_bf16_swiglu_forward(const dv2_backend *be, float *out, const float *in, int N, int h);

#endif
