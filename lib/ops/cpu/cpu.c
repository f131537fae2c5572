/* cpu.c — the CPU backends: "cpu" (host memory for the "device", the
 * float32 reference kernels of lib/ops/cpu/cpu_*.c, losses in cpu_loss.c)
 * and "cpu-bf16" (the same with bf16 storage, cpu_bf16.c).
 *
 * The table entries here adapt the kernels to the backend interface
 * (ops.h): the kernels are plain functions of their arguments; the entries
 * add the context: workspace from the backend's arena, the sticky status,
 * the transfer counters, collectives for the losses that need them.  A
 * backend object is used by one thread at a time (its ops run OpenMP
 * inside). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/dist.h"
#include "core/dv2.h"
#include "ops/cpu/cpu_blas.h"
#include "ops/cpu/cpu_loss.h"
#include "ops/cpu/cpu.h"
#include "image/resize.h"

typedef struct cpu_ctx {
    void *ws;                    /* the workspace arena */
    size_t ws_cap, ws_high;
    int status;                  /* first failure (sticky) */
    uint64_t to_host, to_device; /* bytes through to_host / to_device */
    dv2_dist_reqs *reqs;         /* the started collectives (coll_wait ends them) */
} cpu_ctx;

static cpu_ctx *ctx_of(const dv2_backend *be) { return (cpu_ctx *)be->ctx; }

int dv2_cpu_fail(const dv2_backend *be, int status) {
    cpu_ctx *c = ctx_of(be);
    if (c && !c->status) c->status = status;
    return status;
}

/* ---- memory ------------------------------------------------------------------ */

static void *e_alloc(const dv2_backend *be, size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64)) {
        dv2_cpu_fail(be, DV2_ENOMEM);
        return NULL;
    }
    memset(p, 0, bytes);
    return p;
}

static void e_free(const dv2_backend *be, void *p) {
    (void)be;
    free(p);
}

static int e_copy(const dv2_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes) memmove(dst, src, bytes);
    return DV2_OK;
}

/* The "device" is host memory, so a transfer is a copy; it is counted so
 * that a test can bound what a training step would move over PCIe. */
static int e_to_host(const dv2_backend *be, void *dst, const void *src, size_t bytes) {
    ctx_of(be)->to_host += bytes;
    return e_copy(be, dst, src, bytes);
}

static int e_to_device(const dv2_backend *be, void *dst, const void *src, size_t bytes) {
    ctx_of(be)->to_device += bytes;
    return e_copy(be, dst, src, bytes);
}

static int e_zero(const dv2_backend *be, void *p, size_t bytes) {
    (void)be;
    if (bytes) memset(p, 0, bytes);
    return DV2_OK;
}

static int e_sync(const dv2_backend *be) { return ctx_of(be)->status; }

void *dv2_cpu_workspace(const dv2_backend *be, size_t bytes) {
    cpu_ctx *c = ctx_of(be);
    if (bytes > c->ws_cap) {
        size_t cap = c->ws_cap * 2 > bytes ? c->ws_cap * 2 : bytes;
        void *p = NULL;
        if (posix_memalign(&p, 64, cap)) {
            dv2_cpu_fail(be, DV2_ENOMEM);
            return NULL;
        }
        free(c->ws);
        c->ws = p, c->ws_cap = cap;
    }
    if (bytes > c->ws_high) c->ws_high = bytes;
    return c->ws;
}

static void e_info(const dv2_backend *be, dv2_backend_info *out) {
    const cpu_ctx *c = ctx_of(be);
    memset(out, 0, sizeof *out);
    snprintf(out->device, sizeof out->device, "cpu (%d threads, OpenBLAS %s)", omp_get_max_threads(),
             dv2_cpu_blas_corename());
    out->workspace_high = c->ws_high;
    out->to_host = c->to_host, out->to_device = c->to_device;
}

static void e_release(dv2_backend *be) {
    cpu_ctx *c = ctx_of(be);
    if (c) free(c->ws), dv2_dist_reqs_free(c->reqs);
    free(c);
    be->ctx = NULL;
}

/* Fills x (n floats) with NaN: the output of an op that could not run. */
void dv2_cpu_nan_fill(float *x, size_t n) {
    if (x)
        for (size_t i = 0; i < n; i++) x[i] = NAN;
}

/* ---- ops whose kernels need nothing from the context ------------------------- */

/* The f32 backend has no compute copies (weights_bf16 0): w16 is unused. */
static int e_linear_forward(const dv2_backend *be, float *out, float *pre, const float *in,
                            const float *w, const dv2_bf16 *w16, const float *b, int N, int Cin,
                            int Cout, int flags) {
    (void)be, (void)w16;
    dv2_cpu_linear_forward(out, pre, in, w, b, N, Cin, Cout, flags);
    return DV2_OK;
}

static int e_linear_backward(const dv2_backend *be, float *din, float *dw, float *db, float *work,
                             const float *dout, const float *pre, const float *in, const float *w,
                             const dv2_bf16 *w16, int N, int Cin, int Cout, int flags) {
    (void)be, (void)w16;
    dv2_cpu_linear_backward(din, dw, db, work, dout, pre, in, w, N, Cin, Cout, flags);
    return DV2_OK;
}

static int e_patch_embed_forward(const dv2_backend *be, float *out, float *col, const float *img,
                                 const float *w, const dv2_bf16 *w16, const float *b, int B,
                                 int Hpx, int Wpx, int p, int D) {
    (void)be, (void)w16;
    dv2_cpu_patch_embed_forward(out, col, img, w, b, B, Hpx, Wpx, p, D);
    return DV2_OK;
}

static int e_patch_embed_backward(const dv2_backend *be, float *dw, float *db, const float *dout,
                                  const float *col, int B, int Hpx, int Wpx, int p, int D) {
    (void)be;
    dv2_cpu_patch_embed_backward(dw, db, dout, col, B, Hpx, Wpx, p, D);
    return DV2_OK;
}

static int e_posembed_forward(const dv2_backend *be, float *out, float *scratch, const float *pos,
                              const float *wy, const float *wx, int M, int oh, int ow, int D) {
    (void)be;
    dv2_cpu_posembed_forward(out, scratch, pos, wy, wx, M, oh, ow, D);
    return DV2_OK;
}

static int e_posembed_backward(const dv2_backend *be, float *dpos, float *scratch,
                               const float *dout, const float *wy, const float *wx, int M, int oh,
                               int ow, int D) {
    (void)be;
    dv2_cpu_posembed_backward(dpos, scratch, dout, wy, wx, M, oh, ow, D);
    return DV2_OK;
}

static int e_embed_tokens_forward(const dv2_backend *be, float *x, const float *patch,
                                  const float *cls, const float *reg, const float *pos,
                                  const uint8_t *mask, const float *mask_token, int B, int N, int R,
                                  int D) {
    (void)be;
    dv2_cpu_embed_tokens_forward(x, patch, cls, reg, pos, mask, mask_token, B, N, R, D);
    return DV2_OK;
}

static int e_embed_tokens_backward(const dv2_backend *be, float *dpatch, float *dcls, float *dreg,
                                   float *dpos, float *dmask_token, const float *dx,
                                   const uint8_t *mask, int B, int N, int R, int D) {
    (void)be;
    dv2_cpu_embed_tokens_backward(dpatch, dcls, dreg, dpos, dmask_token, dx, mask, B, N, R, D);
    return DV2_OK;
}

static int e_layernorm_forward(const dv2_backend *be, float *out, float *mean, float *rstd,
                               const float *in, const float *w, const float *b, int N, int C,
                               float eps) {
    (void)be;
    dv2_cpu_layernorm_forward(out, mean, rstd, in, w, b, N, C, eps);
    return DV2_OK;
}

static int e_layernorm_backward(const dv2_backend *be, float *din, float *dw, float *db,
                                const float *dout, const float *in, const float *w,
                                const float *mean, const float *rstd, int N, int C) {
    (void)be;
    dv2_cpu_layernorm_backward(din, dw, db, dout, in, w, mean, rstd, N, C);
    return DV2_OK;
}

static int e_l2norm_forward(const dv2_backend *be, float *out, float *norm, const float *in, int N,
                            int C, float eps) {
    (void)be;
    dv2_cpu_l2norm_forward(out, norm, in, N, C, eps);
    return DV2_OK;
}

static int e_l2norm_backward(const dv2_backend *be, float *din, const float *dout, const float *in,
                             const float *norm, int N, int C, float eps) {
    (void)be;
    dv2_cpu_l2norm_backward(din, dout, in, norm, N, C, eps);
    return DV2_OK;
}

static int e_weightnorm_forward(const dv2_backend *be, float *w, float *vnorm, const float *v,
                                const float *g, int K, int C) {
    (void)be;
    dv2_cpu_weightnorm_forward(w, vnorm, v, g, K, C);
    return DV2_OK;
}

static int e_weightnorm_backward(const dv2_backend *be, float *dv, float *dg, const float *dw,
                                 const float *v, const float *g, const float *vnorm, int K, int C) {
    (void)be;
    dv2_cpu_weightnorm_backward(dv, dg, dw, v, g, vnorm, K, C);
    return DV2_OK;
}

static int e_gelu_forward(const dv2_backend *be, float *out, const float *in, size_t n) {
    (void)be;
    dv2_cpu_gelu_forward(out, in, n);
    return DV2_OK;
}

static int e_gelu_backward(const dv2_backend *be, float *din, const float *dout, const float *in,
                           size_t n) {
    (void)be;
    dv2_cpu_gelu_backward(din, dout, in, n, 1);
    return DV2_OK;
}

static int e_swiglu_forward(const dv2_backend *be, float *out, const float *in, int N, int h) {
    (void)be;
    dv2_cpu_swiglu_forward(out, in, N, h);
    return DV2_OK;
}

static int e_swiglu_backward(const dv2_backend *be, float *din, const float *dout, const float *in,
                             int N, int h) {
    (void)be;
    dv2_cpu_swiglu_backward(din, dout, in, N, h);
    return DV2_OK;
}

static int e_residual_forward(const dv2_backend *be, float *x, const float *y, const float *gamma,
                              const int *rows, const float *scale, int n, int C) {
    (void)be;
    dv2_cpu_residual_forward(x, y, gamma, rows, scale, n, C);
    return DV2_OK;
}

static int e_residual_backward(const dv2_backend *be, float *dy, float *dgamma, const float *dx,
                               const float *y, const float *gamma, const int *rows,
                               const float *scale, int n, int C) {
    (void)be;
    dv2_cpu_residual_backward(dy, dgamma, dx, y, gamma, rows, scale, n, C);
    return DV2_OK;
}

static int e_gather_rows(const dv2_backend *be, float *out, const float *in, const int *rows, int n,
                         int C) {
    (void)be;
    dv2_cpu_gather_rows(out, in, rows, n, C);
    return DV2_OK;
}

static int e_scatter_add_rows(const dv2_backend *be, float *out, const float *in, const int *rows,
                              int n, int C) {
    (void)be;
    dv2_cpu_scatter_add_rows(out, in, rows, n, C);
    return DV2_OK;
}

static int e_add(const dv2_backend *be, float *y, const float *x, size_t n) {
    (void)be;
    dv2_cpu_add(y, x, n);
    return DV2_OK;
}

static int e_scale(const dv2_backend *be, float *x, float a, size_t n) {
    (void)be;
    dv2_cpu_scale(x, a, n);
    return DV2_OK;
}

static int e_softmax_center_forward(const dv2_backend *be, float *q, const float *t,
                                    const float *center, int N, int K, float temp) {
    (void)be;
    dv2_cpu_softmax_center_forward(q, t, center, N, K, temp);
    return DV2_OK;
}

static int e_dino_backward(const dv2_backend *be, float *ds_l, float *ds_g, float dloss_local,
                           float dloss_global, const float *s_l, const float *s_g, const float *q,
                           int B, int L, int K, float temp) {
    (void)be;
    dv2_cpu_dino_backward(ds_l, ds_g, dloss_local, dloss_global, s_l, s_g, q, B, L, K, temp);
    return DV2_OK;
}

static int e_ibot_forward(const dv2_backend *be, float *loss, const float *s_p, const float *q,
                          const float *w, int M, int K, int n_crops, float temp) {
    (void)be;
    dv2_cpu_ibot_forward(loss, s_p, q, w, M, K, n_crops, temp);
    return DV2_OK;
}

static int e_ibot_backward(const dv2_backend *be, float *ds_p, float dloss, const float *s_p,
                           const float *q, const float *w, int M, int K, int n_crops, float temp) {
    (void)be;
    dv2_cpu_ibot_backward(ds_p, dloss, s_p, q, w, M, K, n_crops, temp);
    return DV2_OK;
}

/* The compute copies (p16, teacher16) are written after the f32 update:
 * on the CPU a second pass, on a GPU the same kernel. */
static int e_adamw_step(const dv2_backend *be, float *p, dv2_bf16 *p16, float *m, float *v,
                        const float *g, size_t n, float lr, float wd, float beta1, float beta2,
                        float eps, int t) {
    (void)be;
    dv2_cpu_adamw_step(p, m, v, g, n, lr, wd, beta1, beta2, eps, t);
    if (p16) dv2_bf16_store_n(p16, p, n);
    return DV2_OK;
}

static int e_ema_update(const dv2_backend *be, float *teacher, dv2_bf16 *teacher16,
                        const float *student, size_t n, float mom) {
    (void)be;
    dv2_cpu_ema_update(teacher, student, n, mom);
    if (teacher16) dv2_bf16_store_n(teacher16, teacher, n);
    return DV2_OK;
}

static int e_to_bf16(const dv2_backend *be, dv2_bf16 *dst, const float *src, size_t n) {
    (void)be;
    dv2_bf16_store_n(dst, src, n);
    return DV2_OK;
}

static int e_from_bf16(const dv2_backend *be, float *dst, const dv2_bf16 *src, size_t n) {
    (void)be;
    dv2_bf16_load_n(dst, src, n);
    return DV2_OK;
}

static int e_allreduce_sum(const dv2_backend *be, float *buf, size_t n, const struct dv2_dist *comm,
                           struct dv2_error *err) {
    (void)be;
    return dv2_cpu_allreduce_sum(buf, n, comm, err);
}

static int e_reduce_scatter_sum(const dv2_backend *be, float *out, const float *in, size_t n,
                                const struct dv2_dist *comm, struct dv2_error *err) {
    (void)be;
    return dv2_cpu_reduce_scatter_sum(out, in, n, comm, err);
}

static int e_all_gather(const dv2_backend *be, float *out, const float *in, size_t n,
                        const struct dv2_dist *comm, struct dv2_error *err) {
    (void)be;
    return dv2_cpu_all_gather(out, in, n, comm, err);
}

static int e_allreduce_sum_start(const dv2_backend *be, float *buf, size_t n, const struct dv2_dist *comm,
                                 struct dv2_error *err) {
    return dv2_dist_iallreduce_sum_f32(comm, buf, n, &ctx_of(be)->reqs, err);
}

static int e_reduce_sum_start(const dv2_backend *be, float *buf, size_t n, int root, const struct dv2_dist *comm,
                              struct dv2_error *err) {
    return dv2_dist_ireduce_sum_f32(comm, buf, n, root, &ctx_of(be)->reqs, err);
}

static void e_coll_progress(const dv2_backend *be) { dv2_dist_reqs_progress(ctx_of(be)->reqs); }

static int e_coll_wait(const dv2_backend *be, struct dv2_error *err) {
    return dv2_dist_reqs_wait(ctx_of(be)->reqs, err);
}

static int e_pixels_forward(const dv2_backend *be, float *out, const uint8_t *px, int n, int H, int W) {
    (void)be;
    size_t np = (size_t)H * W;
#pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)n * np))
    for (int i = 0; i < n; i++) {
        dv2_image img = {W, H, (uint8_t *)px + 3 * np * (size_t)i, 3 * np};
        dv2_resize_to_tensor(out + 3 * np * (size_t)i, &img);
    }
    return DV2_OK;
}

/* ---- ops with workspace -------------------------------------------------------- */

static int e_attention_forward(const dv2_backend *be, float *out, float *lse, const float *qkv,
                               const dv2_seqpack *sp, int H, int dh) {
    float *work = dv2_cpu_workspace(be, sizeof(float) * dv2_cpu_attention_work(sp, 0));
    if (!work) {
        dv2_cpu_nan_fill(out, (size_t)sp->T * H * dh);
        return DV2_ENOMEM;
    }
    dv2_cpu_attention_forward(out, lse, qkv, sp, H, dh, work);
    return DV2_OK;
}

static int e_attention_backward(const dv2_backend *be, float *dqkv, const float *dout,
                                const float *qkv, const float *out, const float *lse,
                                const dv2_seqpack *sp, int H, int dh) {
    float *work = dv2_cpu_workspace(be, sizeof(float) * dv2_cpu_attention_work(sp, 1));
    if (!work) {
        dv2_cpu_nan_fill(dqkv, (size_t)sp->T * 3 * H * dh);
        return DV2_ENOMEM;
    }
    dv2_cpu_attention_backward(dqkv, dout, qkv, out, lse, sp, H, dh, work);
    return DV2_OK;
}

static int e_sumsq(const dv2_backend *be, double *h_out, const float *x, size_t n) {
    ctx_of(be)->to_host += sizeof *h_out; /* a scalar comes back to the host */
    *h_out = dv2_cpu_sumsq(x, n);
    return DV2_OK;
}

static int e_all_finite(const dv2_backend *be, int *h_out, const float *x, size_t n) {
    ctx_of(be)->to_host += sizeof *h_out;
    *h_out = dv2_cpu_all_finite(x, n);
    return DV2_OK;
}

/* ---- losses ---------------------------------------------------------------------- */

static int e_center_update(const dv2_backend *be, float *center, const float *t, int N, int K,
                           float scale_sum, float scale_apply, float momentum,
                           const dv2_dist *comm, dv2_error *err) {
    float *sum = dv2_cpu_workspace(be, sizeof(float) * (size_t)(K ? K : 1));
    if (!sum) return dv2_error_set(err, DV2_ENOMEM, "backend: out of workspace for the center");
    if (N > 0) dv2_cpu_center_sum(sum, t, N, K, scale_sum);
    else memset(sum, 0, sizeof(float) * (size_t)K);
    int rc = comm && comm->world > 1 ? be->allreduce_sum(be, sum, (size_t)K, comm, err) : DV2_OK;
    if (rc) return dv2_cpu_fail(be, rc);
    dv2_cpu_center_apply(center, sum, scale_apply, momentum, K);
    return DV2_OK;
}

typedef struct sk_comm {
    const dv2_backend *be;
    const dv2_dist *comm;
    dv2_error *err;
} sk_comm;

static int sk_allreduce(float *buf, size_t n, void *ctx) {
    sk_comm *c = ctx;
    return c->be->allreduce_sum(c->be, buf, n, c->comm, c->err);
}

static int e_sinkhorn_knopp_forward(const dv2_backend *be, float *q, const float *t, int N, int K,
                                    float temp, int n_iter, double n_total, const dv2_dist *comm,
                                    dv2_error *err) {
    float *work = dv2_cpu_workspace(be, sizeof(float) * ((size_t)K + 1));
    if (!work) return dv2_error_set(err, DV2_ENOMEM, "backend: out of workspace for Sinkhorn-Knopp");
    sk_comm c = {be, comm, err};
    int rc = dv2_cpu_sinkhorn_knopp_ws(q, work, t, N, K, temp, n_iter, n_total,
                                       comm && comm->world > 1 ? sk_allreduce : NULL, &c);
    return rc ? dv2_cpu_fail(be, rc) : DV2_OK;
}

static int e_dino_forward(const dv2_backend *be, float *loss, const float *s_l, const float *s_g,
                          const float *q, int B, int L, int K, float temp) {
    (void)be;
    dv2_cpu_dino_forward(loss, loss + 1, s_l, s_g, q, B, L, K, temp);
    return DV2_OK;
}

static int e_koleo_forward(const dv2_backend *be, float *loss, int *nn, const float *x, int N, int C) {
    float *work = dv2_cpu_workspace(be, sizeof(float) * ((size_t)N + 1));
    if (!work) {
        *loss = NAN;
        return DV2_ENOMEM;
    }
    dv2_cpu_koleo_forward_ws(loss, nn, work, x, N, C);
    return DV2_OK;
}

static int e_koleo_backward(const dv2_backend *be, float *dx, float dloss, const float *x,
                            const int *nn, int N, int C) {
    float *work = dv2_cpu_workspace(be, sizeof(float) * ((size_t)N * (C + 1) + 1));
    if (!work) {
        dv2_cpu_nan_fill(dx, (size_t)N * C);
        return DV2_ENOMEM;
    }
    dv2_cpu_koleo_backward_ws(dx, work, dloss, x, nn, N, C);
    return DV2_OK;
}

static int e_collapse_stats(const dv2_backend *be, double *out, const float *q, const float *t,
                            const float *cls, const float *g, const float *v, int N, int K, int D,
                            int d) {
    size_t w = (size_t)d * d + d;
    if (w < (size_t)K) w = K;
    if (w < (size_t)D) w = D;
    double *work = dv2_cpu_workspace(be, sizeof(double) * w + sizeof(int) * (size_t)K);
    memset(out, 0, sizeof(double) * DV2_STATS_N);
    if (!work) {
        for (int i = 0; i < DV2_STATS_N; i++) out[i] = NAN;
        return DV2_ENOMEM;
    }
    double unused;
    if (q) dv2_cpu_stats_targets(out, q, N, K, work, (int *)(work + w));
    if (t) dv2_cpu_stats_spread(&out[DV2_STAT_LOGIT_STD], &unused, t, N, K, work);
    if (cls) dv2_cpu_stats_spread(&out[DV2_STAT_CLS_STD], &out[DV2_STAT_CLS_COS], cls, N, D, work);
    if (g && v) dv2_cpu_stats_prototypes(out, g, v, K, d, work);
    return DV2_OK;
}

/* ---- the tables ------------------------------------------------------------------ */

/* The entries both CPU tables share: memory and the ops that store f32. */
#define CPU_SHARED_ENTRIES \
    .alloc = e_alloc, \
    .free = e_free, \
    .to_host = e_to_host, \
    .to_device = e_to_device, \
    .copy = e_copy, \
    .zero = e_zero, \
    .sync = e_sync, \
    .status = e_sync, \
    .workspace = dv2_cpu_workspace, \
    .info = e_info, \
    .release = e_release, \
    .to_bf16 = e_to_bf16, \
    .from_bf16 = e_from_bf16, \
    .pixels_forward = e_pixels_forward, \
    .posembed_forward = e_posembed_forward, \
    .posembed_backward = e_posembed_backward, \
    .embed_tokens_forward = e_embed_tokens_forward, \
    .embed_tokens_backward = e_embed_tokens_backward, \
    .layernorm_forward = e_layernorm_forward, \
    .layernorm_backward = e_layernorm_backward, \
    .l2norm_forward = e_l2norm_forward, \
    .l2norm_backward = e_l2norm_backward, \
    .weightnorm_forward = e_weightnorm_forward, \
    .weightnorm_backward = e_weightnorm_backward, \
    .gelu_backward = e_gelu_backward, \
    .swiglu_backward = e_swiglu_backward, \
    .residual_forward = e_residual_forward, \
    .residual_backward = e_residual_backward, \
    .gather_rows = e_gather_rows, \
    .scatter_add_rows = e_scatter_add_rows, \
    .add = e_add, \
    .scale = e_scale, \
    .sumsq = e_sumsq, \
    .all_finite = e_all_finite, \
    .softmax_center_forward = e_softmax_center_forward, \
    .center_update = e_center_update, \
    .sinkhorn_knopp_forward = e_sinkhorn_knopp_forward, \
    .dino_forward = e_dino_forward, \
    .dino_backward = e_dino_backward, \
    .ibot_forward = e_ibot_forward, \
    .ibot_backward = e_ibot_backward, \
    .koleo_forward = e_koleo_forward, \
    .koleo_backward = e_koleo_backward, \
    .collapse_stats = e_collapse_stats, \
    .allreduce_sum = e_allreduce_sum, \
    .reduce_scatter_sum = e_reduce_scatter_sum, \
    .all_gather = e_all_gather, \
    .allreduce_sum_start = e_allreduce_sum_start, \
    .reduce_sum_start = e_reduce_sum_start, \
    .coll_progress = e_coll_progress, \
    .coll_wait = e_coll_wait, \
    .adamw_step = e_adamw_step, \
    .ema_update = e_ema_update,

static const dv2_backend k_cpu = {
    .name = "cpu",
    CPU_SHARED_ENTRIES
    .linear_forward = e_linear_forward,
    .linear_backward = e_linear_backward,
    .patch_embed_forward = e_patch_embed_forward,
    .patch_embed_backward = e_patch_embed_backward,
    .attention_forward = e_attention_forward,
    .attention_backward = e_attention_backward,
    .gelu_forward = e_gelu_forward,
    .swiglu_forward = e_swiglu_forward,
};

/* bf16 storage emulated by rounding (cpu_bf16.c). */
static const dv2_backend k_cpu_bf16 = {
    .name = "cpu-bf16",
    .weights_bf16 = 1,
    CPU_SHARED_ENTRIES
    .linear_forward = dv2_cpu_bf16_linear_forward,
    .linear_backward = dv2_cpu_bf16_linear_backward,
    .patch_embed_forward = dv2_cpu_bf16_patch_embed_forward,
    .patch_embed_backward = dv2_cpu_bf16_patch_embed_backward,
    .attention_forward = dv2_cpu_bf16_attention_forward,
    .attention_backward = dv2_cpu_bf16_attention_backward,
    .gelu_forward = dv2_cpu_bf16_gelu_forward,
    .swiglu_forward = dv2_cpu_bf16_swiglu_forward,
};

int dv2_cpu_backend_new(dv2_backend **out, int bf16) {
    dv2_backend *be = malloc(sizeof *be);
    cpu_ctx *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be), free(c);
        return DV2_ENOMEM;
    }
    *be = bf16 ? k_cpu_bf16 : k_cpu;
    be->ctx = c;
    *out = be;
    return DV2_OK;
}
