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
    for (int k = 0; k < m->n_mod; k++) {
        dv2_params *p = m->s_mod[k];
        size_t bytes = sizeof(float) * (p->numel ? p->numel : 1);
        m->adam_m[k] = be->alloc(bytes);
        m->adam_v[k] = be->alloc(bytes);
        m->group[k] = calloc((size_t)p->n, sizeof *m->group[k]);
        if (!m->adam_m[k] || !m->adam_v[k] || !m->group[k]) {
            rc = dv2_error_set(err, DV2_ENOMEM, "train: out of memory for the optimizer state");
            goto fail;
        }
        for (int i = 0; i < p->n; i++)
            m->group[k][i] = k == 0 ? backbone_group(p->t[i].name, m->arch.depth, c->optim.layerwise_decay,
                                                     c->optim.patch_embed_lr_mult)
                                    : head_group(p->t[i].name);
    }
    m->dino_center = calloc((size_t)m->K, sizeof(float));
    m->ibot_center = calloc((size_t)m->K_ibot, sizeof(float));
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
        m->be->free(m->adam_m[k]);
        m->be->free(m->adam_v[k]);
        free(m->group[k]);
    }
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
    free(m->dino_center);
    free(m->ibot_center);
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

int dv2_train_model_zero_grad(dv2_train_model *m) {
    for (int k = 0; k < m->n_mod; k++) {
        int rc = dv2_params_zero_grad(m->s_mod[k]);
        if (rc) return rc;
    }
    return 0;
}

double dv2_train_model_grad_norm(const dv2_train_model *m, int k) {
    return sqrt(m->be->sumsq(m->s_mod[k]->grad, m->s_mod[k]->numel));
}

int dv2_train_model_grads_finite(const dv2_train_model *m) {
    for (int k = 0; k < m->n_mod; k++)
        if (!m->be->all_finite(m->s_mod[k]->grad, m->s_mod[k]->numel)) return 0;
    return 1;
}

void dv2_train_model_scale_grad(dv2_train_model *m, int k, float a) {
    m->be->scale(m->s_mod[k]->grad, a, m->s_mod[k]->numel);
}

void dv2_train_model_adamw(dv2_train_model *m, double lr, double last_lr, double wd, double beta1,
                  double beta2) {
    m->adam_t++;
    for (int k = 0; k < m->n_mod; k++) {
        dv2_params *p = m->s_mod[k];
        for (int i = 0; i < p->n; i++) {
            const dv2_train_model_group *g = &m->group[k][i];
            size_t off = p->t[i].offset;
            double l = (g->is_last_layer ? last_lr : lr) * g->lr_mult;
            m->be->adamw_step(p->data + off, m->adam_m[k] + off, m->adam_v[k] + off, p->grad + off,
                              p->t[i].numel, (float)l, (float)(wd * g->wd_mult), (float)beta1,
                              (float)beta2, 1e-8f, (int)m->adam_t);
        }
    }
}

void dv2_train_model_ema(dv2_train_model *m, double mom) {
    for (int k = 0; k < m->n_mod; k++)
        m->be->ema_update(m->ema_mod[k]->data, m->s_mod[k]->data, m->s_mod[k]->numel, (float)mom);
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
    float *h = dv2_malloc_array(total ? total : 1, sizeof *h);
    ent_builder b = {calloc(ntens + 1, sizeof *b.e), calloc(ntens + 1, sizeof *b.names), 0, ntens};
    if (!h || !b.e || !b.names) {
        free(h), free(b.e), free(b.names);
        return dv2_error_set(err, DV2_ENOMEM, "checkpoint: out of memory");
    }
    float *p = h;
    int rc = 0;
    char name[256];
    for (int k = 0; !rc && k < m->n_mod; k++) {
        const dv2_params *s = m->s_mod[k];
        size_t nb = s->numel * sizeof(float);
        const float *src[4] = {s->data, m->ema_mod[k]->data, m->adam_m[k], m->adam_v[k]};
        for (int w = 0; !rc && w < 4; w++) {
            rc = m->be->to_host(p, src[w], nb);
            for (int i = 0; !rc && i < s->n; i++) {
                snprintf(name, sizeof name, ckpt_fmt(m, w), m->mod_name[k], s->t[i].name);
                rc = eb_add(&b, name, p + s->t[i].offset, &s->t[i], 0);
            }
            p += s->numel;
        }
    }
    if (!rc) {
        memcpy(p, m->dino_center, sizeof(float) * (size_t)m->K);
        rc = eb_add(&b, "dino_center", p, NULL, (size_t)m->K);
        p += m->K;
    }
    if (!rc) {
        memcpy(p, m->ibot_center, sizeof(float) * (size_t)m->K_ibot);
        rc = eb_add(&b, "ibot_center", p, NULL, (size_t)m->K_ibot);
    }
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
    return be->to_device(dst_dev, tmp, numel * sizeof(float));
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
        float *dst[4] = {s->data, m->ema_mod[k]->data, m->adam_m[k], m->adam_v[k]};
        for (int w = 0; !rc && w < 4; w++)
            for (int i = 0; !rc && i < s->n; i++) {
                snprintf(name, sizeof name, ckpt_fmt(m, w), m->mod_name[k], s->t[i].name);
                rc = load_into(f, name, dst[w] + s->t[i].offset, m->be, s->t[i].shape, s->t[i].ndim,
                               s->t[i].numel, tmp, err);
            }
    }
    int64_t kd[1] = {m->K}, ki[1] = {m->K_ibot};
    if (!rc) rc = dv2_safetensors_load(f, "dino_center", kd, 1, m->dino_center, err);
    if (!rc) rc = dv2_safetensors_load(f, "ibot_center", ki, 1, m->ibot_center, err);
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
        rc = m->be->to_host(hbuf + off, t->data, t->numel * sizeof(float));
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
            m->be->to_host(h, ps[w]->data, nb);
            dv2_xxh64_update(&s, h, nb);
            free(h);
        }
    }
    return dv2_xxh64_digest(&s);
}
