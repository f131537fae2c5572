/* ops.h — the op interface of the dv2 model: a backend object (dv2_backend)
 * whose table of entries the model code (lib/model/vit_pass.c,
 * lib/model/head.c, the training step) calls for every memory operation,
 * every forward/backward op, the losses, the collectives and the optimizer.
 * The CPU backend (lib/ops/cpu/, float32, OpenBLAS + OpenMP) is the
 * reference; a GPU backend implements the same entries.
 *
 * The backend object.  dv2_backend_open returns one; it carries its own
 * context (be->ctx: a GPU backend's stream, library handles and device;
 * every backend's workspace arena, status and counters) and every entry
 * takes the backend as its first argument.  Entries are queued in call
 * order on the backend's stream; be->sync waits for them.
 *
 * Status.  Every entry that can fail returns DV2_OK or a DV2_E* status
 * (core/dv2.h).  The first failure is also kept in the context ("sticky",
 * as a GPU reports a failed kernel at the next synchronisation): be->status
 * and be->sync return it, so model code checks the status of a whole pass
 * at its end (dv2_backend_check) instead of after every op.  An op that fails leaves its outputs
 * undefined (the CPU backend fills them with NaN, which the training step's
 * finiteness check reports).
 *
 * Workspace.  Scratch memory of the ops comes from the backend's own arena
 * (be->workspace), never from malloc inside an op; the arena grows to its
 * high-water mark and is reused; be->info reports the mark.
 *
 * Storage dtypes.  Activations, parameters, gradients and optimizer state
 * are float32 containers (float *); index arrays are int32, masks and input
 * pixels u8 (uint8_t *), reductions for the host double.  A mixed-precision
 * backend stores bf16 *values* in the float containers at the storage points
 * listed in ops/cpu/cpu_bf16.c (the "cpu-bf16" backend rounds there, and a
 * GPU backend is held to the same bits); master weights, moments, losses and
 * every accumulation stay f32.  The one 16-bit container is the weights'
 * bf16 compute copy (dv2_bf16, be->weights_bf16): a backend whose GEMMs read
 * bf16 weights gets, with every weight, its copy, written by the step that
 * changes the master weight (adamw_step, ema_update) or by to_bf16 after a
 * load, so the GEMMs never convert a weight.  The activations a training
 * pass keeps for the backward go to 16-bit containers on such a backend
 * where they hold bf16 values (the blocks' GEMM and attention outputs,
 * model/vit_pass.c: to_bf16 after the forward, from_bf16 before the
 * backward, both exact); the ops themselves read and write f32 containers.
 *
 * Conventions for every entry:
 *   - Arguments: the backend, outputs, then inputs, then parameters, then
 *     dimensions.  Every float / int32 / double pointer lives on the
 *     backend's device (allocated with be->alloc) unless the comment says
 *     "host" (h_ prefix).
 *   - Shapes are in the comments, row-major: x is (N,C) means x[n*C + c].
 *   - Forward outputs are OVERWRITTEN (=), except where marked "+=".
 *   - Parameter gradients ACCUMULATE (+=).  Input gradients accumulate too,
 *     except the GEMM's (linear_backward's din), which overwrites unless
 *     DV2_LINEAR_ACCUMULATE asks it to add.  The caller zeroes accumulated
 *     buffers (be->zero) before the first contribution.  A NULL gradient
 *     pointer means "not needed" and is skipped where the comment says
 *     "may be NULL".
 *   - No output may alias an input unless the comment says "in place".
 *   - Index arrays (int32) live on the device; the packing plan
 *     (dv2_seqpack) carries its offsets on both sides.
 *   - Ops assume valid dimensions (the model checks them).
 *
 * Packing (spec §13): token-wise ops see a packed (T,C) buffer of all tokens
 * of all images; attention takes the sequences of the pass (dv2_seqpack:
 * cu_seqlens on the host and on the device) and lets a token attend only to
 * tokens of its own sequence (block-diagonal attention). */
#ifndef DV2_OPS_H
#define DV2_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

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

/* A bf16 value as stored: the upper 16 bits of the float32 rounded to
 * nearest, ties to even (NaN stays NaN); widening is exact (bits << 16). */
typedef uint16_t dv2_bf16;

/* Flags of linear_forward / linear_backward. */
enum {
    DV2_LINEAR_GELU = 1 << 0,       /* bias+GELU epilogue; dGELU before the backward */
    DV2_LINEAR_ACCUMULATE = 1 << 1, /* backward: din += instead of din = */
};

/* The slots of collapse_stats' output (train/collapse.h says what each means). */
enum dv2_stat {
    DV2_STAT_TGT_ENTROPY, DV2_STAT_TGT_MEAN_ENTROPY, DV2_STAT_N_ARGMAX, DV2_STAT_LOGIT_STD,
    DV2_STAT_CLS_STD, DV2_STAT_CLS_COS, DV2_STAT_PROTO_NORM_MEAN, DV2_STAT_PROTO_NORM_CV,
    DV2_STAT_PROTO_COS_MEAN, DV2_STAT_PROTO_COS_RMS, DV2_STATS_N
};

/* What a backend reports about itself (be->info). */
typedef struct dv2_backend_info {
    char device[128];         /* "cpu (2 threads, OpenBLAS Haswell)", "NVIDIA H100 ..." */
    size_t workspace_high;    /* the arena's high-water mark, bytes */
    uint64_t to_host, to_device; /* bytes moved by to_host / to_device since open */
    size_t mem_peak;          /* device memory in use at its peak (a GPU: cudaMemGetInfo
                               * at each allocation); 0 where not measured (the CPU) */
} dv2_backend_info;

typedef struct dv2_backend dv2_backend;
struct dv2_backend {
    const char *name; /* "cpu", "cpu-bf16", "cuda" */
    void *ctx;        /* the backend's context (owned; freed by dv2_backend_close) */
    /* 1 when the GEMMs read bf16 weights: every dv2_params on this backend
     * keeps the bf16 compute copy of its values (data16), the model passes
     * it as the w16 of linear_forward / linear_backward / patch_embed_forward,
     * and adamw_step / ema_update keep it current.  0: no copies, w16 NULL. */
    int weights_bf16;

    /* ---- memory ------------------------------------------------------- */
    void *(*alloc)(const dv2_backend *be, size_t bytes);                 /* NULL on failure; zero-filled */
    void (*free)(const dv2_backend *be, void *p);                        /* accepts NULL */
    int (*to_host)(const dv2_backend *be, void *h_dst, const void *src, size_t bytes);
    int (*to_device)(const dv2_backend *be, void *dst, const void *h_src, size_t bytes);
    int (*copy)(const dv2_backend *be, void *dst, const void *src, size_t bytes); /* device to device */
    int (*zero)(const dv2_backend *be, void *p, size_t bytes);
    /* Waits for queued work; returns the first failure of any entry since
     * the backend was opened (sticky), or DV2_OK. */
    int (*sync)(const dv2_backend *be);
    /* The first failure known so far, without waiting (a GPU backend: the
     * launch errors seen; sync reports the rest). */
    int (*status)(const dv2_backend *be);
    /* Scratch of `bytes` from the backend's arena, valid until the next
     * workspace call on this backend (ops use it; callers may too, between
     * ops); NULL when it cannot grow. */
    void *(*workspace)(const dv2_backend *be, size_t bytes);
    /* The device, the arena's high-water mark and the bytes moved through
     * to_host / to_device (the training step's traffic is measured with it). */
    void (*info)(const dv2_backend *be, dv2_backend_info *out);
    /* Frees the context (called by dv2_backend_close). */
    void (*release)(dv2_backend *be);
    /* dst (n) ← src rounded to bf16: a weight's compute copy after its master
     * values were written other than by adamw_step / ema_update (a load, a
     * copy, a broadcast, an all-gather). */
    int (*to_bf16)(const dv2_backend *be, dv2_bf16 *dst, const float *src, size_t n);
    /* dst (n) ← src widened to f32 (exact): an activation kept for the
     * backward in a 16-bit container, back in the buffer its ops read. */
    int (*from_bf16)(const dv2_backend *be, float *dst, const dv2_bf16 *src, size_t n);

    /* ---- linear algebra ----------------------------------------------- */
    /* GEMM with an epilogue (flags DV2_LINEAR_*):
     * out (N,Cout) = in (N,Cin) · W(Cout,Cin)^T + b(Cout); b may be NULL.
     * DV2_LINEAR_GELU: pre (N,Cout) receives in·W^T + b and out = GELU(pre)
     * (the bias+GELU epilogue; pre is saved for backward); otherwise pre is
     * unused (NULL).  w16 (Cout,Cin) is w's bf16 compute copy, equal to w
     * rounded (may be NULL: a bf16 backend then rounds w itself; a backend
     * without weights_bf16 never reads it).  A bf16 backend reads the
     * weight from w16 and never w's f32 values; the CPU reference checks
     * the copy and fails the op (DV2_EINVAL, NaN out) when it is stale. */
    int (*linear_forward)(const dv2_backend *be, float *out, float *pre, const float *in, const float *w,
                           const dv2_bf16 *w16, const float *b, int N, int Cin, int Cout, int flags);
    /* With DV2_LINEAR_GELU, dout is the gradient of the GELU output and pre
     * the saved pre-activation: dpre = dout ⊙ GELU'(pre) is formed first in
     * work (N·Cout floats; otherwise work is unused, NULL) and takes dout's
     * place below.  din (N,Cin) = dout·W (OVERWRITES; += with
     * DV2_LINEAR_ACCUMULATE); dw (Cout,Cin) += dout^T·in; db (Cout) +=
     * colsum(dout).  din, dw, db may each be NULL.  w16: as in forward
     * (read for din only). */
    int (*linear_backward)(const dv2_backend *be, float *din, float *dw, float *db, float *work, const float *dout,
                            const float *pre, const float *in, const float *w, const dv2_bf16 *w16, int N,
                            int Cin, int Cout, int flags);

    /* Patch embedding, a p×p stride-p convolution with bias (spec §2.2):
     * img (B,3,Hpx,Wpx) → out (B, (Hpx/p)(Wpx/p), D), tokens row-major over the
     * patch grid; w (D,3,p,p), b (D).  Hpx, Wpx are multiples of p.
     * col is scratch of B*(Hpx/p)*(Wpx/p)*3*p*p floats (the im2col matrix);
     * backward needs the col that forward filled.  w16: w's bf16 compute
     * copy, as in linear_forward. */
    int (*patch_embed_forward)(const dv2_backend *be, float *out, float *col, const float *img, const float *w,
                                const dv2_bf16 *w16, const float *b, int B, int Hpx, int Wpx, int p, int D);
    /* dw += , db += (no image gradient). */
    int (*patch_embed_backward)(const dv2_backend *be, float *dw, float *db, const float *dout, const float *col,
                                 int B, int Hpx, int Wpx, int p, int D);

    /* Input normalisation (spec §4.2): px (n, H, W, 3) u8 RGB crops → out
     * (n, 3, H, W) = (px/255 − mean_c)/std_c with the ImageNet mean and std,
     * in float, in exactly the arithmetic of image/resize.h's
     * dv2_resize_to_tensor (so u8 crops on the device give the host's floats). */
    int (*pixels_forward)(const dv2_backend *be, float *out, const uint8_t *px, int n, int H, int W);

    /* ---- positional embedding (spec §2.4) ------------------------------- */
    /* out (1+oh·ow, D) = [pos[0]; wy ⊗ wx applied to the grid pos[1..]]
     * (overwrite): pos (1+M·M, D), the grid M×M row-major; wy (oh, M) and
     * wx (ow, M) the separable weights of model/posembed.h, on the device
     * (NULL, NULL: the identity, oh = ow = M); scratch oh·M·D floats. */
    int (*posembed_forward)(const dv2_backend *be, float *out, float *scratch, const float *pos, const float *wy,
                             const float *wx, int M, int oh, int ow, int D);
    /* dpos (1+M·M, D) += the adjoint applied to dout (1+oh·ow, D). */
    int (*posembed_backward)(const dv2_backend *be, float *dpos, float *scratch, const float *dout, const float *wy,
                              const float *wx, int M, int oh, int ow, int D);

    /* ---- token assembly (spec §2.3) ----------------------------------- */
    /* x (B, 1+R+N, D) = [cls + pos[0], reg_1..reg_R, patch_j' + pos[1+j]]
     * where patch_j' = mask_token if mask[b,j] else patch[b,j].
     * patch (B,N,D); cls (D); reg (R,D) (may be NULL when R = 0);
     * pos (1+N, D) already resampled to this grid; mask (B,N) uint8 on the
     * device, or NULL (no masking); mask_token (D). */
    int (*embed_tokens_forward)(const dv2_backend *be, float *x, const float *patch, const float *cls,
                                 const float *reg, const float *pos, const uint8_t *mask,
                                 const float *mask_token, int B, int N, int R, int D);
    /* dpatch (B,N,D) +=  (masked rows get nothing), dcls +=, dreg +=, dpos (1+N,D) +=,
     * dmask_token +=.  Any gradient may be NULL. */
    int (*embed_tokens_backward)(const dv2_backend *be, float *dpatch, float *dcls, float *dreg, float *dpos,
                                  float *dmask_token, const float *dx, const uint8_t *mask,
                                  int B, int N, int R, int D);

    /* ---- normalization ------------------------------------------------- */
    /* LayerNorm over the last axis (two-pass statistics): out (N,C),
     * mean (N), rstd (N) saved for backward; w, b (C). */
    int (*layernorm_forward)(const dv2_backend *be, float *out, float *mean, float *rstd, const float *in,
                              const float *w, const float *b, int N, int C, float eps);
    /* din +=, dw +=, db += ; dw, db may be NULL. */
    int (*layernorm_backward)(const dv2_backend *be, float *din, float *dw, float *db, const float *dout,
                               const float *in, const float *w, const float *mean,
                               const float *rstd, int N, int C);

    /* out (N,C) = in / max(||in_row||_2, eps); norm (N) saves ||in_row||. */
    int (*l2norm_forward)(const dv2_backend *be, float *out, float *norm, const float *in, int N, int C, float eps);
    int (*l2norm_backward)(const dv2_backend *be, float *din, const float *dout, const float *in, const float *norm,
                            int N, int C, float eps);

    /* Weight normalization of a last layer (spec §3): w (K,C) = g_k v_k/||v_k||;
     * vnorm (K) saves ||v_k||.  Apply w with linear_forward (b = NULL). */
    int (*weightnorm_forward)(const dv2_backend *be, float *w, float *vnorm, const float *v, const float *g,
                               int K, int C);
    /* dv +=, dg += from dw (K,C). */
    int (*weightnorm_backward)(const dv2_backend *be, float *dv, float *dg, const float *dw, const float *v,
                                const float *g, const float *vnorm, int K, int C);

    /* ---- attention (spec §2.6, §13) ------------------------------------ */
    /* qkv (T, 3, H, dh) packed tokens (Q, then K, then V, head-major);
     * out (T, H*dh) = per-sequence softmax(Q K^T · scale) V, scale = 1/sqrt(dh);
     * lse (H, T) saves the log-sum-exp of each query row's scaled scores. */
    int (*attention_forward)(const dv2_backend *be, float *out, float *lse, const float *qkv, const dv2_seqpack *sp,
                              int H, int dh);
    /* dqkv (T,3,H,dh) += (recomputes the probabilities from qkv and lse). */
    int (*attention_backward)(const dv2_backend *be, float *dqkv, const float *dout, const float *qkv,
                               const float *out, const float *lse, const dv2_seqpack *sp,
                               int H, int dh);

    /* ---- activations ---------------------------------------------------- */
    /* Exact GELU x·Φ(x) (erf form, not the tanh approximation), n elements;
     * float accuracy (the CPU backend: within 1e-6 relative of the double
     * value for |x| < 2, 5e-6 for |x| < 5). */
    int (*gelu_forward)(const dv2_backend *be, float *out, const float *in, size_t n);
    int (*gelu_backward)(const dv2_backend *be, float *din, const float *dout, const float *in, size_t n);
    /* SwiGLU hidden: in (N, 2h) = [x1 | x2] → out (N,h) = SiLU(x1) ⊙ x2. */
    int (*swiglu_forward)(const dv2_backend *be, float *out, const float *in, int N, int h);
    int (*swiglu_backward)(const dv2_backend *be, float *din, const float *dout, const float *in, int N, int h);

    /* ---- residual + LayerScale + stochastic depth (spec §2.5, §2.9) ---- */
    /* x (Tfull, C) in place: x[row_i] += scale_i · gamma ⊙ y[i] for i < n,
     * row_i = rows[i] (or i when rows is NULL), scale_i = scale[i] (or 1 when
     * scale is NULL).  y (n, C) is the branch output on the packed subset;
     * the batch-subset drop path sets scale_i = b/k for tokens of a tensor
     * with b samples of which k are computed. */
    int (*residual_forward)(const dv2_backend *be, float *x, const float *y, const float *gamma, const int *rows,
                             const float *scale, int n, int C);
    /* dy (n,C) += scale_i · gamma ⊙ dx[row_i]; dgamma (C) += Σ_i scale_i y[i] ⊙ dx[row_i].
     * (dx itself passes through the residual unchanged.)  dgamma may be NULL. */
    int (*residual_backward)(const dv2_backend *be, float *dy, float *dgamma, const float *dx, const float *y,
                              const float *gamma, const int *rows, const float *scale,
                              int n, int C);

    /* ---- row movement ----------------------------------------------------- */
    /* out (n,C): out[i] = in[rows[i]] (overwrite).  Gather of subsets,
     * class tokens, masked patch tokens. */
    int (*gather_rows)(const dv2_backend *be, float *out, const float *in, const int *rows, int n, int C);
    /* out[rows[i]] += in[i] (the backward of gather_rows); rows may repeat. */
    int (*scatter_add_rows)(const dv2_backend *be, float *out, const float *in, const int *rows, int n, int C);

    /* ---- elementwise / reductions --------------------------------------- */
    int (*add)(const dv2_backend *be, float *y, const float *x, size_t n);          /* y += x */
    int (*scale)(const dv2_backend *be, float *x, float a, size_t n);               /* x *= a, in place */
    int (*sumsq)(const dv2_backend *be, double *h_out, const float *x, size_t n);                /* host result, double acc */
    int (*all_finite)(const dv2_backend *be, int *h_out, const float *x, size_t n);              /* 1 if no inf/NaN */

    /* ---- losses and teacher targets (spec §6–§9) --------------------------
     * Everything a training step computes from the logits stays on the
     * device: targets, centers, losses (into device scalars) and their
     * gradients.  The CPU entries are the kernels of ops/cpu/cpu_loss.h;
     * their comments there give the exact formulas. */
    /* Teacher targets, centering mode (§6.2): q (N,K) = softmax((t − center)/temp). */
    int (*softmax_center_forward)(const dv2_backend *be, float *q, const float *t, const float *center,
                                  int N, int K, float temp);
    /* The center EMA (§6.2, §7.3): center (K) ← momentum·center +
     * (1 − momentum)·scale_apply·Σ_ranks (scale_sum·Σ_i t[i,:]); t (N,K),
     * N may be 0 on a rank (it still takes part in the all-reduce through
     * the backend's collectives over comm, NULL: one process). */
    int (*center_update)(const dv2_backend *be, float *center, const float *t, int N, int K,
                         float scale_sum, float scale_apply, float momentum,
                         const struct dv2_dist *comm, struct dv2_error *err);
    /* Teacher targets, Sinkhorn-Knopp (§6.3): q (N,K) from t (N,K), n_iter
     * iterations; n_total = the number of samples over all processes (B_tot);
     * the global sum and the prototype sums are all-reduced over comm. */
    int (*sinkhorn_knopp_forward)(const dv2_backend *be, float *q, const float *t, int N, int K,
                                  float temp, int n_iter, double n_total,
                                  const struct dv2_dist *comm, struct dv2_error *err);
    /* DINO cross-view loss (§6.1): loss (2, device) = {local, global} from
     * student logits s_l (L·B,K), s_g (2B,K) and swapped targets q (2B,K). */
    int (*dino_forward)(const dv2_backend *be, float *loss, const float *s_l, const float *s_g,
                        const float *q, int B, int L, int K, float temp);
    /* ds_l += dloss_local·∂local/∂s_l (may be NULL), ds_g += dloss_global·∂global/∂s_g. */
    int (*dino_backward)(const dv2_backend *be, float *ds_l, float *ds_g, float dloss_local,
                         float dloss_global, const float *s_l, const float *s_g, const float *q,
                         int B, int L, int K, float temp);
    /* iBOT masked-patch loss (§7.4): loss (1, device) from s_p, q (M,K) and
     * the token weights w (M, device); n_crops = 2B. */
    int (*ibot_forward)(const dv2_backend *be, float *loss, const float *s_p, const float *q,
                        const float *w, int M, int K, int n_crops, float temp);
    /* ds_p (M,K) += dloss·∂loss/∂s_p. */
    int (*ibot_backward)(const dv2_backend *be, float *ds_p, float dloss, const float *s_p,
                         const float *q, const float *w, int M, int K, int n_crops, float temp);
    /* KoLeo (§8) on x (N,C) (rows L2-normalised inside, eps 1e-8):
     * loss (1, device) = −(1/N) Σ log(||x̂_i − x̂_nn(i) + 1e-8|| + 1e-8);
     * nn (N, int32, device) saved for the backward. */
    int (*koleo_forward)(const dv2_backend *be, float *loss, int *nn, const float *x, int N, int C);
    /* dx (N,C) += dloss · ∂KoLeo/∂x. */
    int (*koleo_backward)(const dv2_backend *be, float *dx, float dloss, const float *x,
                          const int *nn, int N, int C);
    /* Collapse diagnostics (train/collapse.h), into out (DV2_STATS_N
     * doubles, device, in the order of enum dv2_stat): of the targets q
     * (N,K) and logits t (N,K), the class tokens cls (N,D) and the
     * prototypes of a weight-normalised last layer, g (K) and v (K,d).
     * Any group may be skipped by passing NULL (its slots are left 0). */
    int (*collapse_stats)(const dv2_backend *be, double *out, const float *q, const float *t,
                          const float *cls, const float *g, const float *v, int N, int K, int D,
                          int d);

    /* ---- collectives across the processes of comm (core/dist.h) ----------- */
    /* On device buffers: the CPU backend goes through MPI (core/dist), a GPU
     * backend through NCCL.  Each returns 0 or a DV2_E* status. */
    /* buf (n) ← the sum over ranks, in place. */
    int (*allreduce_sum)(const dv2_backend *be, float *buf, size_t n, const struct dv2_dist *comm, struct dv2_error *err);
    /* in (world·n, rank-major chunks) → out (n): the sum over ranks of chunk rank. */
    int (*reduce_scatter_sum)(const dv2_backend *be, float *out, const float *in, size_t n, const struct dv2_dist *comm,
                              struct dv2_error *err);
    /* in (n) → out (world·n): every rank's chunk in rank order. */
    int (*all_gather)(const dv2_backend *be, float *out, const float *in, size_t n, const struct dv2_dist *comm,
                      struct dv2_error *err);
    /* Non-blocking forms, to overlap the gradient reduction with the
     * backward: each queues its collective behind the work queued so far
     * and returns; buf must not be read or written until coll_wait.  Every
     * rank starts the same collectives in the same order.
     *   allreduce_sum_start: buf (n) ← the sum over ranks, in place;
     *   reduce_sum_start: root's buf (n) ← the sum over ranks, in place; the
     *   other ranks' buf is unspecified afterwards (a backend may all-reduce). */
    int (*allreduce_sum_start)(const dv2_backend *be, float *buf, size_t n, const struct dv2_dist *comm,
                               struct dv2_error *err);
    int (*reduce_sum_start)(const dv2_backend *be, float *buf, size_t n, int root, const struct dv2_dist *comm,
                            struct dv2_error *err);
    /* Lets started collectives advance where the host drives the transport
     * (MPI); never blocks, may do nothing. */
    void (*coll_progress)(const dv2_backend *be);
    /* Completes every started collective: work queued after it, and the
     * host after a sync, see their results. */
    int (*coll_wait)(const dv2_backend *be, struct dv2_error *err);

    /* ---- optimizer ----------------------------------------------------- */
    /* AdamW (spec §10.1) on n elements, in place: m, v moments; step t >= 1.
     * p ← p(1 − lr·wd); p ← p − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps).
     * p16 (n, may be NULL) ← the updated p rounded to bf16: the compute copy
     * written by the optimizer step. */
    int (*adamw_step)(const dv2_backend *be, float *p, dv2_bf16 *p16, float *m, float *v, const float *g,
                       size_t n, float lr, float wd, float beta1, float beta2, float eps, int t);
    /* EMA (spec §11): teacher ← mom·teacher + (1−mom)·student; teacher16
     * (may be NULL) ← the teacher's new values rounded to bf16. */
    int (*ema_update)(const dv2_backend *be, float *teacher, dv2_bf16 *teacher16, const float *student, size_t n,
                      float mom);
};

/* ---- opening a backend (backend.c) ----------------------------------------
 * The backends of a build:
 *   "cpu"       host memory, float32 with double accumulators where cheap;
 *               the ops of lib/ops/cpu/ are deterministic and bitwise
 *               independent of the number of OpenMP threads (fixed GEMM
 *               blocks, column-block reductions); OpenBLAS's own thread
 *               pool is held at one thread while an op runs.
 *   "cpu-bf16"  the CPU backend with bf16 storage emulated by rounding to
 *               nearest even where a mixed-precision GPU step stores bf16
 *               (GEMM operands and outputs, attention inputs and output,
 *               GELU/SwiGLU outputs, activation gradients of GEMM backward;
 *               the list is in ops/cpu/cpu_bf16.c); everything else f32.
 *   "cuda"      the GPU backend (not in this build yet).
 *   "auto"      the best one this build and machine have. */
/* The constructors the registry (backend.c) calls, one per backend kind,
 * defined by the backend's own folder (ops/cpu/cpu.c): a new object with
 * its context, or DV2_ENOMEM. */
int dv2_cpu_backend_new(dv2_backend **out, int bf16);
/* ops/cuda/cuda.cu (builds with CUDA): a CUDA backend on the current
 * device (bf16: the "cuda-bf16" storage); DV2_EUNSUPPORTED with the reason
 * in why when there is no usable GPU, DV2_ENOMEM, DV2_EIO. */
int dv2_cuda_backend_new(dv2_backend **out, int bf16, char *why, size_t n);

/* Opens the backend `name` with a fresh context.  desc (may be NULL) gets
 * one line of what was opened and why, for -v.  DV2_EUNSUPPORTED for a
 * backend this build lacks, DV2_EINVAL for an unknown name, DV2_ENOMEM. */
int dv2_backend_open(dv2_backend **be, const char *name, char *desc, size_t n,
                     struct dv2_error *err);
/* DV2_OK, or the backend's sticky failure as an error "what: ..." in err;
 * the model's passes end with it. */
int dv2_backend_check(const dv2_backend *be, const char *what, struct dv2_error *err);
/* Frees the backend and its context (accepts NULL).  Every buffer it
 * allocated must have been freed. */
void dv2_backend_close(dv2_backend *be);
/* 1 when this build has the CUDA backends (whether a GPU is present is
 * known only when one is opened). */
int dv2_backend_cuda_built(void);
/* 1 if name is a backend name dv2_backend_open understands (it may still
 * be missing from this build). */
int dv2_backend_known(const char *name);
/* The names of the backends of this build, for harnesses that run every op
 * on each (i < dv2_backend_count()). */
size_t dv2_backend_count(void);
const char *dv2_backend_name_at(size_t i);

#ifdef __cplusplus
}
#endif
#endif
