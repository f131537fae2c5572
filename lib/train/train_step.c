/* train_step.c — one training iteration (train_step.h, spec §5).
 *
 * Buffers that depend on the global crop size (the ViT passes) are rebuilt
 * when it changes (the high-resolution phase); everything else is sized once
 * from B, L, the mask upper bound U and the prototype counts.
 *
 * Randomness of an iteration (masks, drop-path subsets) is drawn from RNGs
 * seeded with (train.seed, iteration, rank), so a resumed run draws exactly
 * what the uninterrupted run drew.
 *
 * Distillation (m->distill, spec §16) is the same iteration with three
 * changes: the teacher is the frozen network of its own width (its buffers
 * are sized by its D), the student sees unmasked global crops, and the
 * "masked" token list is every patch token of both global crops (weight
 * 1/N each), so the iBOT loss compares all student and teacher patches of
 * the same view.  The EMA runs into the student's spare copy. */
#include "train/train_step.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/loss.h"
#include "model/mask.h"
#include "core/rng.h"
#include "train/collapse.h"

#define STUDENT_TEMP 0.1f
#define CENTER_MOMENTUM 0.9f
#define SK_ITERS 3

/* The slots of the step's device loss vector. */
enum { LOSS_DINO_LOCAL, LOSS_DINO_GLOBAL, LOSS_IBOT, LOSS_KOLEO1, LOSS_KOLEO2, LOSS_N };

struct dv2_train_step {
    const dv2_config *c;
    dv2_train_model *m;
    const dv2_dist *dist;
    const dv2_backend *be;
    int B, L, Sl, D, R, p, K, Ki, sk;
    int Dt, Rt, distill;          /* teacher width and registers; distillation mode */
    /* size-dependent */
    int Sg, N, U;
    dv2_vit_pass *tp, *sp;
    float *d_gimg, *d_limg;
    uint8_t *d_gpx, *d_lpx;       /* the crops as u8 pixels, before normalisation */
    uint8_t *h_mask, *d_mask;     /* iBOT masks (2B, N): the head of the plan (below) */
    dv2_mask_gen mgen;            /* block masks of this grid (lib/model/mask.h) */
    int32_t *h_midx;              /* flat masked indices (2B·N) */
    float *h_mw;                  /* their weights (2B·N) */
    void *mscratch;
    /* rows */
    /* The step's packing plan, made on the host and uploaded in one copy:
     * [masks 2B·N bytes, padded to 4][teacher class rows 2B][student class
     * rows L·B + 2B][teacher masked rows M][student masked rows M][iBOT
     * weights M]; the pointers below point into the device copy. */
    uint8_t *h_plan, *d_plan;
    int *d_rows_tcls, *d_rows_tpat, *d_rows_scls, *d_rows_spat;
    float *d_w;
    /* head inputs / outputs, targets, losses on the device */
    float *d_tin_c, *d_tin_p, *d_sin_c, *d_sin_p, *d_dsin_c, *d_dsin_p;
    float *d_tlog_c, *d_tlog_p, *d_slog_c, *d_slog_p, *d_dout, *d_tmp;
    float *d_q_c, *d_q_p, *d_dslog_c, *d_dslog_p;
    float *d_loss;                /* LOSS_N floats: the loss terms of the step */
    int *d_nn;                    /* KoLeo neighbours (2B) */
    dv2_head_pass *thc, *thp, *shc, *shp;
    int *h_subset;
    size_t subset_cap;
    dv2_collapse *col;            /* collapse diagnostics of the teacher (collapse.h) */
    int64_t fault_nan_from; /* DV2_TRAIN_FAULT_NAN_FROM: poison gradients from this iteration (tests) */
    int overlap;            /* train.overlap_grad_reduce with more than one rank */
};

/* The student's block hook: block l's gradient is final, so its reduction
 * starts while the blocks below run their backward. */
static int block_done(void *ctx, int l, float *grad, size_t numel, dv2_error *err) {
    dv2_train_step *s = ctx;
    size_t lo = (size_t)(grad - s->m->s_mod[DV2_TM_BACKBONE]->grad);
    (void)l;
    return dv2_train_model_reduce_start(s->m, s->dist, DV2_TM_BACKBONE, lo, lo + numel, err);
}

size_t dv2_train_step_student_bytes(const dv2_train_step *s, int *bf16_kept) {
    return dv2_vit_pass_bytes(s->sp, bf16_kept);
}

/* ---- buffers ---------------------------------------------------------------- */

static void *dalloc(dv2_train_step *s, size_t bytes, int *rc) {
    void *p = s->be->alloc(s->be, bytes ? bytes : 4);
    if (!p) *rc = DV2_ENOMEM;
    return p;
}

static void *halloc(size_t n, size_t size, int *rc) {
    void *p = calloc(n ? n : 1, size);
    if (!p) *rc = DV2_ENOMEM;
    return p;
}

/* Bytes of the packing plan's mask part for 2B crops of N patches (padded
 * to 4 so that the int rows after it are aligned). */
static size_t mask_part(int B, int N) { return ((size_t)2 * B * N + 3) & ~(size_t)3; }

/* Capacity of the packing plan (layout in struct dv2_train_step). */
static size_t plan_bytes(int B, int LB, int maxN, int U) {
    return mask_part(B, maxN) + sizeof(int) * ((size_t)2 * B + LB + 2 * B + 2 * (size_t)U) +
           sizeof(float) * (size_t)U;
}

static void free_sized(dv2_train_step *s) {
    dv2_vit_pass_free(s->tp);
    dv2_vit_pass_free(s->sp);
    s->tp = s->sp = NULL;
    const dv2_backend *be = s->be;
    be->free(be, s->d_gimg), be->free(be, s->d_dout), be->free(be, s->d_gpx);
    s->d_gimg = NULL, s->d_dout = NULL, s->d_gpx = NULL;
    free(s->h_midx), free(s->h_mw), free(s->mscratch);
    s->h_midx = NULL, s->h_mw = NULL, s->mscratch = NULL;
}

/* (Re)builds the passes for global crops of side Sg. */
static int build_sized(dv2_train_step *s, int Sg, dv2_error *err) {
    free_sized(s);
    int rc = 0, B = s->B;
    s->Sg = Sg;
    s->N = (Sg / s->p) * (Sg / s->p);
    dv2_vit_group tg = {2 * B, Sg, Sg};
    dv2_vit_group sg[2] = {{2 * B, Sg, Sg}, {s->L * B, s->Sl, s->Sl}};
    rc = dv2_vit_pass_create(&s->tp, &s->m->t_bb, &tg, 1, 0, err);
    if (!rc) rc = dv2_vit_pass_create(&s->sp, &s->m->s_bb, sg, s->L > 0 ? 2 : 1, DV2_VIT_TRAIN, err);
    if (rc) return rc;
    if (s->overlap) dv2_vit_pass_on_block_done(s->sp, block_done, s);
    size_t T = (size_t)dv2_vit_pass_tokens(s->sp);
    s->d_gimg = dalloc(s, sizeof(float) * 2 * B * 3 * (size_t)Sg * Sg, &rc);
    s->d_gpx = dalloc(s, (size_t)2 * B * 3 * Sg * Sg, &rc);
    s->d_dout = dalloc(s, sizeof(float) * T * s->D, &rc);
    s->h_midx = halloc((size_t)2 * B * s->N, sizeof(int32_t), &rc);
    s->h_mw = halloc((size_t)2 * B * s->N, sizeof(float), &rc);
    s->mscratch = halloc(dv2_mask_batch_scratch_bytes(2 * B, s->N), 1, &rc);
    if (rc) return dv2_error_set(err, rc, "train: out of memory for crops of %d px", Sg);
    return dv2_mask_gen_init(&s->mgen, Sg, s->p, err);
}

int dv2_train_step_create(dv2_train_step **out, const dv2_config *c, dv2_train_model *m, const dv2_dist *dist,
                       dv2_error *err) {
    *out = NULL;
    if (!c->student.drop_path_uniform && c->student.drop_path_rate > 0)
        return dv2_error_set(err, DV2_EUNSUPPORTED, "student.drop_path_uniform = false is not supported "
                             "(the packed pass takes one rate for every block)");
    dv2_train_step *s = calloc(1, sizeof *s);
    if (!s) return dv2_error_set(err, DV2_ENOMEM, "train: out of memory");
    s->c = c, s->m = m, s->dist = dist, s->be = m->be;
    s->B = c->train.batch_size_per_gpu;
    s->L = c->crops.local_crops_number;
    s->Sl = c->crops.local_crops_size;
    s->D = m->arch.embed_dim;
    s->R = m->arch.num_register_tokens;
    s->p = m->arch.patch_size;
    s->K = m->K;
    s->Ki = m->K_ibot;
    s->sk = strcmp(c->train.centering, "sinkhorn_knopp") == 0;
    s->distill = m->distill;
    s->Dt = m->t_arch.embed_dim;
    s->Rt = m->t_arch.num_register_tokens;
    if (s->distill && c->student.drop_path_rate > 0) {
        free(s);
        return dv2_error_set(err, DV2_EINVAL, "distillation has no stochastic depth: student.drop_path_rate "
                             "must be 0 (it is %g)", c->student.drop_path_rate);
    }
    s->overlap = c->train.overlap_grad_reduce && dist->world > 1;
    const char *fault = getenv("DV2_TRAIN_FAULT_NAN_FROM");
    s->fault_nan_from = fault && *fault ? strtoll(fault, NULL, 10) : -1;
    int maxS = c->crops.global_crops_size;
    if (c->train.highres_iters > 0 && c->train.highres_size > maxS) maxS = c->train.highres_size;
    int maxN = (maxS / s->p) * (maxS / s->p);
    int B = s->B, D = s->D, LB = s->L * B;
    s->U = s->distill ? 2 * B * maxN
                      : dv2_mask_upperbound(2 * B, maxN, c->ibot.mask_sample_probability,
                                            (float)c->ibot.mask_ratio_min_max[0],
                                            (float)c->ibot.mask_ratio_min_max[1]);
    int U = s->U > 0 ? s->U : 1;
    int rc = 0;
    s->d_limg = dalloc(s, sizeof(float) * (size_t)LB * 3 * s->Sl * s->Sl, &rc);
    s->d_lpx = dalloc(s, (size_t)LB * 3 * s->Sl * s->Sl, &rc);
    size_t plan = plan_bytes(B, LB, maxN, U);
    s->h_plan = halloc(plan, 1, &rc);
    s->d_plan = dalloc(s, plan, &rc);
    s->h_mask = s->h_plan, s->d_mask = s->d_plan;
    s->d_tin_c = dalloc(s, sizeof(float) * 2 * B * s->Dt, &rc);
    s->d_tin_p = dalloc(s, sizeof(float) * (size_t)U * s->Dt, &rc);
    s->d_sin_c = dalloc(s, sizeof(float) * (size_t)(LB + 2 * B) * D, &rc);
    s->d_sin_p = dalloc(s, sizeof(float) * (size_t)U * D, &rc);
    s->d_dsin_c = dalloc(s, sizeof(float) * (size_t)(LB + 2 * B) * D, &rc);
    s->d_dsin_p = dalloc(s, sizeof(float) * (size_t)U * D, &rc);
    s->d_tlog_c = dalloc(s, sizeof(float) * 2 * B * (size_t)s->K, &rc);
    s->d_tlog_p = dalloc(s, sizeof(float) * (size_t)U * s->Ki, &rc);
    s->d_slog_c = dalloc(s, sizeof(float) * (size_t)(LB + 2 * B) * s->K, &rc);
    s->d_slog_p = dalloc(s, sizeof(float) * (size_t)U * s->Ki, &rc);
    s->d_q_c = dalloc(s, sizeof(float) * 2 * B * (size_t)s->K, &rc);
    s->d_q_p = dalloc(s, sizeof(float) * (size_t)U * s->Ki, &rc);
    s->d_dslog_c = dalloc(s, sizeof(float) * (size_t)(LB + 2 * B) * s->K, &rc);
    s->d_dslog_p = dalloc(s, sizeof(float) * (size_t)U * s->Ki, &rc);
    s->d_tmp = dalloc(s, sizeof(float) * 2 * B * D, &rc);
    s->d_loss = dalloc(s, sizeof(float) * LOSS_N, &rc);
    s->d_nn = dalloc(s, sizeof(int) * 2 * B, &rc);
    if (rc) {
        dv2_train_step_free(s);
        return dv2_error_set(err, DV2_ENOMEM, "train: out of memory for the step buffers");
    }
    dv2_head *hi = m->separate_ibot ? &m->s_ibot : &m->s_dino, *thi = m->separate_ibot ? &m->t_ibot : &m->t_dino;
    if ((rc = dv2_head_pass_create(&s->thc, &m->t_dino, 2 * B, 0, err)) ||
        (rc = dv2_head_pass_create(&s->thp, thi, U, 0, err)) ||
        (rc = dv2_head_pass_create(&s->shc, &m->s_dino, LB + 2 * B, DV2_HEAD_TRAIN, err)) ||
        (rc = dv2_head_pass_create(&s->shp, hi, U, DV2_HEAD_TRAIN, err)) ||
        (rc = build_sized(s, c->crops.global_crops_size, err)) ||
        (rc = dv2_collapse_create(&s->col, s->be, 2 * B, s->K, m->t_dino.a.bottleneck, s->Dt, err))) {
        dv2_train_step_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void dv2_train_step_free(dv2_train_step *s) {
    if (!s) return;
    free_sized(s);
    const dv2_backend *be = s->be;
    void *dev[] = {s->d_limg,   s->d_lpx,       s->d_plan,      s->d_tin_c,     s->d_tin_p,     s->d_sin_c,     s->d_sin_p,
                   s->d_dsin_c, s->d_dsin_p,    s->d_tlog_c,    s->d_tlog_p,    s->d_slog_c,
                   s->d_slog_p, s->d_q_c,       s->d_q_p,       s->d_dslog_c,   s->d_dslog_p,
                   s->d_loss,   s->d_nn,        s->d_tmp};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) be->free(be, dev[i]);
    free(s->h_plan), free(s->h_subset);
    dv2_head_pass_free(s->thc);
    dv2_head_pass_free(s->thp);
    dv2_head_pass_free(s->shc);
    dv2_head_pass_free(s->shp);
    dv2_collapse_free(s->col);
    free(s);
}

/* ---- the step ----------------------------------------------------------------- */

/* Teacher targets of n rows of K logits into q (all on the device); updates
 * center (centering mode) with the all-reduced mean.  n_total: samples over
 * all ranks.  The reference applies the center update lazily at the next
 * iteration, before any use: applying it now is the same computation. */
static int targets(dv2_train_step *s, float *q, const float *t, int n, int K, float temp, float *center,
                   double center_scale_sum, double center_scale_apply, double n_total, dv2_error *err) {
    const dv2_backend *be = s->be;
    if (s->sk) return be->sinkhorn_knopp_forward(be, q, t, n, K, temp, SK_ITERS, n_total, s->dist, err);
    int rc = n > 0 ? be->softmax_center_forward(be, q, t, center, n, K, temp) : DV2_OK;
    if (!rc)
        rc = be->center_update(be, center, t, n, K, (float)center_scale_sum, (float)center_scale_apply,
                               CENTER_MOMENTUM, s->dist, err);
    return rc;
}

int dv2_train_step_run(dv2_train_step *s, const dv2_batch *b, int64_t it, const dv2_sched_values *v,
                    dv2_train_step_stats *out, dv2_error *err) {
    const dv2_config *c = s->c;
    const dv2_backend *be = s->be;
    dv2_train_model *m = s->m;
    const int B = s->B, L = s->L, LB = L * B, D = s->D, K = s->K, Ki = s->Ki, W = s->dist->world;
    int rc;
    memset(out, 0, sizeof *out);
    if (b->B != B || b->L != L || b->Sl != s->Sl)
        return dv2_error_set(err, DV2_EINVAL, "train: batch shape does not match the config");
    if (b->Sg != s->Sg && (rc = build_sized(s, b->Sg, err))) return rc;
    const int N = s->N;
    out->global_size = s->Sg;

    /* masks (lib/model/mask.h, or the batch's own) and the masked-token list I (row-major over [2B, N]) */
    int M = 0, ub = 0;
    if (s->distill) { /* no masking: every patch of both global crops, weight 1/N */
        memset(s->h_mask, 0, (size_t)2 * B * N);
        for (int j = 0; j < 2 * B * N; j++) s->h_midx[j] = j, s->h_mw[j] = 1.0f / (float)N;
        M = 2 * B * N;
    } else if (b->masks) { /* given masks (parity tests): the same list and weights */
        memcpy(s->h_mask, b->masks, (size_t)2 * B * N);
        for (int r = 0; r < 2 * B; r++) {
            int cnt = 0, m0 = M;
            for (int q = 0; q < N; q++)
                if (s->h_mask[r * N + q]) s->h_midx[M++] = r * N + q, cnt++;
            for (int j = m0; j < M; j++) s->h_mw[j] = 1.0f / (float)cnt;
        }
    } else {
        dv2_rng r;
        dv2_rng_seed(&r, (uint64_t)c->train.seed ^ 0x6d61736bull, (uint64_t)it * 4096u + (uint64_t)s->dist->rank);
        rc = dv2_mask_batch(s->h_mask, s->h_midx, s->h_mw, &M, &ub, s->mscratch, &s->mgen, 2 * B,
                            c->ibot.mask_sample_probability, (float)c->ibot.mask_ratio_min_max[0],
                            (float)c->ibot.mask_ratio_min_max[1], &r, err);
        if (rc) return rc;
    }
    if (M > s->U) return dv2_error_set(err, DV2_EINVAL, "train: %d masked tokens above the bound %d", M, s->U);
    /* the packing plan after the masks: class rows (teacher: swapped, row
     * i < B takes teacher crop 2 of image i; student: locals first, row
     * v·B+i, then globals, row c·B+i), masked rows, iBOT weights */
    int *h_tcls = (int *)(s->h_plan + mask_part(B, N)), *h_scls = h_tcls + 2 * B;
    int *h_tpat = h_scls + LB + 2 * B, *h_spat = h_tpat + M;
    float *h_w = (float *)(h_spat + M);
    for (int i = 0; i < 2 * B; i++) h_tcls[i] = dv2_vit_pass_row(s->tp, 0, (i + B) % (2 * B), 0);
    for (int k = 0; k < LB; k++) h_scls[k] = dv2_vit_pass_row(s->sp, 1, k, 0);
    for (int k = 0; k < 2 * B; k++) h_scls[LB + k] = dv2_vit_pass_row(s->sp, 0, k, 0);
    for (int j = 0; j < M; j++) {
        int r = s->h_midx[j] / N, q = s->h_midx[j] % N;
        h_tpat[j] = dv2_vit_pass_row(s->tp, 0, r, 1 + s->Rt + q);
        h_spat[j] = dv2_vit_pass_row(s->sp, 0, r, 1 + s->R + q);
        h_w[j] = s->h_mw[j];
    }
    size_t off = mask_part(B, N);
    s->d_rows_tcls = (int *)(s->d_plan + off), s->d_rows_scls = s->d_rows_tcls + 2 * B;
    s->d_rows_tpat = s->d_rows_scls + LB + 2 * B, s->d_rows_spat = s->d_rows_tpat + M;
    s->d_w = (float *)(s->d_rows_spat + M);
    if ((rc = be->to_device(be, s->d_plan, s->h_plan, (size_t)((uint8_t *)(h_w + M) - s->h_plan)))) goto ioerr;
    /* images: u8 pixels normalised on the device (the loader's), or floats as given */
    size_t gn = (size_t)2 * B * 3 * s->Sg * s->Sg, ln = (size_t)LB * 3 * s->Sl * s->Sl;
    if (b->global_px) {
        if ((rc = be->to_device(be, s->d_gpx, b->global_px, gn)) ||
            (LB && (rc = be->to_device(be, s->d_lpx, b->local_px, ln))) ||
            (rc = be->pixels_forward(be, s->d_gimg, s->d_gpx, 2 * B, s->Sg, s->Sg)) ||
            (LB && (rc = be->pixels_forward(be, s->d_limg, s->d_lpx, LB, s->Sl, s->Sl))))
            goto ioerr;
    } else if ((rc = be->to_device(be, s->d_gimg, b->global, sizeof(float) * gn)) ||
               (LB && (rc = be->to_device(be, s->d_limg, b->local, sizeof(float) * ln)))) {
        goto ioerr;
    }

    /* ---- teacher ---- */
    const float *timg[1] = {s->d_gimg};
    if ((rc = dv2_vit_pass_forward(s->tp, timg, NULL, NULL, err))) return rc;
    const float *tout = dv2_vit_pass_output(s->tp);
    be->gather_rows(be, s->d_tin_c, tout, s->d_rows_tcls, 2 * B, s->Dt);
    if (M) be->gather_rows(be, s->d_tin_p, tout, s->d_rows_tpat, M, s->Dt);
    if ((rc = dv2_head_pass_forward(s->thc, s->d_tlog_c, s->d_tin_c, 2 * B, err))) return rc;
    if (M && (rc = dv2_head_pass_forward(s->thp, s->d_tlog_p, s->d_tin_p, M, err))) return rc;
    float temp = (float)v->teacher_temp;
    if ((rc = targets(s, s->d_q_c, s->d_tlog_c, 2 * B, K, temp, m->dino_center, 1.0, 1.0 / (2.0 * B * W),
                      (double)2 * B * W, err)))
        return rc;
    if ((rc = dv2_collapse_measure(s->col, &out->collapse, s->d_q_c, s->d_tlog_c, s->d_tin_c, &m->t_dino, 2 * B,
                                   err)))
        return rc;
    double m_tot = M;
    if ((rc = dv2_dist_allreduce_sum_f64(s->dist, &m_tot, 1, err))) return rc;
    /* no masked token on any rank: no iBOT targets, the center is left alone */
    if (m_tot > 0 && (rc = targets(s, s->d_q_p, s->d_tlog_p, M, Ki, temp, m->ibot_center, M ? 1.0 / M : 0.0,
                                   1.0 / W, m_tot, err)))
        return rc;

    /* ---- student ---- */
    const dv2_vit_group sg[2] = {{2 * B, s->Sg, s->Sg}, {LB, s->Sl, s->Sl}};
    int ng = L > 0 ? 2 : 1;
    dv2_vit_droppath dp = {c->student.drop_path_rate, NULL};
    if (dp.rate > 0) {
        size_t len = dv2_vit_droppath_len(sg, ng, m->arch.depth, dp.rate);
        if (len > s->subset_cap) {
            free(s->h_subset);
            s->h_subset = malloc(sizeof(int) * len);
            s->subset_cap = s->h_subset ? len : 0;
            if (!s->h_subset) return dv2_error_set(err, DV2_ENOMEM, "train: out of memory");
        }
        dv2_rng r;
        dv2_rng_seed(&r, (uint64_t)c->train.seed ^ 0x64726f70ull, (uint64_t)it * 4096u + (uint64_t)s->dist->rank);
        if ((rc = dv2_vit_droppath_draw(s->h_subset, sg, ng, m->arch.depth, dp.rate, &r)))
            return dv2_error_set(err, rc, "train: drop-path subsets");
        dp.subset = s->h_subset;
    }
    const float *simg[2] = {s->d_gimg, s->d_limg};
    const uint8_t *smask[2] = {s->distill ? NULL : s->d_mask, NULL};
    if ((rc = dv2_vit_pass_forward(s->sp, simg, smask, dp.rate > 0 ? &dp : NULL, err))) return rc;
    const float *sout = dv2_vit_pass_output(s->sp);
    be->gather_rows(be, s->d_sin_c, sout, s->d_rows_scls, LB + 2 * B, D);
    if (M) be->gather_rows(be, s->d_sin_p, sout, s->d_rows_spat, M, D);
    if ((rc = dv2_head_pass_forward(s->shc, s->d_slog_c, s->d_sin_c, LB + 2 * B, err))) return rc;
    if (M && (rc = dv2_head_pass_forward(s->shp, s->d_slog_p, s->d_sin_p, M, err))) return rc;

    /* ---- losses (§6–§9), on the device; one small vector comes back ---- */
    const float *s_l = s->d_slog_c, *s_g = s->d_slog_c + (size_t)LB * K;
    const float *cls = s->d_sin_c + (size_t)LB * D; /* the student's global-crop class tokens */
    int koleo_on = c->dino.koleo_loss_weight > 0 && c->dino.loss_weight > 0;
    float hl[LOSS_N] = {0};
    if ((rc = be->zero(be, s->d_loss, sizeof hl)) ||
        (rc = be->dino_forward(be, s->d_loss + LOSS_DINO_LOCAL, s_l, s_g, s->d_q_c, B, L, K, STUDENT_TEMP)) ||
        (M && (rc = be->ibot_forward(be, s->d_loss + LOSS_IBOT, s->d_slog_p, s->d_q_p, s->d_w, M, Ki, 2 * B,
                                     STUDENT_TEMP))) ||
        (koleo_on && ((rc = be->koleo_forward(be, s->d_loss + LOSS_KOLEO1, s->d_nn, cls, B, D)) ||
                      (rc = be->koleo_forward(be, s->d_loss + LOSS_KOLEO2, s->d_nn + B, cls + (size_t)B * D, B,
                                              D)))) ||
        (rc = be->to_host(be, hl, s->d_loss, sizeof hl)))
        goto ioerr;
    dv2_loss_terms t = {hl[LOSS_DINO_LOCAL], hl[LOSS_DINO_GLOBAL], hl[LOSS_KOLEO1], hl[LOSS_KOLEO2], hl[LOSS_IBOT], 0};
    dv2_loss_weights w = {(float)c->dino.loss_weight, (float)c->dino.koleo_loss_weight, (float)c->ibot.loss_weight};
    dv2_loss_total(&t, &w);

    /* ---- backward ---- */
    dv2_loss_terms d; /* each term's upstream gradient: constants of the weights */
    dv2_loss_total_backward(&d, &w, 1.0f);
    if ((rc = be->zero(be, s->d_dslog_c, sizeof(float) * (size_t)(LB + 2 * B) * K)) ||
        (rc = be->dino_backward(be, L ? s->d_dslog_c : NULL, s->d_dslog_c + (size_t)LB * K, d.dino_local,
                                d.dino_global, s_l, s_g, s->d_q_c, B, L, K, STUDENT_TEMP)) ||
        (M && ((rc = be->zero(be, s->d_dslog_p, sizeof(float) * (size_t)M * Ki)) ||
               (rc = be->ibot_backward(be, s->d_dslog_p, d.ibot, s->d_slog_p, s->d_q_p, s->d_w, M, Ki, 2 * B,
                                       STUDENT_TEMP)))))
        goto ioerr;
    if ((rc = dv2_train_model_zero_grad(m))) goto ioerr;
    if ((rc = be->zero(be, s->d_dsin_c, sizeof(float) * (size_t)(LB + 2 * B) * D)) ||
        (M && (rc = be->zero(be, s->d_dsin_p, sizeof(float) * (size_t)M * D))))
        goto ioerr;
    if ((rc = dv2_head_pass_backward(s->shc, s->d_dsin_c, s->d_dslog_c, err))) return rc;
    if (M && (rc = dv2_head_pass_backward(s->shp, s->d_dsin_p, s->d_dslog_p, err))) return rc;
    if (koleo_on) { /* into a zeroed buffer first, then added (the order of the sums of the reference) */
        if ((rc = be->zero(be, s->d_tmp, sizeof(float) * 2 * B * D)) ||
            (rc = be->koleo_backward(be, s->d_tmp, d.koleo1, cls, s->d_nn, B, D)) ||
            (rc = be->koleo_backward(be, s->d_tmp + (size_t)B * D, d.koleo2, cls + (size_t)B * D, s->d_nn + B, B,
                                     D)) ||
            (rc = be->add(be, s->d_dsin_c + (size_t)LB * D, s->d_tmp, (size_t)2 * B * D)))
            goto ioerr;
    }
    /* the heads' gradients are final: their reduction runs beside the backbone's backward */
    for (int k = DV2_TM_DINO; s->overlap && k < m->n_mod; k++)
        if ((rc = dv2_train_model_reduce_start(m, s->dist, k, 0, m->s_mod[k]->numel, err))) return rc;
    size_t T = (size_t)dv2_vit_pass_tokens(s->sp);
    if ((rc = be->zero(be, s->d_dout, sizeof(float) * T * D))) goto ioerr;
    be->scatter_add_rows(be, s->d_dout, s->d_dsin_c, s->d_rows_scls, LB + 2 * B, D);
    if (M) be->scatter_add_rows(be, s->d_dout, s->d_dsin_p, s->d_rows_spat, M, D);
    if ((rc = dv2_vit_pass_backward(s->sp, s->d_dout, err))) return rc;

    if (s->fault_nan_from >= 0 && it >= s->fault_nan_from) { /* error injection for tests */
        float nan = NAN; /* the class token's first value: not in a block, reduced below */
        if ((rc = be->to_device(be, m->s_mod[0]->grad, &nan, sizeof nan))) goto ioerr;
    }
    /* ---- gradients across ranks, checks, clipping ---- */
    /* overlapped: the rest of the reduction, then the wait; sharded
     * (ZeRO-1): each rank reduces, checks and clips its chunk only */
    double t_red = dv2_now();
    out->reduce_early = 0, out->reduce_floats = 0;
    if (s->overlap && (rc = dv2_train_model_reduce_finish(m, s->dist, &out->reduce_early, err))) return rc;
    if (!s->overlap && m->sharded && (rc = dv2_train_model_shard_grads(m, err))) return rc;
    if (!s->overlap && W > 1 && !m->sharded)
        for (int k = 0; k < m->n_mod; k++) {
            if ((rc = s->be->allreduce_sum(s->be, m->s_mod[k]->grad, m->s_mod[k]->numel, s->dist, err))) return rc;
            dv2_train_model_scale_grad(m, k, 1.0f / (float)W);
        }
    if (W > 1) {
        if ((rc = be->sync(be))) goto ioerr;
        out->reduce_s = dv2_now() - t_red;
        for (int k = 0; k < m->n_mod; k++) out->reduce_floats += m->s_mod[k]->numel;
    } else {
        out->reduce_s = 0;
    }
    double lv[6] = {t.dino_local, t.dino_global, t.ibot, (double)t.koleo1 + t.koleo2, t.total, 0};
    if ((rc = dv2_dist_allreduce_sum_f64(s->dist, lv, 5, err))) return rc;
    out->dino_local = lv[0] / W, out->dino_global = lv[1] / W, out->ibot = lv[2] / W;
    out->koleo = lv[3] / W, out->total = lv[4] / W;
    out->n_masked = (int)m_tot;
    int grads_finite = 1;
    if (m->sharded && (rc = dv2_train_model_shard_grad_stats(m, out->grad_norm, &grads_finite, err))) return rc;
    out->finite = isfinite(out->total) && (m->sharded ? grads_finite : dv2_train_model_grads_finite(m));
    for (int k = 0; k < m->n_mod; k++) {
        if (!m->sharded) out->grad_norm[k] = dv2_train_model_grad_norm(m, k);
        if (out->finite && c->optim.clip_grad > 0) {
            double coef = c->optim.clip_grad / (out->grad_norm[k] + 1e-6);
            if (coef < 1.0) dv2_train_model_scale_grad(m, k, (float)coef);
        }
    }
    /* ---- update ---- */
    if (out->finite) {
        dv2_train_model_adamw(m, v->lr, v->last_layer_lr, v->wd, c->optim.adamw_beta1, c->optim.adamw_beta2);
        if ((rc = dv2_train_model_gather_params(m, err))) return rc;
    }
    dv2_train_model_ema(m, v->momentum);
    return 0;
ioerr:
    return dv2_error_set(err, rc < 0 ? rc : DV2_EIO, "train: backend memory operation failed");
}
