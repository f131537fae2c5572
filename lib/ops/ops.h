/* ops.h — the op interface of the dv2 model: one table of function pointers
 * (dv2_backend) that the model code (lib/model/vit.c, lib/model/head.c, the training
 * step) calls for every memory operation and every forward/backward op.  The
 * CPU backend (lib/ops_cpu*.c, float32, OpenBLAS + OpenMP) is the reference;
 * the CUDA backend (kernels/) implements the same entries.
 *
 * Conventions for every entry:
 *   - Arguments: outputs first, then inputs, then parameters, then
 *     dimensions.  Every float / int32 pointer lives on the backend's device
 *     (allocated with be->alloc) unless the comment says "host".
 *   - Shapes are in the comments, row-major: x is (N,C) means x[n*C + c].
 *   - Forward outputs are OVERWRITTEN (=), except where marked "+=".
 *   - Parameter gradients ACCUMULATE (+=).  Input gradients accumulate too,
 *     except the GEMM's (linear_backward's din), which overwrites unless
 *     DV2_LINEAR_ACCUMULATE asks it to add.  The caller zeroes accumulated
 *     buffers (be->zero) before the first contribution.  A NULL gradient pointer means "not needed" and
 *     is skipped where the comment says "may be NULL".
 *   - No output may alias an input unless the comment says "in place".
 *   - Index arrays (int32) live on the device; cu_seqlens arrays, which drive
 *     control flow, live on the host.
 *   - Entries return nothing unless they can fail; memory entries return a
 *     DV2_* status.  Ops assume valid dimensions (the model checks them).
 *
 * Packing (spec §13): token-wise ops see a packed (T,C) buffer of all tokens
 * of all images; attention takes the sequences of the pass (dv2_seqpack:
 * cu_seqlens on the host and on the device) and lets a token attend only to
 * tokens of its own sequence (block-diagonal attention). */
#ifndef DV2_OPS_H
#define DV2_OPS_H

#include <stddef.h>
#include <stdint.h>

/* Sum-all-reduce across processes, in place, of n floats on the device;
 * returns 0 or a DV2_E* status.  NULL means a single process. */
typedef int (*dv2_allreduce_fn)(float *buf, size_t n, void *ctx);

/* The sequences of one packed pass (spec §13): nseq sequences, T tokens in
 * all; cu[0..nseq] (cu[0] = 0, cu[nseq] = T) on the host, for control flow
 * and launch shapes, and d_cu the same offsets on the device, for kernels;
 * max_seqlen the longest sequence.  The model builds one per pass and
 * branch and uploads the device side with the step's packing plan. */
typedef struct dv2_seqpack {
    int nseq, T, max_seqlen;
    const int *cu;   /* host */
    const int *d_cu; /* device */
} dv2_seqpack;

struct dv2_dist;
struct dv2_error;

/* Flags of linear_forward / linear_backward. */
enum {
    DV2_LINEAR_GELU = 1 << 0,       /* bias+GELU epilogue; dGELU before the backward */
    DV2_LINEAR_ACCUMULATE = 1 << 1, /* backward: din += instead of din = */
};

typedef struct dv2_backend {
    const char *name; /* "cpu", "cuda" */

    /* ---- memory ------------------------------------------------------- */
    void *(*alloc)(size_t bytes);                 /* NULL on failure; zero-filled */
    void (*free)(void *p);                        /* accepts NULL */
    int (*to_host)(void *h_dst, const void *src, size_t bytes);
    int (*to_device)(void *dst, const void *h_src, size_t bytes);
    int (*copy)(void *dst, const void *src, size_t bytes); /* device to device */
    int (*zero)(void *p, size_t bytes);
    int (*sync)(void);                            /* wait for queued work */
    /* Bytes moved through to_host and to_device by this process so far (all
     * backends of one kind share the counters); either pointer may be NULL.
     * The training step's traffic is measured with it. */
    void (*transfers)(uint64_t *to_host, uint64_t *to_device);

    /* ---- linear algebra ----------------------------------------------- */
    /* GEMM with an epilogue (flags DV2_LINEAR_*):
     * out (N,Cout) = in (N,Cin) · W(Cout,Cin)^T + b(Cout); b may be NULL.
     * DV2_LINEAR_GELU: pre (N,Cout) receives in·W^T + b and out = GELU(pre)
     * (the bias+GELU epilogue; pre is saved for backward); otherwise pre is
     * unused (NULL). */
    void (*linear_forward)(float *out, float *pre, const float *in, const float *w,
                           const float *b, int N, int Cin, int Cout, int flags);
    /* With DV2_LINEAR_GELU, dout is the gradient of the GELU output and pre
     * the saved pre-activation: dpre = dout ⊙ GELU'(pre) is formed first in
     * work (N·Cout floats; otherwise work is unused, NULL) and takes dout's
     * place below.  din (N,Cin) = dout·W (OVERWRITES; += with
     * DV2_LINEAR_ACCUMULATE); dw (Cout,Cin) += dout^T·in; db (Cout) +=
     * colsum(dout).  din, dw, db may each be NULL. */
    void (*linear_backward)(float *din, float *dw, float *db, float *work, const float *dout,
                            const float *pre, const float *in, const float *w, int N, int Cin,
                            int Cout, int flags);

    /* Patch embedding, a p×p stride-p convolution with bias (spec §2.2):
     * img (B,3,Hpx,Wpx) → out (B, (Hpx/p)(Wpx/p), D), tokens row-major over the
     * patch grid; w (D,3,p,p), b (D).  Hpx, Wpx are multiples of p.
     * col is scratch of B*(Hpx/p)*(Wpx/p)*3*p*p floats (the im2col matrix);
     * backward needs the col that forward filled. */
    void (*patch_embed_forward)(float *out, float *col, const float *img, const float *w,
                                const float *b, int B, int Hpx, int Wpx, int p, int D);
    /* dw += , db += (no image gradient). */
    void (*patch_embed_backward)(float *dw, float *db, const float *dout, const float *col,
                                 int B, int Hpx, int Wpx, int p, int D);

    /* ---- positional embedding (spec §2.4) ------------------------------- */
    /* out (1+oh·ow, D) = [pos[0]; wy ⊗ wx applied to the grid pos[1..]]
     * (overwrite): pos (1+M·M, D), the grid M×M row-major; wy (oh, M) and
     * wx (ow, M) the separable weights of model/posembed.h, on the device
     * (NULL, NULL: the identity, oh = ow = M); scratch oh·M·D floats. */
    void (*posembed_forward)(float *out, float *scratch, const float *pos, const float *wy,
                             const float *wx, int M, int oh, int ow, int D);
    /* dpos (1+M·M, D) += the adjoint applied to dout (1+oh·ow, D). */
    void (*posembed_backward)(float *dpos, float *scratch, const float *dout, const float *wy,
                              const float *wx, int M, int oh, int ow, int D);

    /* ---- token assembly (spec §2.3) ----------------------------------- */
    /* x (B, 1+R+N, D) = [cls + pos[0], reg_1..reg_R, patch_j' + pos[1+j]]
     * where patch_j' = mask_token if mask[b,j] else patch[b,j].
     * patch (B,N,D); cls (D); reg (R,D) (may be NULL when R = 0);
     * pos (1+N, D) already resampled to this grid; mask (B,N) uint8 on the
     * device, or NULL (no masking); mask_token (D). */
    void (*embed_tokens_forward)(float *x, const float *patch, const float *cls,
                                 const float *reg, const float *pos, const uint8_t *mask,
                                 const float *mask_token, int B, int N, int R, int D);
    /* dpatch (B,N,D) +=  (masked rows get nothing), dcls +=, dreg +=, dpos (1+N,D) +=,
     * dmask_token +=.  Any gradient may be NULL. */
    void (*embed_tokens_backward)(float *dpatch, float *dcls, float *dreg, float *dpos,
                                  float *dmask_token, const float *dx, const uint8_t *mask,
                                  int B, int N, int R, int D);

    /* ---- normalization ------------------------------------------------- */
    /* LayerNorm over the last axis (two-pass statistics): out (N,C),
     * mean (N), rstd (N) saved for backward; w, b (C). */
    void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *in,
                              const float *w, const float *b, int N, int C, float eps);
    /* din +=, dw +=, db += ; dw, db may be NULL. */
    void (*layernorm_backward)(float *din, float *dw, float *db, const float *dout,
                               const float *in, const float *w, const float *mean,
                               const float *rstd, int N, int C);

    /* out (N,C) = in / max(||in_row||_2, eps); norm (N) saves ||in_row||. */
    void (*l2norm_forward)(float *out, float *norm, const float *in, int N, int C, float eps);
    void (*l2norm_backward)(float *din, const float *dout, const float *in, const float *norm,
                            int N, int C, float eps);

    /* Weight normalization of a last layer (spec §3): w (K,C) = g_k v_k/||v_k||;
     * vnorm (K) saves ||v_k||.  Apply w with linear_forward (b = NULL). */
    void (*weightnorm_forward)(float *w, float *vnorm, const float *v, const float *g,
                               int K, int C);
    /* dv +=, dg += from dw (K,C). */
    void (*weightnorm_backward)(float *dv, float *dg, const float *dw, const float *v,
                                const float *g, const float *vnorm, int K, int C);

    /* ---- attention (spec §2.6, §13) ------------------------------------ */
    /* qkv (T, 3, H, dh) packed tokens (Q, then K, then V, head-major);
     * out (T, H*dh) = per-sequence softmax(Q K^T · scale) V, scale = 1/sqrt(dh);
     * lse (H, T) saves the log-sum-exp of each query row's scaled scores. */
    void (*attention_forward)(float *out, float *lse, const float *qkv, const dv2_seqpack *sp,
                              int H, int dh);
    /* dqkv (T,3,H,dh) += (recomputes the probabilities from qkv and lse). */
    void (*attention_backward)(float *dqkv, const float *dout, const float *qkv,
                               const float *out, const float *lse, const dv2_seqpack *sp,
                               int H, int dh);

    /* ---- activations ---------------------------------------------------- */
    /* Exact GELU x·Φ(x) (erf form, not the tanh approximation), n elements;
     * float accuracy (the CPU backend: within 1e-6 relative of the double
     * value for |x| < 2, 5e-6 for |x| < 5). */
    void (*gelu_forward)(float *out, const float *in, size_t n);
    void (*gelu_backward)(float *din, const float *dout, const float *in, size_t n);
    /* SwiGLU hidden: in (N, 2h) = [x1 | x2] → out (N,h) = SiLU(x1) ⊙ x2. */
    void (*swiglu_forward)(float *out, const float *in, int N, int h);
    void (*swiglu_backward)(float *din, const float *dout, const float *in, int N, int h);

    /* ---- residual + LayerScale + stochastic depth (spec §2.5, §2.9) ---- */
    /* x (Tfull, C) in place: x[row_i] += scale_i · gamma ⊙ y[i] for i < n,
     * row_i = rows[i] (or i when rows is NULL), scale_i = scale[i] (or 1 when
     * scale is NULL).  y (n, C) is the branch output on the packed subset;
     * the batch-subset drop path sets scale_i = b/k for tokens of a tensor
     * with b samples of which k are computed. */
    void (*residual_forward)(float *x, const float *y, const float *gamma, const int *rows,
                             const float *scale, int n, int C);
    /* dy (n,C) += scale_i · gamma ⊙ dx[row_i]; dgamma (C) += Σ_i scale_i y[i] ⊙ dx[row_i].
     * (dx itself passes through the residual unchanged.)  dgamma may be NULL. */
    void (*residual_backward)(float *dy, float *dgamma, const float *dx, const float *y,
                              const float *gamma, const int *rows, const float *scale,
                              int n, int C);

    /* ---- row movement ----------------------------------------------------- */
    /* out (n,C): out[i] = in[rows[i]] (overwrite).  Gather of subsets,
     * class tokens, masked patch tokens. */
    void (*gather_rows)(float *out, const float *in, const int *rows, int n, int C);
    /* out[rows[i]] += in[i] (the backward of gather_rows); rows may repeat. */
    void (*scatter_add_rows)(float *out, const float *in, const int *rows, int n, int C);

    /* ---- elementwise / reductions --------------------------------------- */
    void (*add)(float *y, const float *x, size_t n);          /* y += x */
    void (*scale)(float *x, float a, size_t n);               /* x *= a, in place */
    double (*sumsq)(const float *x, size_t n);                /* host result, double acc */
    int (*all_finite)(const float *x, size_t n);              /* 1 if no inf/NaN */

    /* ---- losses (spec §6–§8); CPU entries are ops/cpu/cpu_loss.h ------------ */
    /* Teacher targets, centering mode (§6.2): q (N,K) = softmax((t − center)/temp). */
    void (*softmax_center_forward)(float *q, const float *t, const float *center,
                                   int N, int K, float temp);
    /* Teacher targets, Sinkhorn-Knopp (§6.3): q (N,K) from t (N,K), n_iter
     * iterations; n_total = the number of samples over all processes (B_tot);
     * allreduce sums the global sum and the row sums (NULL: one process). */
    int (*sinkhorn_knopp_forward)(float *q, const float *t, int N, int K, float temp,
                                  int n_iter, double n_total, dv2_allreduce_fn allreduce,
                                  void *allreduce_ctx);
    /* KoLeo (§8) on x (N,C) (rows L2-normalized inside, eps 1e-8):
     * host *loss = -(1/N) Σ log(||x̂_i − x̂_nn(i) + 1e-8|| + 1e-8); nn (N) int32 saved. */
    void (*koleo_forward)(float *h_loss, int *nn, const float *x, int N, int C);
    /* dx (N,C) += dloss · d KoLeo / dx. */
    void (*koleo_backward)(float *dx, float dloss, const float *x, const int *nn, int N, int C);

    /* ---- collectives across the processes of comm (core/dist.h) ----------- */
    /* On device buffers: the CPU backend goes through MPI (core/dist), a GPU
     * backend through NCCL.  Each returns 0 or a DV2_E* status. */
    /* buf (n) ← the sum over ranks, in place. */
    int (*allreduce_sum)(float *buf, size_t n, const struct dv2_dist *comm, struct dv2_error *err);
    /* in (world·n, rank-major chunks) → out (n): the sum over ranks of chunk rank. */
    int (*reduce_scatter_sum)(float *out, const float *in, size_t n, const struct dv2_dist *comm,
                              struct dv2_error *err);
    /* in (n) → out (world·n): every rank's chunk in rank order. */
    int (*all_gather)(float *out, const float *in, size_t n, const struct dv2_dist *comm,
                      struct dv2_error *err);

    /* ---- optimizer ----------------------------------------------------- */
    /* AdamW (spec §10.1) on n elements, in place: m, v moments; step t >= 1.
     * p ← p(1 − lr·wd); p ← p − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps). */
    void (*adamw_step)(float *p, float *m, float *v, const float *g, size_t n, float lr,
                       float wd, float beta1, float beta2, float eps, int t);
    /* EMA (spec §11): teacher ← mom·teacher + (1−mom)·student. */
    void (*ema_update)(float *teacher, const float *student, size_t n, float mom);
} dv2_backend;

/* The CPU backend: host memory, float32 with double accumulators where
 * cheap.  The ops of lib/ops_cpu_*.c are deterministic and bitwise
 * independent of the number of OpenMP threads (fixed GEMM blocks,
 * column-block reductions); OpenBLAS's own thread pool is held at one
 * thread while an op runs.  An op whose scratch allocation fails fills its
 * output with NaN (the training loop's finiteness check reports it). */
extern const dv2_backend dv2_backend_cpu;

/* The CPU backend with bf16 storage emulated by rounding to nearest even
 * where a mixed-precision GPU step stores bf16 (GEMM operands and outputs,
 * attention inputs and output, GELU/SwiGLU outputs, activation gradients of
 * GEMM backward); everything else f32.  The storage points are listed in
 * ops/cpu/cpu_bf16.c.  A bf16 training run is testable on the CPU with it,
 * and a GPU backend is compared against it tightly. */
extern const dv2_backend dv2_backend_cpu_bf16;

/* ---- choosing a backend (backend.c) ---------------------------------------- */
/* Opens the backend named "cpu", "cpu-bf16", "cuda" or "auto" (the best one
 * this build and machine have).  desc (may be NULL) gets one line of what
 * was opened and why, for -v.  DV2_EUNSUPPORTED for a backend this build
 * lacks, DV2_EINVAL for an unknown name. */
int dv2_backend_open(const dv2_backend **be, const char *name, char *desc, size_t n,
                     struct dv2_error *err);
/* 1 if name is a backend name dv2_backend_open understands (it may still
 * be missing from this build). */
int dv2_backend_known(const char *name);
/* The backends of this build, for harnesses that run every op on each. */
size_t dv2_backend_count(void);
const dv2_backend *dv2_backend_at(size_t i);

#endif
