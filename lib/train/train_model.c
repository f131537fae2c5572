/* train_model.c — student, teacher, optimizer state and their whole-module
 * operations (train_model.h). */
#include "train/train_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/rng.h"
#include "model/weights_load.h"

/* Parameter groups of spec §10.2 for one backbone tensor (canonical name). */
static dv2_train_model_group backbone_group(const char *stored, int depth, double rho, double pe_mult) {
    char name[DV2_PARAM_NAME_MAX];
    dv2_train_model_group g = {1.0f, 1.0f, 0};
    if (dv2_weights_canonical_name(name, sizeof name, stored) < 0) snprintf(name, sizeof name, "%s", stored);
    size_t n = strlen(name);
    if ((n >= 5 && strcmp(name + n - 5, ".bias") == 0) || strstr(name, "norm") || strstr(name, "gamma"))
        g.wd_mult = 0.0f;
    int layer_id = depth + 1;
    if (!strcmp(name, "pos_embed") || !strncmp(name, "patch_embed", 11) || !strcmp(name, "mask_token") ||
        !strcmp(name, "cls_token") || !strcmp(name, "register_tokens"))
        layer_id = 0;
    else if (!strncmp(name, "blocks.", 7))
        layer_id = atoi(name + 7) + 1;
    double mult = pow(rho, depth + 1 - layer_id);
    if (strstr(name, "patch_embed")) mult *= pe_mult;
    g.lr_mult = (float)mult;
    return g;
}

static dv2_train_model_group head_group(const char *name) {
    dv2_train_model_group g = {1.0f, 1.0f, 0};
    size_t n = strlen(name);
    if ((n >= 5 && strcmp(name + n - 5, ".bias") == 0) || strstr(name, "norm") || strstr(name, "gamma"))
        g.wd_mult = 0.0f;
    g.is_last_layer = strstr(name, "last_layer") != NULL;
    return g;
}

/* Student from the config; teacher with the student's shapes (training) or
 * from t (distillation, plus the student's EMA copy). */
static int model_init(dv2_train_model *m, const dv2_config *c, const dv2_train_frozen *t, const dv2_backend *be,
                      dv2_error *err) {
    memset(m, 0, sizeof *m);
    m->be = be;
    int rc = dv2_config_arch(c, &m->arch, err);
    if (rc) return rc;
    m->distill = t != NULL;
    m->t_arch = t ? t->arch : m->arch;
    m->separate_ibot = c->ibot.separate_head;
    m->n_mod = m->separate_ibot ? 3 : 2;
    m->mod_name[0] = "backbone";
    m->mod_name[1] = "dino_head";
    m->mod_name[2] = "ibot_head";
    dv2_head_arch ha = {m->arch.embed_dim, c->dino.head_hidden_dim, c->dino.head_bottleneck_dim,
                        c->dino.head_n_prototypes, c->dino.head_nlayers, 1e-6f};
    dv2_head_arch hi = {m->arch.embed_dim, c->ibot.head_hidden_dim, c->ibot.head_bottleneck_dim,
                        c->ibot.head_n_prototypes, c->ibot.head_nlayers, 1e-6f};
    const dv2_head_arch *tha = t ? &t->dino : &ha, *thi = t ? &t->ibot : &hi;
    if ((rc = dv2_vit_init(&m->s_bb, &m->arch, be, 1, err)) ||
        (rc = dv2_vit_init(&m->t_bb, &m->t_arch, be, 0, err)) ||
        (m->distill && (rc = dv2_vit_init(&m->e_bb, &m->arch, be, 0, err))))
        goto fail;
    if ((rc = dv2_head_init(&m->s_dino, &ha, be, 1, err)) || (rc = dv2_head_init(&m->t_dino, tha, be, 0, err)) ||
        (m->distill && (rc = dv2_head_init(&m->e_dino, &ha, be, 0, err))))
        goto fail;
    m->K = ha.n_prototypes;
    m->K_ibot = m->K;
    if (m->separate_ibot) {
        if ((rc = dv2_head_init(&m->s_ibot, &hi, be, 1, err)) ||
            (rc = dv2_head_init(&m->t_ibot, thi, be, 0, err)) ||
            (m->distill && (rc = dv2_head_init(&m->e_ibot, &hi, be, 0, err))))
            goto fail;
        m->K_ibot = hi.n_prototypes;
    }
    m->s_mod[0] = &m->s_bb.params, m->t_mod[0] = &m->t_bb.params;
    m->s_mod[1] = &m->s_dino.params, m->t_mod[1] = &m->t_dino.params;
    m->s_mod[2] = &m->s_ibot.params, m->t_mod[2] = &m->t_ibot.params;
    for (int k = 0; k < DV2_TM_N; k++) m->ema_mod[k] = m->t_mod[k];
    if (m->distill) m->ema_mod[0] = &m->e_bb.params, m->ema_mod[1] = &m->e_dino.params, m->ema_mod[2] = &m->e_ibot.params;
    /* sharded (train.shard_optimizer): the moments wait for dv2_train_model_shard */
    m->shard_w = 1;
    for (int k = 0; k < m->n_mod; k++) {
        dv2_params *p = m->s_mod[k];
        size_t bytes = sizeof(float) * (p->numel ? p->numel : 1);
        m->chunk[k] = p->numel;
        if (!c->train.shard_optimizer) {
            m->adam_m[k] = be->alloc(be, bytes);
            m->adam_v[k] = be->alloc(be, bytes);
            m->optim_bytes += 2 * sizeof(float) * p->numel;
        }
        m->group[k] = calloc((size_t)p->n, sizeof *m->group[k]);
        if ((!c->train.shard_optimizer && (!m->adam_m[k] || !m->adam_v[k])) || !m->group[k]) {
            rc = dv2_error_set(err, DV2_ENOMEM, "train: out of memory for the optimizer state");
            goto fail;
        }
        for (int i = 0; i < p->n; i++)
            m->group[k][i] = k == 0 ? backbone_group(p->t[i].name, m->arch.depth, c->optim.layerwise_decay,
                                                     c->optim.patch_embed_lr_mult)
                                    : head_group(p->t[i].name);
    }
    m->dino_center = m->be->alloc(m->be, sizeof(float) * (size_t)m->K);
    m->ibot_center = m->be->alloc(m->be, sizeof(float) * (size_t)m->K_ibot);
    if (!m->dino_center || !m->ibot_center) {
        rc = dv2_error_set(err, DV2_ENOMEM, "train: out of memory");
        goto fail;
    }
    return 0;
fail:
    dv2_train_model_free(m);
    return rc;
}

int dv2_train_model_init(dv2_train_model *m, const dv2_config *c, const dv2_backend *be, dv2_error *err) {
    return model_init(m, c, NULL, be, err);
}

int dv2_train_model_init_distill(dv2_train_model *m, const dv2_config *c, const dv2_train_frozen *t,
                                 const dv2_backend *be, dv2_error *err) {
    return model_init(m, c, t, be, err);
}

void dv2_train_model_free(dv2_train_model *m) {
    if (!m || !m->be) return;
    for (int k = 0; k < DV2_TM_N; k++) {
        m->be->free(m->be, m->adam_m[k]);
        m->be->free(m->be, m->adam_v[k]);
        free(m->group[k]);
    }
    m->be->free(m->be, m->shard_buf);
    free(m->red);
    dv2_vit_free(&m->s_bb);
    dv2_vit_free(&m->t_bb);
    dv2_head_free(&m->s_dino);
    dv2_head_free(&m->t_dino);
    if (m->separate_ibot) {
        dv2_head_free(&m->s_ibot);
        dv2_head_free(&m->t_ibot);
    }
    if (m->distill) {
        dv2_vit_free(&m->e_bb);
        dv2_head_free(&m->e_dino);
        if (m->separate_ibot) dv2_head_free(&m->e_ibot);
    }
    if (m->be) m->be->free(m->be, m->dino_center), m->be->free(m->be, m->ibot_center);
    memset(m, 0, sizeof *m);
}

int dv2_train_model_init_weights(dv2_train_model *m, uint64_t seed, dv2_error *err) {
    dv2_rng r;
    dv2_rng_seed(&r, seed, 0x1417);
    int rc = dv2_vit_init_weights(&m->s_bb, &r, err);
    if (!rc) rc = dv2_head_init_weights(&m->s_dino, &r, err);
    if (!rc && m->separate_ibot) rc = dv2_head_init_weights(&m->s_ibot, &r, err);
    for (int k = 0; !rc && k < m->n_mod; k++) rc = dv2_params_copy(m->ema_mod[k], m->s_mod[k], err);
    return rc < 0 ? rc : 0;
}

int dv2_train_model_load_backbone(dv2_train_model *m, const char *path, dv2_error *err) {
    dv2_safetensors_file *f;
    int rc = dv2_safetensors_open(&f, path, err);
    if (rc) return rc;
    dv2_params *p = &m->s_bb.params;
    rc = dv2_weights_load(p, f, NULL, "the config", NULL, NULL, err);
    dv2_safetensors_close(f);
    if (!rc) rc = dv2_params_copy(m->ema_mod[0], p, err);
    return rc < 0 ? rc : 0;
}

/* ---- sharded optimizer state (ZeRO-1) ------------------------------------- */

/* The parts of module k's flat buffer this rank updates, with their offset
 * in the moments: the chunk [r·c, (r+1)·c) and the tail [W·c, numel) that
 * every rank updates alike (unsharded: one part, the whole buffer). */
typedef struct part {
    size_t lo, hi, moff;
} part;

static void parts(const dv2_train_model *m, int k, part p[2]) {
    size_t c = m->chunk[k], W = (size_t)m->shard_w;
    p[0] = (part){(size_t)m->shard_r * c, (size_t)m->shard_r * c + c, 0};
    p[1] = (part){W * c, W * c + m->tail[k], c};
}

int dv2_train_model_shard(dv2_train_model *m, const dv2_dist *dist, dv2_error *err) {
    const dv2_backend *be = m->be;
    const size_t W = (size_t)dist->world;
    size_t maxc = 1;
    m->sharded = 1, m->shard_w = dist->world, m->shard_r = dist->rank, m->dist = dist;
    m->optim_bytes = 0;
    for (int k = 0; k < m->n_mod; k++) {
        size_t n = m->s_mod[k]->numel, c = n / W, own = c + (n - W * c);
        be->free(be, m->adam_m[k]), be->free(be, m->adam_v[k]);
        m->chunk[k] = c;
        m->tail[k] = n - W * c;
        m->adam_m[k] = be->alloc(be, sizeof(float) * (own ? own : 1)); /* zero-filled: the initial moments */
        m->adam_v[k] = be->alloc(be, sizeof(float) * (own ? own : 1));
        if (!m->adam_m[k] || !m->adam_v[k])
            return dv2_error_set(err, DV2_ENOMEM, "train: out of memory for the optimizer state");
        m->optim_bytes += 2 * sizeof(float) * own;
        if (c > maxc) maxc = c;
    }
    /* collectives run on pieces of at most `piece` floats per rank, so the
     * scratch stays near 16 MiB whatever the model; a module whose chunk is
     * one piece needs no staging (its W chunks are contiguous already) */
    size_t piece = ((size_t)1 << 22) / W;
    const char *e = getenv("DV2_TRAIN_SHARD_PIECE"); /* tests: force several pieces */
    if (e && *e) piece = (size_t)strtoull(e, NULL, 10);
    else if (piece < 4096) piece = 4096;
    if (piece < 1) piece = 1;
    m->piece = maxc < piece ? maxc : piece;
    size_t buf = m->piece * (maxc > m->piece ? W + 1 : 1);
    be->free(be, m->shard_buf);
    if (!(m->shard_buf = be->alloc(be, sizeof(float) * buf)))
        return dv2_error_set(err, DV2_ENOMEM, "train: out of memory for the collectives' buffer");
    m->shard_stage = maxc > m->piece ? m->shard_buf + m->piece : NULL;
    return 0;
}

static int copy_failed(dv2_error *err) {
    return dv2_error_set(err, DV2_EIO, "train: backend memory operation failed");
}

int dv2_train_model_shard_grads(dv2_train_model *m, dv2_error *err) {
    const dv2_backend *be = m->be;
    const size_t W = (size_t)m->shard_w, r = (size_t)m->shard_r;
    const float inv = 1.0f / (float)m->shard_w;
    for (int k = 0; k < m->n_mod; k++) {
        float *g = m->s_mod[k]->grad;
        size_t c = m->chunk[k];
        part p[2];
        parts(m, k, p);
        /* piece [off, off+len) of every rank's chunk, reduced into shard_buf
         * (a reduce-scatter may not work in place), then to its place in g */
        for (size_t off = 0; off < c; off += m->piece) {
            size_t len = c - off < m->piece ? c - off : m->piece;
            const float *in = g;
            if (len < c) { /* stage the W pieces rank-major */
                for (size_t q = 0; q < W; q++)
                    if (be->copy(be, m->shard_stage + q * len, g + q * c + off, sizeof(float) * len)) return copy_failed(err);
                in = m->shard_stage;
            }
            int rc = be->reduce_scatter_sum(be, m->shard_buf, in, len, m->dist, err);
            if (rc) return rc;
            if (be->copy(be, g + r * c + off, m->shard_buf, sizeof(float) * len)) return copy_failed(err);
        }
        if (m->tail[k]) {
            int rc = be->allreduce_sum(be, g + p[1].lo, m->tail[k], m->dist, err);
            if (rc) return rc;
        }
        for (int j = 0; j < 2; j++)
            if (p[j].hi > p[j].lo) be->scale(be, g + p[j].lo, inv, p[j].hi - p[j].lo);
    }
    return 0;
}

/* Starts the collectives of [lo, hi) of module k (dv2_train_model_reduce_start). */
static int reduce_range(dv2_train_model *m, const dv2_dist *dist, int k, size_t lo, size_t hi, dv2_error *err) {
    const dv2_backend *be = m->be;
    float *g = m->s_mod[k]->grad;
    if (!m->sharded) return be->allreduce_sum_start(be, g + lo, hi - lo, dist, err);
    const size_t W = (size_t)m->shard_w, c = m->chunk[k];
    for (size_t q = 0; q < W; q++) { /* rank q's chunk [q·c, (q+1)·c) goes to rank q */
        size_t a = lo > q * c ? lo : q * c, b = hi < q * c + c ? hi : q * c + c;
        int rc = a < b ? be->reduce_sum_start(be, g + a, b - a, (int)q, m->dist, err) : 0;
        if (rc) return rc;
    }
    size_t a = lo > W * c ? lo : W * c; /* the tail, which every rank updates */
    return a < hi ? be->allreduce_sum_start(be, g + a, hi - a, m->dist, err) : 0;
}

int dv2_train_model_reduce_start(dv2_train_model *m, const dv2_dist *dist, int k, size_t lo, size_t hi,
                                 dv2_error *err) {
    if (k < 0 || k >= m->n_mod || lo >= hi || hi > m->s_mod[k]->numel)
        return dv2_error_set(err, DV2_EINVAL, "train: no gradient range [%zu, %zu) in module %d", lo, hi, k);
    for (int i = 0; i < m->red_n; i++)
        if (m->red[i].k == k && lo < m->red[i].hi && m->red[i].lo < hi)
            return dv2_error_set(err, DV2_EINVAL, "train: gradient range [%zu, %zu) of the %s reduced twice", lo,
                                 hi, m->mod_name[k]);
    if (m->red_n == m->red_cap) {
        int cap = m->red_cap ? 2 * m->red_cap : 64;
        void *r = realloc(m->red, sizeof *m->red * (size_t)cap);
        if (!r) return dv2_error_set(err, DV2_ENOMEM, "train: out of memory");
        m->red = r, m->red_cap = cap;
    }
    m->red[m->red_n++] = (struct dv2_train_model_range){k, lo, hi};
    int rc = reduce_range(m, dist, k, lo, hi, err);
    m->be->coll_progress(m->be);
    return rc;
}

static int by_start(const void *a, const void *b) {
    const struct dv2_train_model_range *x = a, *y = b;
    if (x->k != y->k) return x->k < y->k ? -1 : 1;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

int dv2_train_model_reduce_finish(dv2_train_model *m, const dv2_dist *dist, size_t *early, dv2_error *err) {
    size_t started = 0;
    int n = m->red_n, rc = 0;
    qsort(m->red, (size_t)n, sizeof *m->red, by_start);
    for (int i = 0; i < n; i++) started += m->red[i].hi - m->red[i].lo;
    /* the gaps between the started ranges, module by module, in one order on every rank */
    for (int k = 0, i = 0; !rc && k < m->n_mod; k++) {
        size_t at = 0;
        for (; !rc && i < n && m->red[i].k == k; i++) {
            if (m->red[i].lo > at) rc = reduce_range(m, dist, k, at, m->red[i].lo, err);
            at = m->red[i].hi;
        }
        if (!rc && at < m->s_mod[k]->numel) rc = reduce_range(m, dist, k, at, m->s_mod[k]->numel, err);
    }
    m->red_n = 0;
    /* after a failed start the other ranks may never complete theirs: no wait */
    if (rc || (rc = m->be->coll_wait(m->be, err))) return rc;
    const int W = m->sharded ? m->shard_w : dist->world;
    for (int k = 0; k < m->n_mod; k++) dv2_train_model_scale_grad(m, k, 1.0f / (float)W);
    if (early) *early = started;
    return 0;
}

int dv2_train_model_shard_grad_stats(const dv2_train_model *m, double *norm, int *finite, dv2_error *err) {
    double acc[DV2_TM_N + 1] = {0}; /* per module the sum of squares, then the non-finite parts */
    int rc;
    for (int k = 0; k < m->n_mod; k++) {
        const float *g = m->s_mod[k]->grad;
        part p[2];
        parts(m, k, p);
        for (int j = 0; j < 2; j++) {
            if (p[j].hi == p[j].lo || (j == 1 && m->shard_r != 0)) continue; /* the tail counts once */
            double ss = 0;
            int ok = 0;
            if ((rc = m->be->sumsq(m->be, &ss, g + p[j].lo, p[j].hi - p[j].lo)) ||
                (rc = m->be->all_finite(m->be, &ok, g + p[j].lo, p[j].hi - p[j].lo)))
                return dv2_error_set(err, rc, "train: gradient statistics failed on the backend");
            acc[k] += ss;
            if (!ok) acc[DV2_TM_N] += 1;
        }
    }
    if ((rc = dv2_dist_allreduce_sum_f64(m->dist, acc, DV2_TM_N + 1, err))) return rc;
    for (int k = 0; k < m->n_mod; k++) norm[k] = sqrt(acc[k]);
    *finite = acc[DV2_TM_N] == 0;
    return 0;
}

int dv2_train_model_gather_params(dv2_train_model *m, dv2_error *err) {
    if (!m->sharded) return 0;
    const dv2_backend *be = m->be;
    const size_t W = (size_t)m->shard_w, r = (size_t)m->shard_r;
    for (int k = 0; k < m->n_mod; k++) {
        float *d = m->s_mod[k]->data;
        size_t c = m->chunk[k];
        /* the send buffer may not alias the receive buffer: the piece goes
         * through shard_buf; the tail is the same on every rank already */
        for (size_t off = 0; off < c; off += m->piece) {
            size_t len = c - off < m->piece ? c - off : m->piece;
            if (be->copy(be, m->shard_buf, d + r * c + off, sizeof(float) * len)) return copy_failed(err);
            int rc = be->all_gather(be, len < c ? m->shard_stage : d, m->shard_buf, len, m->dist, err);
            if (rc) return rc;
            for (size_t q = 0; len < c && q < W; q++)
                if (be->copy(be, d + q * c + off, m->shard_stage + q * len, sizeof(float) * len)) return copy_failed(err);
        }
        /* the chunks gathered from the other ranks have no compute copy yet
         * (this rank's chunk and the tail got theirs from adamw_step) */
        for (size_t q = 0; q < W; q++) {
            int rc = q == r ? 0 : dv2_params_sync16_range(m->s_mod[k], q * c, c, err);
            if (rc) return rc;
        }
    }
    return 0;
}

/* Sharded checkpoints: moment mom (this rank's chunk and tail) of module k
 * gathered into h (numel floats on the host; NULL on the ranks that only
 * take part) through d_tmp (W·piece floats).  Every rank runs every
 * collective, even after a failed copy (returned at the end). */
static int gather_moment(const dv2_train_model *m, int k, const float *mom, float *h, float *d_tmp,
                         dv2_error *err) {
    const size_t W = (size_t)m->shard_w, c = m->chunk[k];
    int bad = 0;
    for (size_t off = 0; off < c; off += m->piece) {
        size_t len = c - off < m->piece ? c - off : m->piece;
        int rc = m->be->all_gather(m->be, d_tmp, mom + off, len, m->dist, err);
        if (rc) return rc;
        for (size_t q = 0; h && q < W; q++)
            bad |= m->be->to_host(m->be, h + q * c + off, d_tmp + q * len, sizeof(float) * len) != 0;
    }
    if (h && m->tail[k]) bad |= m->be->to_host(m->be, h + W * c, mom + c, sizeof(float) * m->tail[k]) != 0;
    return bad ? DV2_EIO : 0;
}

int dv2_train_model_zero_grad(dv2_train_model *m) {
    for (int k = 0; k < m->n_mod; k++) {
        int rc = dv2_params_zero_grad(m->s_mod[k]);
        if (rc) return rc;
    }
    return 0;
}

double dv2_train_model_grad_norm(const dv2_train_model *m, int k) {
    double ss = NAN;
    if (m->be->sumsq(m->be, &ss, m->s_mod[k]->grad, m->s_mod[k]->numel)) return NAN;
    return sqrt(ss);
}

int dv2_train_model_grads_finite(const dv2_train_model *m) {
    for (int k = 0; k < m->n_mod; k++) {
        int ok = 0;
        if (m->be->all_finite(m->be, &ok, m->s_mod[k]->grad, m->s_mod[k]->numel) || !ok) return 0;
    }
    return 1;
}

void dv2_train_model_scale_grad(dv2_train_model *m, int k, float a) {
    part p[2];
    parts(m, k, p);
    for (int j = 0; j < 2; j++)
        if (p[j].hi > p[j].lo) m->be->scale(m->be, m->s_mod[k]->grad + p[j].lo, a, p[j].hi - p[j].lo);
}

void dv2_train_model_adamw(dv2_train_model *m, double lr, double last_lr, double wd, double beta1,
                  double beta2) {
    m->adam_t++;
    for (int k = 0; k < m->n_mod; k++) {
        dv2_params *p = m->s_mod[k];
        part q[2]; /* this rank's parts: the parameter groups are cut to them */
        parts(m, k, q);
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < p->n; i++) {
                const dv2_train_model_group *g = &m->group[k][i];
                size_t a = p->t[i].offset, b = a + p->t[i].numel;
                if (a < q[j].lo) a = q[j].lo;
                if (b > q[j].hi) b = q[j].hi;
                if (a >= b) continue;
                size_t mo = q[j].moff + (a - q[j].lo);
                double l = (g->is_last_layer ? last_lr : lr) * g->lr_mult;
                dv2_bf16 *p16 = p->data16 ? p->data16 + a : NULL; /* the compute copy, if kept */
                m->be->adamw_step(m->be, p->data + a, p16, m->adam_m[k] + mo, m->adam_v[k] + mo, p->grad + a, b - a,
                                  (float)l, (float)(wd * g->wd_mult), (float)beta1, (float)beta2, 1e-8f,
                                  (int)m->adam_t);
            }
    }
}

void dv2_train_model_ema(dv2_train_model *m, double mom) {
    for (int k = 0; k < m->n_mod; k++)
        m->be->ema_update(m->be, m->ema_mod[k]->data, m->ema_mod[k]->data16, m->s_mod[k]->data,
                          m->s_mod[k]->numel, (float)mom);
}

/* ---- checkpoint tensors ---------------------------------------------------- */

typedef struct ent_builder {
    dv2_safetensors_entry *e;
    char **names;
    size_t n, cap;
} ent_builder;

static int eb_add(ent_builder *b, const char *name, const float *data, const dv2_param_info *shape_of,
                  size_t numel) {
    if (b->n == b->cap) return DV2_ENOMEM;
    char *nm = strdup(name);
    if (!nm) return DV2_ENOMEM;
    dv2_safetensors_entry *e = &b->e[b->n];
    b->names[b->n] = nm;
    e->name = nm;
    e->data = data;
    if (shape_of) {
        e->ndim = shape_of->ndim;
        for (int d = 0; d < shape_of->ndim; d++) e->shape[d] = shape_of->shape[d];
    } else {
        e->ndim = 1;
        e->shape[0] = (int64_t)numel;
    }
    b->n++;
    return 0;
}

/* Checkpoint name of network w (student, EMA target, the AdamW moments). */
static const char *ckpt_fmt(const dv2_train_model *m, int w) {
    static const char *fmt[4] = {"student.%s.%s", "teacher.%s.%s", "optimizer.%s.exp_avg.%s",
                                 "optimizer.%s.exp_avg_sq.%s"};
    return w == 1 && m->distill ? "student_ema.%s.%s" : fmt[w];
}

/* Host layout of the checkpoint floats: per module student, teacher, m, v;
 * then the centers. */
int dv2_train_model_entries(const dv2_train_model *m, dv2_safetensors_entry **entries, size_t *n,
                   float **host, dv2_error *err) {
    size_t total = (size_t)m->K + (size_t)m->K_ibot, ntens = 2;
    for (int k = 0; k < m->n_mod; k++) {
        total += 4 * m->s_mod[k]->numel;
        ntens += 4 * (size_t)m->s_mod[k]->n;
    }
    /* sharded: every rank takes part in gathering the moments' chunks
     * (through a device buffer of W pieces); only rank 0 collects tensors */
    const int peer = m->sharded && m->dist->rank != 0;
    float *d_tmp = m->sharded ? m->be->alloc(m->be, sizeof(float) * m->piece * (size_t)m->shard_w) : NULL;
    float *h = peer ? NULL : dv2_malloc_array(total ? total : 1, sizeof *h);
    ent_builder b = {peer ? NULL : calloc(ntens + 1, sizeof *b.e), peer ? NULL : calloc(ntens + 1, sizeof *b.names),
                     0, ntens};
    int rc = (!peer && (!h || !b.e || !b.names)) || (m->sharded && !d_tmp) ? DV2_ENOMEM : 0;
    if (m->sharded && m->shard_w > 1) rc = dv2_dist_agree(m->dist, rc, NULL); /* every rank or none gathers */
    if (rc) {
        free(h), free(b.e), free(b.names), m->be->free(m->be, d_tmp);
        return dv2_error_set(err, DV2_ENOMEM, "checkpoint: out of memory");
    }
    if (peer) {
        for (int k = 0; !rc && k < m->n_mod; k++) {
            rc = gather_moment(m, k, m->adam_m[k], NULL, d_tmp, err);
            if (!rc) rc = gather_moment(m, k, m->adam_v[k], NULL, d_tmp, err);
        }
        m->be->free(m->be, d_tmp);
        *entries = NULL, *n = 0, *host = NULL;
        return rc ? dv2_error_set(err, rc, "checkpoint: cannot gather the optimizer state") : 0;
    }
    float *p = h;
    char name[256];
    for (int k = 0; !rc && k < m->n_mod; k++) {
        const dv2_params *s = m->s_mod[k];
        size_t nb = s->numel * sizeof(float);
        const float *src[4] = {s->data, m->ema_mod[k]->data, m->adam_m[k], m->adam_v[k]};
        for (int w = 0; !rc && w < 4; w++) {
            if (w >= 2 && m->sharded) /* gather on save: the file holds whole moments */
                rc = gather_moment(m, k, src[w], p, d_tmp, err);
            else
                rc = m->be->to_host(m->be, p, src[w], nb);
            for (int i = 0; !rc && i < s->n; i++) {
                snprintf(name, sizeof name, ckpt_fmt(m, w), m->mod_name[k], s->t[i].name);
                rc = eb_add(&b, name, p + s->t[i].offset, &s->t[i], 0);
            }
            p += s->numel;
        }
    }
    if (!rc) {
        rc = m->be->to_host(m->be, p, m->dino_center, sizeof(float) * (size_t)m->K);
        if (!rc) rc = eb_add(&b, "dino_center", p, NULL, (size_t)m->K);
        p += m->K;
    }
    if (!rc) {
        rc = m->be->to_host(m->be, p, m->ibot_center, sizeof(float) * (size_t)m->K_ibot);
        if (!rc) rc = eb_add(&b, "ibot_center", p, NULL, (size_t)m->K_ibot);
    }
    m->be->free(m->be, d_tmp);
    if (rc) {
        dv2_train_model_entries_free(b.e, h);
        free(b.names);
        return dv2_error_set(err, rc, "checkpoint: cannot collect tensors");
    }
    /* names are owned through the entries (freed in dv2_train_model_entries_free) */
    free(b.names);
    *entries = b.e;
    *n = b.n;
    *host = h;
    return 0;
}

void dv2_train_model_entries_free(dv2_safetensors_entry *entries, float *host) {
    if (entries)
        for (size_t i = 0; entries[i].name; i++) free((char *)entries[i].name);
    free(entries);
    free(host);
}

static int load_into(const dv2_safetensors_file *f, const char *name, float *dst_dev, const dv2_backend *be,
                     const int64_t *shape, int ndim, size_t numel, float *tmp, dv2_error *err) {
    int rc = dv2_safetensors_load(f, name, shape, ndim, tmp, err);
    if (rc) return rc;
    return be->to_device(be, dst_dev, tmp, numel * sizeof(float));
}

int dv2_train_model_restore(dv2_train_model *m, const dv2_safetensors_file *f, dv2_error *err) {
    size_t mx = (size_t)(m->K > m->K_ibot ? m->K : m->K_ibot);
    for (int k = 0; k < m->n_mod; k++)
        for (int i = 0; i < m->s_mod[k]->n; i++) mx = m->s_mod[k]->t[i].numel > mx ? m->s_mod[k]->t[i].numel : mx;
    float *tmp = dv2_malloc_array(mx, sizeof *tmp);
    if (!tmp) return dv2_error_set(err, DV2_ENOMEM, "resume: out of memory");
    int rc = 0;
    char name[256];
    for (int k = 0; !rc && k < m->n_mod; k++) {
        const dv2_params *s = m->s_mod[k];
        float *dst[2] = {s->data, m->ema_mod[k]->data};
        part q[2]; /* the moments: this rank's parts of each tensor (re-shard on load) */
        parts(m, k, q);
        for (int w = 0; !rc && w < 4; w++)
            for (int i = 0; !rc && i < s->n; i++) {
                snprintf(name, sizeof name, ckpt_fmt(m, w), m->mod_name[k], s->t[i].name);
                if (w < 2) {
                    rc = load_into(f, name, dst[w] + s->t[i].offset, m->be, s->t[i].shape, s->t[i].ndim,
                                   s->t[i].numel, tmp, err);
                    continue;
                }
                rc = dv2_safetensors_load(f, name, s->t[i].shape, s->t[i].ndim, tmp, err);
                for (int j = 0; !rc && j < 2; j++) {
                    size_t off = s->t[i].offset, a = off, b = off + s->t[i].numel;
                    if (a < q[j].lo) a = q[j].lo;
                    if (b > q[j].hi) b = q[j].hi;
                    if (a < b)
                        rc = m->be->to_device(m->be, (w == 2 ? m->adam_m[k] : m->adam_v[k]) + q[j].moff + (a - q[j].lo),
                                              tmp + (a - off), sizeof(float) * (b - a));
                }
            }
    }
    int64_t kd[1] = {m->K}, ki[1] = {m->K_ibot};
    if (!rc) rc = load_into(f, "dino_center", m->dino_center, m->be, kd, 1, (size_t)m->K, tmp, err);
    if (!rc) rc = load_into(f, "ibot_center", m->ibot_center, m->be, ki, 1, (size_t)m->K_ibot, tmp, err);
    for (int k = 0; !rc && k < m->n_mod; k++) /* the weights came in as f32: their compute copies */
        if (!(rc = dv2_params_sync16(m->s_mod[k], err))) rc = dv2_params_sync16(m->ema_mod[k], err);
    free(tmp);
    return rc;
}

/* Writes backbone b (official names) and, when nh > 0, heads h[0..nh) as
 * "<hname[j]>.<name>", with the architecture as metadata, atomically. */
static int export_net(const dv2_train_model *m, const dv2_params *b, const dv2_params *const *h,
                      const char *const *hname, int nh, const char *source, const char *path, dv2_error *err) {
    const dv2_params *net[1 + DV2_TM_N] = {b};
    size_t numel = b->numel, nt = (size_t)b->n;
    for (int j = 0; j < nh; j++) net[1 + j] = h[j], numel += h[j]->numel, nt += (size_t)h[j]->n;
    float *hbuf = dv2_malloc_array(numel ? numel : 1, sizeof *hbuf);
    dv2_safetensors_entry *e = calloc(nt ? nt : 1, sizeof *e);
    char (*names)[DV2_PARAM_NAME_MAX + 16] = calloc(nt ? nt : 1, sizeof *names);
    int rc = 0;
    if (!hbuf || !e || !names) rc = dv2_error_set(err, DV2_ENOMEM, "export: out of memory");
    size_t off = 0, n = 0;
    for (int j = 0; !rc && j <= nh; j++) {
        const dv2_params *t = net[j];
        rc = m->be->to_host(m->be, hbuf + off, t->data, t->numel * sizeof(float));
        for (int i = 0; !rc && i < t->n; i++, n++) {
            if (j == 0) dv2_weights_canonical_name(names[n], sizeof names[n], t->t[i].name);
            else snprintf(names[n], sizeof names[n], "%s.%s", hname[j - 1], t->t[i].name);
            e[n].name = names[n];
            e[n].data = hbuf + off + t->t[i].offset;
            e[n].ndim = t->t[i].ndim;
            for (int d = 0; d < t->t[i].ndim; d++) e[n].shape[d] = t->t[i].shape[d];
        }
        off += t->numel;
    }
    if (!rc) {
        dv2_arch a = m->arch;
        a.block_chunks = 0;
        const char *k[] = {"source"}, *v[] = {source};
        rc = dv2_weights_write(path, 1, e, n, &a, k, v, 1, err);
    }
    free(hbuf), free(e), free(names);
    return rc;
}

int dv2_train_model_export_teacher(const dv2_train_model *m, const char *path, dv2_error *err) {
    return export_net(m, &m->t_bb.params, NULL, NULL, 0, "dv2-train teacher", path, err);
}

int dv2_train_model_export_student(const dv2_train_model *m, int k, const char *source, const char *path,
                                   dv2_error *err) {
    dv2_params *const *net = k ? m->ema_mod : m->s_mod;
    const dv2_params *h[2] = {net[1], net[2]};
    return export_net(m, net[0], h, m->mod_name + 1, m->n_mod - 1, source, path, err);
}

uint64_t dv2_train_model_digest(const dv2_train_model *m) {
    dv2_xxh64_state s;
    dv2_xxh64_init(&s, 0);
    for (int k = 0; k < m->n_mod; k++) {
        const dv2_params *ps[2] = {m->s_mod[k], m->ema_mod[k]};
        for (int w = 0; w < 2; w++) {
            size_t nb = ps[w]->numel * sizeof(float);
            float *h = malloc(nb ? nb : 1);
            if (!h) return 0;
            m->be->to_host(m->be, h, ps[w]->data, nb);
            dv2_xxh64_update(&s, h, nb);
            free(h);
        }
    }
    return dv2_xxh64_digest(&s);
}
