/* vit_pass.c — forward and backward of the DINOv2 ViT over a packed
 * sequence of image groups (spec §2.3–§2.9, §13), calling only the op table
 * of lib/ops/ops.h.
 *
 * Layout: group g's images follow group g-1's; image i of group g holds
 * rows off[g] + i·S_g .. + S_g − 1 of every (T, D) buffer, S_g = 1+R+N_g.
 * Attention is block-diagonal over images (cu_seqlens).  With stochastic
 * depth each branch runs on the packed tokens of the chosen samples only
 * (gather → LN → branch → residual add with gamma·b/k at the same rows).
 *
 * The positional embedding is resampled on the host (lib/model/posembed.h) when a
 * group's grid differs from the stored one; it is a small table, so this
 * costs two small copies on a device backend. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "model/posembed.h"
#include "model/vit.h"

#define MAXG 8

/* Activations of one block.  xin_* (branch inputs) exist in training
 * passes only; ln1 (the LayerNorm output of either branch) and a (the FFN
 * activation) exist in bb[0] only, shared by all blocks and recomputed in
 * backward. */
typedef struct blockbuf {
    float *xin_a, *ln1, *mean1, *rstd1, *qkv, *att, *lse, *y1;
    float *xin_f, *mean2, *rstd2, *h, *a, *y2;
} blockbuf;

/* What a training pass on a bf16 backend keeps of a block for the backward
 * in 16-bit containers: the GEMM and attention outputs, which hold bf16
 * values already (so the round trip is exact).  The blocks then share one
 * f32 copy of these buffers (bb[0]'s), the working buffers of the ops;
 * the residual-stream inputs xin_* and the statistics stay f32.  The last
 * block keeps its values in the working buffers, which the backward reads
 * first. */
typedef struct stash16 {
    dv2_bf16 *qkv, *att, *y1, *h, *y2;
} stash16;

/* The tokens one branch runs on. */
typedef struct branch {
    int n;        /* tokens */
    int nseq;     /* images */
    int *cu;      /* host, nseq+1 */
    int *rows;    /* device (n), NULL = all tokens in order */
    float *scale; /* device (n), NULL = 1 */
    int in_plan;  /* rows, scale and d_cu point into the pass's drop-path plan */
    const int *d_cu; /* device copy of cu */
    int *d_cu_own;   /* the branch's own device cu (eval passes with drop path) */
} branch;

struct dv2_vit_pass {
    dv2_vit *m;
    const dv2_backend *be;
    int flags, ng, T, nimg;
    dv2_vit_group g[MAXG];
    int gh[MAXG], gw[MAXG], npatch[MAXG], seqlen[MAXG], off[MAXG];
    float *col[MAXG], *patch[MAXG], *pos[MAXG]; /* pos NULL: the stored table is used */
    dv2_posembed_plan plan[MAXG];       /* host weights, built once per grid */
    float *d_wy[MAXG], *d_wx[MAXG];     /* their device copies */
    float *pos_scratch;                 /* device, for the resampling */
    size_t nscratch;
    const uint8_t *mask[MAXG];
    branch full;        /* all tokens, one sequence per image */
    branch *br;         /* 2·depth (train), else 2 */
    float *x;           /* residual stream (T, D), = x_prenorm after forward */
    blockbuf *bb;       /* depth (train) or 1 */
    int nbb;
    stash16 *st;        /* depth, or NULL: every block keeps f32 buffers of its own */
    size_t bytes;       /* device bytes of the pass's buffers */
    float **blk_out;    /* depth (KEEP_BLOCKS) */
    float *out, *fmean, *frstd;
    float *lmean, *lrstd;   /* statistics scratch of dv2_vit_pass_layer */
    /* backward scratch */
    float *dx, *dbr, *dy, *dln, *dh, *da, *dqkv, *datt, *dpatch, *dpos;
    int *rows_h;        /* host scratch (T) */
    float *scale_h;     /* host scratch (T) */
    int *h_full_cu;
    int *d_full_cu;     /* device copy of full.cu, uploaded at creation */
    dv2_vit_block_done_fn on_block_done;
    void *on_block_done_ctx;
    /* The drop-path plan of a training pass: the token rows and scales of
     * every (block, branch), built on the host and uploaded in one transfer
     * per step (not one per block and branch). */
    int *plan_rows_h, *d_plan_rows;
    float *plan_scale_h, *d_plan_scale;
};

#define ALLOC(ptr, count) do { (ptr) = be->alloc(be, sizeof(*(ptr)) * (size_t)(count) + 64); \
    ps->bytes += sizeof(*(ptr)) * (size_t)(count) + 64; \
    if (!(ptr)) { dv2_vit_pass_free(ps); return dv2_error_set(err, DV2_ENOMEM, "vit: cannot allocate pass buffers"); } } while (0)

static void free_branch(const dv2_backend *be, branch *b) {
    free(b->cu);
    be->free(be, b->d_cu_own);
    if (!b->in_plan) {
        be->free(be, b->rows);
        be->free(be, b->scale);
    }
    memset(b, 0, sizeof *b);
}

void dv2_vit_pass_free(dv2_vit_pass *ps) {
    if (!ps) return;
    const dv2_backend *be = ps->be;
    for (int g = 0; g < MAXG; g++) {
        be->free(be, ps->col[g]);
        be->free(be, ps->patch[g]);
        be->free(be, ps->pos[g]);
        be->free(be, ps->d_wy[g]);
        be->free(be, ps->d_wx[g]);
        if (ps->pos[g]) dv2_posembed_plan_free(&ps->plan[g]);
    }
    be->free(be, ps->pos_scratch);
    free(ps->full.cu);
    be->free(be, ps->d_full_cu);
    if (ps->br)
        for (int i = 0; i < 2 * (ps->flags & DV2_VIT_TRAIN ? ps->m->arch.depth : 1); i++)
            free_branch(be, &ps->br[i]);
    free(ps->br);
    free(ps->plan_rows_h);
    free(ps->plan_scale_h);
    be->free(be, ps->d_plan_rows);
    be->free(be, ps->d_plan_scale);
    if (ps->st) {
        for (int i = 0; i < ps->nbb; i++) {
            stash16 *s = &ps->st[i];
            be->free(be, s->qkv), be->free(be, s->att), be->free(be, s->y1), be->free(be, s->h), be->free(be, s->y2);
            if (i > 0 && ps->bb) { /* bb[0]'s working buffers */
                blockbuf *b = &ps->bb[i];
                b->qkv = b->att = b->y1 = b->h = b->y2 = NULL;
            }
        }
        free(ps->st);
    }
    if (ps->bb)
        for (int i = 0; i < ps->nbb; i++) {
            float **f = (float **)&ps->bb[i];
            for (size_t k = 0; k < sizeof(blockbuf) / sizeof(float *); k++) be->free(be, f[k]);
        }
    free(ps->bb);
    if (ps->blk_out)
        for (int l = 0; l < ps->m->arch.depth; l++) be->free(be, ps->blk_out[l]);
    free(ps->blk_out);
    float *bufs[] = {ps->x, ps->out, ps->fmean, ps->frstd, ps->lmean, ps->lrstd, ps->dx, ps->dbr, ps->dy, ps->dln,
                     ps->dh, ps->da, ps->dqkv, ps->datt, ps->dpatch, ps->dpos};
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++) be->free(be, bufs[k]);
    free(ps->rows_h);
    free(ps->scale_h);
    free(ps);
}

static int ffn_in_width(const dv2_arch *a) {
    return a->ffn_kind == DV2_FFN_SWIGLU ? 2 * a->ffn_hidden : a->ffn_hidden;
}

int dv2_vit_pass_create(dv2_vit_pass **out, dv2_vit *m, const dv2_vit_group *g, int n_groups,
                        int flags, dv2_error *err) {
    *out = NULL;
    const dv2_arch *a = &m->arch;
    const dv2_backend *be = m->be;
    if (n_groups < 1 || n_groups > MAXG)
        return dv2_error_set(err, DV2_EINVAL, "vit: %d image groups (1..%d)", n_groups, MAXG);
    if ((flags & DV2_VIT_TRAIN) && !m->params.grad)
        return dv2_error_set(err, DV2_EINVAL, "vit: training pass on a model without gradients");
    dv2_vit_pass *ps = calloc(1, sizeof *ps);
    if (!ps) return dv2_error_set(err, DV2_ENOMEM, "vit: out of memory");
    ps->m = m;
    ps->be = be;
    ps->flags = flags;
    ps->ng = n_groups;
    int P = a->patch_size, D = a->embed_dim, R = a->num_register_tokens, M = dv2_arch_grid(a);
    long T = 0, nimg = 0;
    for (int i = 0; i < n_groups; i++) {
        const dv2_vit_group *gi = &g[i];
        if (gi->n_img < 1 || gi->height < P || gi->width < P || gi->height % P || gi->width % P ||
            gi->height > 65536 || gi->width > 65536) {
            dv2_vit_pass_free(ps);
            return dv2_error_set(err, DV2_EINVAL,
                                 "vit: group %d: %d images of %dx%d (sides must be positive multiples of the patch size %d)",
                                 i, gi->n_img, gi->height, gi->width, P);
        }
        ps->g[i] = *gi;
        ps->gh[i] = gi->height / P;
        ps->gw[i] = gi->width / P;
        ps->npatch[i] = ps->gh[i] * ps->gw[i];
        ps->seqlen[i] = 1 + R + ps->npatch[i];
        ps->off[i] = (int)T;
        T += (long)gi->n_img * ps->seqlen[i];
        nimg += gi->n_img;
        if (T > (1L << 30)) {
            dv2_vit_pass_free(ps);
            return dv2_error_set(err, DV2_EINVAL, "vit: too many tokens in one pass");
        }
    }
    ps->T = (int)T;
    ps->nimg = (int)nimg;
    for (int i = 0; i < n_groups; i++) {
        size_t np = (size_t)g[i].n_img * ps->npatch[i];
        ALLOC(ps->col[i], np * 3 * P * P);
        ALLOC(ps->patch[i], np * D);
        if (ps->gh[i] != M || ps->gw[i] != M) {
            /* rows = the grid of tensor dim 2 (height), as the reference resamples (§2.4) */
            int rc = dv2_posembed_plan_init(&ps->plan[i], M, ps->gh[i], ps->gw[i],
                                            a->interpolate_offset, a->interpolate_antialias, err);
            if (rc < 0) {
                dv2_vit_pass_free(ps);
                return rc;
            }
            ALLOC(ps->pos[i], (size_t)(1 + ps->npatch[i]) * D);
            size_t ns = dv2_posembed_scratch_floats(&ps->plan[i], D);
            if (ns > ps->nscratch) ps->nscratch = ns;
            /* the weights go to the device once; every forward resamples there */
            ALLOC(ps->d_wy[i], (size_t)ps->gh[i] * M);
            ALLOC(ps->d_wx[i], (size_t)ps->gw[i] * M);
            if (be->to_device(be, ps->d_wy[i], ps->plan[i].wy, sizeof(float) * (size_t)ps->gh[i] * M) ||
                be->to_device(be, ps->d_wx[i], ps->plan[i].wx, sizeof(float) * (size_t)ps->gw[i] * M)) {
                dv2_vit_pass_free(ps);
                return dv2_error_set(err, DV2_EIO, "vit: cannot copy the position weights to the device");
            }
        }
    }
    ALLOC(ps->pos_scratch, ps->nscratch ? ps->nscratch : 1);
    /* the full branch: every image is one sequence */
    ps->full.n = ps->T;
    ps->full.nseq = ps->nimg;
    ps->full.cu = malloc(sizeof(int) * (size_t)(nimg + 1));
    ps->rows_h = malloc(sizeof(int) * (size_t)T);
    ps->scale_h = malloc(sizeof(float) * (size_t)T);
    if (!ps->full.cu || !ps->rows_h || !ps->scale_h) {
        dv2_vit_pass_free(ps);
        return dv2_error_set(err, DV2_ENOMEM, "vit: out of memory");
    }
    {
        int s = 0, t = 0;
        ps->full.cu[0] = 0;
        for (int i = 0; i < n_groups; i++)
            for (int k = 0; k < g[i].n_img; k++) { t += ps->seqlen[i]; ps->full.cu[++s] = t; }
    }
    ALLOC(ps->d_full_cu, nimg + 1);
    if (be->to_device(be, ps->d_full_cu, ps->full.cu, sizeof(int) * (size_t)(nimg + 1))) {
        dv2_vit_pass_free(ps);
        return dv2_error_set(err, DV2_EIO, "vit: cannot copy the sequence offsets to the device");
    }
    int train = flags & DV2_VIT_TRAIN, L = a->depth;
    int nbr = train ? 2 * L : 2;
    ps->br = calloc((size_t)nbr, sizeof *ps->br);
    ps->nbb = train ? L : 1;
    ps->bb = calloc((size_t)ps->nbb, sizeof *ps->bb);
    if (!ps->br || !ps->bb) {
        dv2_vit_pass_free(ps);
        return dv2_error_set(err, DV2_ENOMEM, "vit: out of memory");
    }
    for (int i = 0; i < nbr; i++) {
        ps->br[i].cu = malloc(sizeof(int) * (size_t)(nimg + 1));
        if (!ps->br[i].cu) {
            dv2_vit_pass_free(ps);
            return dv2_error_set(err, DV2_ENOMEM, "vit: out of memory");
        }
    }
    int H = a->num_heads, hin = ffn_in_width(a), hid = a->ffn_hidden;
    const char *st_env = getenv("DV2_VIT_BF16_STASH"); /* 0: f32 buffers per block (tests) */
    if (train && be->weights_bf16 && L > 1 && !(st_env && !strcmp(st_env, "0"))) {
        if (!(ps->st = calloc((size_t)L, sizeof *ps->st))) {
            dv2_vit_pass_free(ps);
            return dv2_error_set(err, DV2_ENOMEM, "vit: out of memory");
        }
        for (int i = 0; i + 1 < L; i++) {
            stash16 *s = &ps->st[i];
            ALLOC(s->qkv, T * 3 * D); ALLOC(s->att, T * D); ALLOC(s->y1, T * D);
            ALLOC(s->h, T * hin); ALLOC(s->y2, T * D);
        }
    }
    for (int i = 0; i < ps->nbb; i++) {
        blockbuf *b = &ps->bb[i];
        if (train) { ALLOC(b->xin_a, T * D); ALLOC(b->xin_f, T * D); }
        ALLOC(b->mean1, T); ALLOC(b->rstd1, T); ALLOC(b->lse, T * H);
        ALLOC(b->mean2, T); ALLOC(b->rstd2, T);
        if (ps->st && i > 0) { /* kept in 16 bits; bb[0]'s buffers do the work */
            blockbuf *b0 = &ps->bb[0];
            b->qkv = b0->qkv, b->att = b0->att, b->y1 = b0->y1, b->h = b0->h, b->y2 = b0->y2;
        } else {
            ALLOC(b->qkv, T * 3 * D); ALLOC(b->att, T * D); ALLOC(b->y1, T * D);
            ALLOC(b->h, T * hin); ALLOC(b->y2, T * D);
        }
        /* LayerNorm outputs and the FFN activation are not kept per block
         * (6 of 17 D-wide floats per token): one shared buffer each, and
         * backward recomputes them from the saved inputs and statistics */
        if (i == 0) { ALLOC(b->ln1, T * D); ALLOC(b->a, T * hid); }
    }
    if (flags & DV2_VIT_KEEP_BLOCKS) {
        ps->blk_out = calloc((size_t)L, sizeof *ps->blk_out);
        if (!ps->blk_out) {
            dv2_vit_pass_free(ps);
            return dv2_error_set(err, DV2_ENOMEM, "vit: out of memory");
        }
        for (int l = 0; l < L; l++) ALLOC(ps->blk_out[l], T * D);
        ALLOC(ps->lmean, T);
        ALLOC(ps->lrstd, T);
    }
    ALLOC(ps->x, T * D);
    ALLOC(ps->out, T * D);
    ALLOC(ps->fmean, T);
    ALLOC(ps->frstd, T);
    if (train) {
        int maxnp = 0;
        for (int i = 0; i < n_groups; i++) {
            int np = g[i].n_img * ps->npatch[i];
            maxnp = np > maxnp ? np : maxnp;
        }
        ALLOC(ps->dx, T * D); ALLOC(ps->dbr, T * D); ALLOC(ps->dy, T * D); ALLOC(ps->dln, T * D);
        ALLOC(ps->dh, T * hin); ALLOC(ps->da, T * hid); ALLOC(ps->dqkv, T * 3 * D);
        ALLOC(ps->datt, T * D); ALLOC(ps->dpatch, (size_t)maxnp * D);
        ALLOC(ps->dpos, (size_t)(1 + maxnp) * D); /* ≥ (1+N_g)·D for every group */
    }
    *out = ps;
    return DV2_OK;
}

/* Resamples pos_embed to group g's grid, on the device. */
static void pos_forward(dv2_vit_pass *ps, int g) {
    dv2_vit *m = ps->m;
    int M = dv2_arch_grid(&m->arch);
    ps->be->posembed_forward(ps->be, ps->pos[g], ps->pos_scratch, dv2_params_data(&m->params, m->i_pos),
                             ps->d_wy[g], ps->d_wx[g], M, ps->gh[g], ps->gw[g], m->arch.embed_dim);
}

/* dpos_embed += the adjoint of the resampling applied to d (1+N, D). */
static void pos_backward(dv2_vit_pass *ps, int g, const float *d) {
    dv2_vit *m = ps->m;
    int M = dv2_arch_grid(&m->arch);
    ps->be->posembed_backward(ps->be, dv2_params_grad(&m->params, m->i_pos), ps->pos_scratch, d, ps->d_wy[g],
                              ps->d_wx[g], M, ps->gh[g], ps->gw[g], m->arch.embed_dim);
}

/* Fills b's sequences from the subsets of one (block, branch) for every
 * group: b->cu, b->n, b->nseq, and the token rows and scales into rows_h and
 * scale_h (host, at least T each). */
static int fill_branch(dv2_vit_pass *ps, branch *b, const int *subset, double rate, int *rows_h,
                       float *scale_h, dv2_error *err) {
    int n = 0, s = 0;
    b->cu[0] = 0;
    for (int g = 0; g < ps->ng; g++) {
        int bimg = ps->g[g].n_img, k = dv2_vit_droppath_k(bimg, rate), S = ps->seqlen[g];
        float sc = (float)((double)bimg / (double)k);
        for (int j = 0; j < k; j++) {
            int idx = subset[j];
            if (idx < 0 || idx >= bimg)
                return dv2_error_set(err, DV2_EINVAL, "vit: drop-path subset index %d outside [0,%d)", idx, bimg);
            for (int t = 0; t < S; t++) {
                rows_h[n] = ps->off[g] + idx * S + t;
                scale_h[n] = sc;
                n++;
            }
            b->cu[++s] = n;
        }
        subset += k;
    }
    b->n = n;
    b->nseq = s;
    return DV2_OK;
}

/* A branch of its own (eval passes): filled and uploaded on its own. */
static int set_branch(dv2_vit_pass *ps, branch *b, const int *subset, double rate,
                      dv2_error *err) {
    const dv2_backend *be = ps->be;
    int rc = fill_branch(ps, b, subset, rate, ps->rows_h, ps->scale_h, err);
    if (rc < 0) return rc;
    if (!b->rows) {
        b->rows = be->alloc(be, sizeof(int) * (size_t)ps->T);
        b->scale = be->alloc(be, sizeof(float) * (size_t)ps->T);
        if (!b->rows || !b->scale) return dv2_error_set(err, DV2_ENOMEM, "vit: out of memory");
    }
    if (!b->d_cu_own && !(b->d_cu_own = be->alloc(be, sizeof(int) * (size_t)(ps->nimg + 1))))
        return dv2_error_set(err, DV2_ENOMEM, "vit: out of memory");
    rc = be->to_device(be, b->rows, ps->rows_h, sizeof(int) * (size_t)b->n);
    if (rc == 0) rc = be->to_device(be, b->scale, ps->scale_h, sizeof(float) * (size_t)b->n);
    if (rc == 0) rc = be->to_device(be, b->d_cu_own, b->cu, sizeof(int) * (size_t)(b->nseq + 1));
    b->d_cu = b->d_cu_own;
    return rc;
}

/* Every (block, branch) of a training pass from dp's subsets, packed one
 * after another (each branch's rows, then its cu) and uploaded in one
 * transfer of ints and one of scales. */
static int set_plan(dv2_vit_pass *ps, const dv2_vit_droppath *dp, size_t per_branch,
                    dv2_error *err) {
    const dv2_backend *be = ps->be;
    int nbr = 2 * ps->m->arch.depth;
    size_t cap = (size_t)nbr * (size_t)ps->T, icap = cap + (size_t)nbr * (size_t)(ps->nimg + 1);
    if (!ps->plan_rows_h) {
        ps->plan_rows_h = malloc(sizeof(int) * icap);
        ps->plan_scale_h = malloc(sizeof(float) * cap);
        ps->d_plan_rows = be->alloc(be, sizeof(int) * icap);
        ps->d_plan_scale = be->alloc(be, sizeof(float) * cap);
        if (!ps->plan_rows_h || !ps->plan_scale_h || !ps->d_plan_rows || !ps->d_plan_scale)
            return dv2_error_set(err, DV2_ENOMEM, "vit: out of memory");
    }
    size_t off = 0, ioff = 0;
    for (int i = 0; i < nbr; i++) {
        branch *b = &ps->br[i];
        if (!b->in_plan) {
            be->free(be, b->rows);
            be->free(be, b->scale);
        }
        int rc = fill_branch(ps, b, dp->subset + (size_t)i * per_branch, dp->rate, ps->plan_rows_h + ioff,
                             ps->plan_scale_h + off, err);
        if (rc < 0) return rc;
        b->rows = ps->d_plan_rows + ioff;
        b->scale = ps->d_plan_scale + off;
        memcpy(ps->plan_rows_h + ioff + b->n, b->cu, sizeof(int) * (size_t)(b->nseq + 1));
        b->d_cu = ps->d_plan_rows + ioff + b->n;
        b->in_plan = 1;
        off += (size_t)b->n;
        ioff += (size_t)b->n + (size_t)b->nseq + 1;
    }
    int rc = be->to_device(be, ps->d_plan_rows, ps->plan_rows_h, sizeof(int) * ioff);
    if (rc == 0) rc = be->to_device(be, ps->d_plan_scale, ps->plan_scale_h, sizeof(float) * off);
    return rc;
}

/* The attention view of branch b. */
static dv2_seqpack branch_pack(const branch *b) {
    int mx = 0;
    for (int s = 0; s < b->nseq; s++)
        if (b->cu[s + 1] - b->cu[s] > mx) mx = b->cu[s + 1] - b->cu[s];
    return (dv2_seqpack){b->nseq, b->n, mx, b->cu, b->d_cu};
}

static void set_full(dv2_vit_pass *ps, branch *b) {
    b->n = ps->T;
    b->nseq = ps->nimg;
    memcpy(b->cu, ps->full.cu, sizeof(int) * (size_t)(ps->nimg + 1));
    if (!b->in_plan) {
        ps->be->free(ps->be, b->rows);
        ps->be->free(ps->be, b->scale);
    }
    b->in_plan = 0;
    b->d_cu = ps->d_full_cu;
    b->rows = NULL;
    b->scale = NULL;
}

#define PD(i) dv2_params_data(&m->params, (i))
#define PG(i) dv2_params_grad(&m->params, (i))
#define P16(i) dv2_params_data16(&m->params, (i)) /* the bf16 compute copy, or NULL */

/* Branch k (0: attention, 1: FFN, n tokens) of block l between the shared
 * f32 working buffers and the block's 16-bit copy (stash16): into the copy
 * after the forward (back = 0), back before the backward (back = 1).
 * Nothing for a block without a copy (an f32 pass, the last block). */
static void keep16(const dv2_vit_pass *ps, int l, int k, int n, int back) {
    if (!ps->st || !ps->st[l].qkv) return;
    const dv2_backend *be = ps->be;
    const stash16 *s = &ps->st[l];
    const blockbuf *b = &ps->bb[0];
    size_t D = (size_t)ps->m->arch.embed_dim, hin = (size_t)ffn_in_width(&ps->m->arch);
    dv2_bf16 *h16[3] = {s->qkv, s->att, s->y1};
    float *f[3] = {b->qkv, b->att, b->y1};
    size_t w[3] = {3 * D, D, D};
    if (k == 1) h16[0] = s->h, h16[1] = s->y2, f[0] = b->h, f[1] = b->y2, w[0] = hin, w[1] = D, w[2] = 0;
    for (int i = 0; i < 3 && w[i]; i++) {
        if (back) be->from_bf16(be, f[i], h16[i], (size_t)n * w[i]);
        else be->to_bf16(be, h16[i], f[i], (size_t)n * w[i]);
    }
}

int dv2_vit_pass_forward(dv2_vit_pass *ps, const float *const *img, const uint8_t *const *mask,
                         const dv2_vit_droppath *dp, dv2_error *err) {
    dv2_vit *m = ps->m;
    const dv2_arch *a = &m->arch;
    const dv2_backend *be = ps->be;
    int D = a->embed_dim, P = a->patch_size, R = a->num_register_tokens, H = a->num_heads;
    int dh = D / H, hid = a->ffn_hidden, hin = ffn_in_width(a), train = ps->flags & DV2_VIT_TRAIN;
    int rc;
    for (int g = 0; g < ps->ng; g++) {
        ps->mask[g] = mask ? mask[g] : NULL;
        be->patch_embed_forward(be, ps->patch[g], ps->col[g], img[g], PD(m->i_pe_w), P16(m->i_pe_w), PD(m->i_pe_b),
                                ps->g[g].n_img, ps->g[g].height, ps->g[g].width, P, D);
        const float *pos = PD(m->i_pos);
        if (ps->pos[g]) {
            pos_forward(ps, g);
            pos = ps->pos[g];
        }
        be->embed_tokens_forward(be, ps->x + (size_t)ps->off[g] * D, ps->patch[g], PD(m->i_cls),
                                 R ? PD(m->i_reg) : NULL, pos, ps->mask[g], PD(m->i_mask),
                                 ps->g[g].n_img, ps->npatch[g], R, D);
    }
    int use_dp = dp && dp->rate > 0;
    if (use_dp && !dp->subset) return dv2_error_set(err, DV2_EINVAL, "vit: drop path without subsets");
    size_t per_branch = 0;
    if (use_dp)
        for (int g = 0; g < ps->ng; g++) per_branch += (size_t)dv2_vit_droppath_k(ps->g[g].n_img, dp->rate);
    if (use_dp && train && (rc = set_plan(ps, dp, per_branch, err)) < 0) return rc;
    for (int l = 0; l < a->depth; l++) {
        const dv2_vit_block_idx *bi = &m->blk[l];
        blockbuf *b = &ps->bb[train ? l : 0];
        for (int k = 0; k < 2; k++) {
            branch *br = &ps->br[train ? 2 * l + k : k];
            if (!(use_dp && train)) { /* a training pass's branches come from set_plan */
                if (!use_dp) {
                    set_full(ps, br);
                } else if ((rc = set_branch(ps, br, dp->subset + (size_t)(2 * l + k) * per_branch, dp->rate,
                                            err)) < 0) {
                    return rc;
                }
            }
            int n = br->n;
            float *xin = k == 0 ? b->xin_a : b->xin_f;
            const float *in = ps->x;
            if (br->rows) {
                float *dst = xin ? xin : b->y1; /* eval: y1 is free until the branch output */
                be->gather_rows(be, dst, ps->x, br->rows, n, D);
                in = dst;
            } else if (xin) {
                be->copy(be, xin, ps->x, sizeof(float) * (size_t)n * D);
                in = xin;
            }
            if (k == 0) {
                float *ln = ps->bb[0].ln1;
                be->layernorm_forward(be, ln, b->mean1, b->rstd1, in, PD(bi->norm1_w),
                                      PD(bi->norm1_b), n, D, DV2_VIT_LN_EPS);
                be->linear_forward(be, b->qkv, NULL, ln, PD(bi->qkv_w), P16(bi->qkv_w), PD(bi->qkv_b), n, D,
                                   3 * D, 0);
                dv2_seqpack sp = branch_pack(br);
                be->attention_forward(be, b->att, b->lse, b->qkv, &sp, H, dh);
                be->linear_forward(be, b->y1, NULL, b->att, PD(bi->proj_w), P16(bi->proj_w), PD(bi->proj_b), n,
                                   D, D, 0);
                be->residual_forward(be, ps->x, b->y1, PD(bi->ls1), br->rows, br->scale, n, D);
                keep16(ps, l, 0, n, 0);
            } else {
                float *ln = ps->bb[0].ln1;
                be->layernorm_forward(be, ln, b->mean2, b->rstd2, in, PD(bi->norm2_w),
                                      PD(bi->norm2_b), n, D, DV2_VIT_LN_EPS);
                float *act = ps->bb[0].a;
                if (a->ffn_kind == DV2_FFN_SWIGLU) {
                    be->linear_forward(be, b->h, NULL, ln, PD(bi->fc1_w), P16(bi->fc1_w), PD(bi->fc1_b), n, D,
                                       hin, 0);
                    be->swiglu_forward(be, act, b->h, n, hid);
                } else { /* bias+GELU epilogue: b->h keeps the pre-activation for backward */
                    be->linear_forward(be, act, b->h, ln, PD(bi->fc1_w), P16(bi->fc1_w), PD(bi->fc1_b), n, D, hin,
                                       DV2_LINEAR_GELU);
                }
                be->linear_forward(be, b->y2, NULL, act, PD(bi->fc2_w), P16(bi->fc2_w), PD(bi->fc2_b), n, hid, D, 0);
                be->residual_forward(be, ps->x, b->y2, PD(bi->ls2), br->rows, br->scale, n, D);
                keep16(ps, l, 1, n, 0);
            }
        }
        if (ps->blk_out && ps->blk_out[l]) be->copy(be, ps->blk_out[l], ps->x, sizeof(float) * (size_t)ps->T * D);
    }
    be->layernorm_forward(be, ps->out, ps->fmean, ps->frstd, ps->x, PD(m->i_norm_w), PD(m->i_norm_b),
                          ps->T, D, DV2_VIT_LN_EPS);
    return dv2_backend_check(be, "ViT forward", err);
}

const float *dv2_vit_pass_output(const dv2_vit_pass *ps) { return ps->out; }
const float *dv2_vit_pass_prenorm(const dv2_vit_pass *ps) { return ps->x; }
int dv2_vit_pass_tokens(const dv2_vit_pass *ps) { return ps->T; }
size_t dv2_vit_pass_bytes(const dv2_vit_pass *ps, int *bf16_kept) {
    if (bf16_kept) *bf16_kept = ps->st != NULL;
    return ps->bytes;
}
int dv2_vit_pass_seqlen(const dv2_vit_pass *ps, int g) { return g >= 0 && g < ps->ng ? ps->seqlen[g] : 0; }
int dv2_vit_pass_npatch(const dv2_vit_pass *ps, int g) { return g >= 0 && g < ps->ng ? ps->npatch[g] : 0; }
int dv2_vit_pass_row(const dv2_vit_pass *ps, int g, int i, int j) {
    return ps->off[g] + i * ps->seqlen[g] + j;
}

int dv2_vit_pass_layer(dv2_vit_pass *ps, int block, float *out, dv2_error *err) {
    dv2_vit *m = ps->m;
    if (!ps->blk_out || block < 0 || block >= m->arch.depth || !ps->blk_out[block])
        return dv2_error_set(err, DV2_EINVAL, "vit: block %d output not kept", block);
    /* own statistics buffers: the saved activations stay valid for backward */
    ps->be->layernorm_forward(ps->be, out, ps->lmean, ps->lrstd, ps->blk_out[block], PD(m->i_norm_w),
                              PD(m->i_norm_b), ps->T, m->arch.embed_dim, DV2_VIT_LN_EPS);
    return DV2_OK;
}

int dv2_vit_pass_keep_blocks(dv2_vit_pass *ps, const int *blocks, int n, dv2_error *err) {
    const dv2_backend *be = ps->be;
    int L = ps->m->arch.depth, D = ps->m->arch.embed_dim;
    for (int i = 0; i < n; i++)
        if (blocks[i] < 0 || blocks[i] >= L)
            return dv2_error_set(err, DV2_EINVAL, "vit: block %d outside [0,%d)", blocks[i], L);
    if (!ps->blk_out) {
        ps->blk_out = calloc((size_t)L, sizeof *ps->blk_out);
        ps->lmean = be->alloc(be, sizeof(float) * (size_t)ps->T + 64);
        ps->lrstd = be->alloc(be, sizeof(float) * (size_t)ps->T + 64);
        if (!ps->blk_out || !ps->lmean || !ps->lrstd)
            return dv2_error_set(err, DV2_ENOMEM, "vit: out of memory");
    }
    for (int l = 0; l < L; l++) {
        int want = 0;
        for (int i = 0; i < n; i++) want |= blocks[i] == l;
        if (!want) {
            be->free(be, ps->blk_out[l]);
            ps->blk_out[l] = NULL;
        } else if (!ps->blk_out[l]) {
            ps->blk_out[l] = be->alloc(be, sizeof(float) * (size_t)ps->T * D + 64);
            if (!ps->blk_out[l]) return dv2_error_set(err, DV2_ENOMEM, "vit: cannot keep block %d", l);
        }
    }
    return DV2_OK;
}

/* Backward of one branch's LayerNorm input into dx (scatter when subset). */
static void ln_back_into(dv2_vit_pass *ps, const branch *br, const float *dln, const float *xin,
                         const float *w, const float *mean, const float *rstd, float *dw, float *db) {
    const dv2_backend *be = ps->be;
    int D = ps->m->arch.embed_dim, n = br->n;
    if (br->rows) {
        be->zero(be, ps->dbr, sizeof(float) * (size_t)n * D);
        be->layernorm_backward(be, ps->dbr, dw, db, dln, xin, w, mean, rstd, n, D);
        be->scatter_add_rows(be, ps->dx, ps->dbr, br->rows, n, D);
    } else {
        be->layernorm_backward(be, ps->dx, dw, db, dln, xin, w, mean, rstd, n, D);
    }
}

int dv2_vit_pass_backward(dv2_vit_pass *ps, const float *dout, dv2_error *err) {
    dv2_vit *m = ps->m;
    const dv2_arch *a = &m->arch;
    const dv2_backend *be = ps->be;
    if (!(ps->flags & DV2_VIT_TRAIN))
        return dv2_error_set(err, DV2_EINVAL, "vit: backward of a pass created without DV2_VIT_TRAIN");
    int D = a->embed_dim, P = a->patch_size, R = a->num_register_tokens, H = a->num_heads;
    int dh = D / H, hid = a->ffn_hidden, hin = ffn_in_width(a), T = ps->T;
    be->zero(be, ps->dx, sizeof(float) * (size_t)T * D);
    be->layernorm_backward(be, ps->dx, PG(m->i_norm_w), PG(m->i_norm_b), dout, ps->x,
                           PD(m->i_norm_w), ps->fmean, ps->frstd, T, D);
    for (int l = a->depth - 1; l >= 0; l--) {
        const dv2_vit_block_idx *bi = &m->blk[l];
        blockbuf *b = &ps->bb[l];
        /* FFN branch */
        const branch *br = &ps->br[2 * l + 1];
        int n = br->n;
        keep16(ps, l, 1, n, 1);
        be->zero(be, ps->dy, sizeof(float) * (size_t)n * D);
        be->residual_backward(be, ps->dy, PG(bi->ls2), ps->dx, b->y2, PD(bi->ls2), br->rows, br->scale, n, D);
        /* recompute the FFN activation (not kept per block: 4D floats per token) */
        float *act = ps->bb[0].a;
        if (a->ffn_kind == DV2_FFN_SWIGLU) be->swiglu_forward(be, act, b->h, n, hid);
        else be->gelu_forward(be, act, b->h, (size_t)n * hid);
        be->linear_backward(be, ps->da, PG(bi->fc2_w), PG(bi->fc2_b), NULL, ps->dy, NULL, act, PD(bi->fc2_w),
                            P16(bi->fc2_w), n, hid, D, 0);
        float *ln = ps->bb[0].ln1; /* recomputed LayerNorm output (same statistics) */
        be->layernorm_forward(be, ln, b->mean2, b->rstd2, b->xin_f, PD(bi->norm2_w), PD(bi->norm2_b),
                              n, D, DV2_VIT_LN_EPS);
        if (a->ffn_kind == DV2_FFN_SWIGLU) {
            be->zero(be, ps->dh, sizeof(float) * (size_t)n * hin);
            be->swiglu_backward(be, ps->dh, ps->da, b->h, n, hid);
            be->linear_backward(be, ps->dln, PG(bi->fc1_w), PG(bi->fc1_b), NULL, ps->dh, NULL, ln,
                                PD(bi->fc1_w), P16(bi->fc1_w), n, D, hin, 0);
        } else { /* dGELU fused into fc1's backward; ps->dh is its workspace */
            be->linear_backward(be, ps->dln, PG(bi->fc1_w), PG(bi->fc1_b), ps->dh, ps->da, b->h, ln,
                                PD(bi->fc1_w), P16(bi->fc1_w), n, D, hin, DV2_LINEAR_GELU);
        }
        ln_back_into(ps, br, ps->dln, b->xin_f, PD(bi->norm2_w), b->mean2, b->rstd2,
                     PG(bi->norm2_w), PG(bi->norm2_b));
        /* attention branch */
        br = &ps->br[2 * l];
        n = br->n;
        keep16(ps, l, 0, n, 1);
        be->zero(be, ps->dy, sizeof(float) * (size_t)n * D);
        be->residual_backward(be, ps->dy, PG(bi->ls1), ps->dx, b->y1, PD(bi->ls1), br->rows, br->scale, n, D);
        be->linear_backward(be, ps->datt, PG(bi->proj_w), PG(bi->proj_b), NULL, ps->dy, NULL, b->att,
                            PD(bi->proj_w), P16(bi->proj_w), n, D, D, 0);
        be->zero(be, ps->dqkv, sizeof(float) * (size_t)n * 3 * D);
        dv2_seqpack sp = branch_pack(br);
        be->attention_backward(be, ps->dqkv, ps->datt, b->qkv, b->att, b->lse, &sp, H, dh);
        be->layernorm_forward(be, ln, b->mean1, b->rstd1, b->xin_a, PD(bi->norm1_w), PD(bi->norm1_b),
                              n, D, DV2_VIT_LN_EPS);
        be->linear_backward(be, ps->dln, PG(bi->qkv_w), PG(bi->qkv_b), NULL, ps->dqkv, NULL, ln,
                            PD(bi->qkv_w), P16(bi->qkv_w), n, D, 3 * D, 0);
        ln_back_into(ps, br, ps->dln, b->xin_a, PD(bi->norm1_w), b->mean1, b->rstd1,
                     PG(bi->norm1_w), PG(bi->norm1_b));
        if (ps->on_block_done) {
            size_t off, cnt;
            int rc = dv2_vit_block_grad_range(m, l, &off, &cnt, err);
            if (rc == 0) rc = ps->on_block_done(ps->on_block_done_ctx, l, m->params.grad + off, cnt, err);
            if (rc) return rc;
        }
    }
    for (int g = 0; g < ps->ng; g++) {
        int bimg = ps->g[g].n_img, N = ps->npatch[g];
        be->zero(be, ps->dpatch, sizeof(float) * (size_t)bimg * N * D);
        float *dpos = PG(m->i_pos);
        if (ps->pos[g]) {
            dpos = ps->dpos;
            be->zero(be, dpos, sizeof(float) * (size_t)(1 + N) * D);
        }
        be->embed_tokens_backward(be, ps->dpatch, PG(m->i_cls), R ? PG(m->i_reg) : NULL, dpos,
                                  PG(m->i_mask), ps->dx + (size_t)ps->off[g] * D, ps->mask[g],
                                  bimg, N, R, D);
        if (ps->pos[g]) pos_backward(ps, g, dpos);
        be->patch_embed_backward(be, PG(m->i_pe_w), PG(m->i_pe_b), ps->dpatch, ps->col[g], bimg,
                                 ps->g[g].height, ps->g[g].width, P, D);
    }
    return dv2_backend_check(be, "ViT backward", err);
}

void dv2_vit_pass_on_block_done(dv2_vit_pass *ps, dv2_vit_block_done_fn fn, void *ctx) {
    ps->on_block_done = fn;
    ps->on_block_done_ctx = ctx;
}

int dv2_vit_block_grad_range(const dv2_vit *m, int l, size_t *offset, size_t *numel, dv2_error *err) {
    if (l < 0 || l >= m->arch.depth) return dv2_error_set(err, DV2_EINVAL, "vit: no block %d", l);
    const dv2_vit_block_idx *bi = &m->blk[l];
    const int idx[] = {bi->norm1_w, bi->norm1_b, bi->qkv_w, bi->qkv_b, bi->proj_w, bi->proj_b, bi->ls1,
                       bi->norm2_w, bi->norm2_b, bi->fc1_w, bi->fc1_b, bi->fc2_w, bi->fc2_b, bi->ls2};
    size_t lo = SIZE_MAX, hi = 0, sum = 0;
    for (size_t k = 0; k < sizeof idx / sizeof idx[0]; k++) {
        if (idx[k] < 0) continue; /* a tensor this architecture does not have */
        const dv2_param_info *t = dv2_params_info(&m->params, idx[k]);
        if (t->offset < lo) lo = t->offset;
        if (t->offset + t->numel > hi) hi = t->offset + t->numel;
        sum += t->numel;
    }
    if (lo == SIZE_MAX || hi - lo != sum)
        return dv2_error_set(err, DV2_EINVAL, "vit: the parameters of block %d are not contiguous", l);
    *offset = lo;
    *numel = sum;
    return DV2_OK;
}
