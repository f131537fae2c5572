/* vit.c — the DINOv2 ViT backbone: parameter table with the official
 * state-dict names, initialization (spec §2.10) and the stochastic-depth
 * subset helpers.  The forward/backward passes are in vit_pass.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/vit.h"

static int add1(dv2_params *p, const char *name, int64_t a, dv2_error *err) {
    int64_t s[1] = {a};
    return dv2_params_add(p, name, 1, s, err);
}
static int add2(dv2_params *p, const char *name, int64_t a, int64_t b, dv2_error *err) {
    int64_t s[2] = {a, b};
    return dv2_params_add(p, name, 2, s, err);
}
static int add3(dv2_params *p, const char *name, int64_t a, int64_t b, int64_t c, dv2_error *err) {
    int64_t s[3] = {a, b, c};
    return dv2_params_add(p, name, 3, s, err);
}

/* Block tensor name with the chunked form blocks.<chunk>.<i>. when block_chunks > 0 (§2.12). */
static void bname(char *out, size_t n, const dv2_arch *a, int i, const char *suffix) {
    if (a->block_chunks > 0) {
        int per = (a->depth + a->block_chunks - 1) / a->block_chunks;
        snprintf(out, n, "blocks.%d.%d.%s", i / per, i, suffix);
    } else {
        snprintf(out, n, "blocks.%d.%s", i, suffix);
    }
}

#define TRY(x) do { int r_ = (x); if (r_ < 0) { dv2_vit_free(m); return r_; } } while (0)

int dv2_vit_init(dv2_vit *m, const dv2_arch *arch, const dv2_backend *be, int with_grad,
                 dv2_error *err) {
    memset(m, 0, sizeof *m);
    int rc = dv2_arch_validate(arch, err);
    if (rc < 0) return rc;
    if (arch->in_chans != 3)
        return dv2_error_set(err, DV2_EUNSUPPORTED, "vit: in_chans %d (only 3)", arch->in_chans);
    m->arch = *arch;
    m->be = be;
    dv2_params_init(&m->params, be);
    dv2_params *p = &m->params;
    int D = arch->embed_dim, L = arch->depth, R = arch->num_register_tokens, P = arch->patch_size;
    long N0 = dv2_arch_num_patches(arch);
    int hid = arch->ffn_hidden, sw = arch->ffn_kind == DV2_FFN_SWIGLU;
    m->blk = calloc((size_t)L, sizeof *m->blk);
    if (!m->blk) return dv2_error_set(err, DV2_ENOMEM, "vit: out of memory");
    TRY(m->i_cls = add3(p, "cls_token", 1, 1, D, err));
    TRY(m->i_pos = add3(p, "pos_embed", 1, 1 + N0, D, err));
    m->i_reg = -1;
    if (R > 0) TRY(m->i_reg = add3(p, "register_tokens", 1, R, D, err));
    TRY(m->i_mask = add2(p, "mask_token", 1, D, err));
    int64_t pe[4] = {D, 3, P, P};
    TRY(m->i_pe_w = dv2_params_add(p, "patch_embed.proj.weight", 4, pe, err));
    TRY(m->i_pe_b = add1(p, "patch_embed.proj.bias", D, err));
    char nm[DV2_PARAM_NAME_MAX];
    for (int i = 0; i < L; i++) {
        dv2_vit_block_idx *b = &m->blk[i];
        memset(b, 0xff, sizeof *b); /* all -1 */
#define ADD1(field, suffix, n) do { bname(nm, sizeof nm, arch, i, suffix); TRY(b->field = add1(p, nm, n, err)); } while (0)
#define ADD2(field, suffix, r, c) do { bname(nm, sizeof nm, arch, i, suffix); TRY(b->field = add2(p, nm, r, c, err)); } while (0)
        ADD1(norm1_w, "norm1.weight", D);
        ADD1(norm1_b, "norm1.bias", D);
        ADD2(qkv_w, "attn.qkv.weight", 3 * D, D);
        if (arch->qkv_bias) ADD1(qkv_b, "attn.qkv.bias", 3 * D);
        ADD2(proj_w, "attn.proj.weight", D, D);
        if (arch->proj_bias) ADD1(proj_b, "attn.proj.bias", D);
        ADD1(ls1, "ls1.gamma", D);
        ADD1(norm2_w, "norm2.weight", D);
        ADD1(norm2_b, "norm2.bias", D);
        if (sw) {
            ADD2(fc1_w, "mlp.w12.weight", 2 * hid, D);
            if (arch->ffn_bias) ADD1(fc1_b, "mlp.w12.bias", 2 * hid);
            ADD2(fc2_w, "mlp.w3.weight", D, hid);
            if (arch->ffn_bias) ADD1(fc2_b, "mlp.w3.bias", D);
        } else {
            ADD2(fc1_w, "mlp.fc1.weight", hid, D);
            if (arch->ffn_bias) ADD1(fc1_b, "mlp.fc1.bias", hid);
            ADD2(fc2_w, "mlp.fc2.weight", D, hid);
            if (arch->ffn_bias) ADD1(fc2_b, "mlp.fc2.bias", D);
        }
        ADD1(ls2, "ls2.gamma", D);
#undef ADD1
#undef ADD2
    }
    TRY(m->i_norm_w = add1(p, "norm.weight", D, err));
    TRY(m->i_norm_b = add1(p, "norm.bias", D, err));
    TRY(dv2_params_alloc(p, with_grad, err));
    return DV2_OK;
}

void dv2_vit_free(dv2_vit *m) {
    if (!m) return;
    dv2_params_free(&m->params);
    free(m->blk);
    m->blk = NULL;
}

/* PyTorch trunc_normal_(std, a=-2, b=2): the bounds are absolute, so with
 * std 0.02 the draw is N(0, std²) rejected outside ±2 (practically never). */
static float trunc_normal(dv2_rng *r, double std) {
    for (;;) {
        double x = dv2_rng_normal(r) * std;
        if (x >= -2.0 && x <= 2.0) return (float)x;
    }
}

static int fill(dv2_params *p, int i, float *h, int kind, double a, dv2_rng *rng, dv2_error *err) {
    if (i < 0) return DV2_OK;
    size_t n = p->t[i].numel;
    for (size_t k = 0; k < n; k++) {
        switch (kind) {
        case 0: h[k] = (float)a; break;                                   /* constant */
        case 1: h[k] = trunc_normal(rng, a); break;                       /* N(0,a²) ±2 */
        case 2: h[k] = (float)(dv2_rng_normal(rng) * a); break;           /* N(0,a²) */
        default: h[k] = (float)dv2_rng_uniform_range(rng, -a, a); break; /* U(-a,a) */
        }
    }
    return dv2_params_set(p, i, h, err);
}

int dv2_vit_init_weights(dv2_vit *m, dv2_rng *rng, dv2_error *err) {
    dv2_params *p = &m->params;
    size_t mx = 0;
    for (int i = 0; i < p->n; i++) mx = p->t[i].numel > mx ? p->t[i].numel : mx;
    float *h = malloc(sizeof(float) * (mx ? mx : 1));
    if (!h) return dv2_error_set(err, DV2_ENOMEM, "vit: out of memory");
    int P = m->arch.patch_size, rc = 0;
    double bound = 1.0 / sqrt(3.0 * P * P); /* default Conv2d init, fan_in = 3·p·p */
    rc = rc < 0 ? rc : fill(p, m->i_cls, h, 2, 1e-6, rng, err);
    rc = rc < 0 ? rc : fill(p, m->i_pos, h, 1, 0.02, rng, err);
    rc = rc < 0 ? rc : fill(p, m->i_reg, h, 2, 1e-6, rng, err);
    rc = rc < 0 ? rc : fill(p, m->i_mask, h, 0, 0.0, rng, err);
    rc = rc < 0 ? rc : fill(p, m->i_pe_w, h, 3, bound, rng, err);
    rc = rc < 0 ? rc : fill(p, m->i_pe_b, h, 3, bound, rng, err);
    for (int l = 0; l < m->arch.depth && rc >= 0; l++) {
        const dv2_vit_block_idx *b = &m->blk[l];
        int w[4] = {b->qkv_w, b->proj_w, b->fc1_w, b->fc2_w};
        int bs[4] = {b->qkv_b, b->proj_b, b->fc1_b, b->fc2_b};
        rc = rc < 0 ? rc : fill(p, b->norm1_w, h, 0, 1.0, rng, err);
        rc = rc < 0 ? rc : fill(p, b->norm1_b, h, 0, 0.0, rng, err);
        rc = rc < 0 ? rc : fill(p, b->norm2_w, h, 0, 1.0, rng, err);
        rc = rc < 0 ? rc : fill(p, b->norm2_b, h, 0, 0.0, rng, err);
        for (int k = 0; k < 4; k++) {
            rc = rc < 0 ? rc : fill(p, w[k], h, 1, 0.02, rng, err);
            rc = rc < 0 ? rc : fill(p, bs[k], h, 0, 0.0, rng, err);
        }
        rc = rc < 0 ? rc : fill(p, b->ls1, h, 0, m->arch.layerscale_init, rng, err);
        rc = rc < 0 ? rc : fill(p, b->ls2, h, 0, m->arch.layerscale_init, rng, err);
    }
    rc = rc < 0 ? rc : fill(p, m->i_norm_w, h, 0, 1.0, rng, err);
    rc = rc < 0 ? rc : fill(p, m->i_norm_b, h, 0, 0.0, rng, err);
    free(h);
    return rc < 0 ? rc : DV2_OK;
}

int dv2_vit_droppath_k(int b, double rate) {
    int k = (int)floor((double)b * (1.0 - rate));
    return k > 1 ? k : 1;
}

size_t dv2_vit_droppath_len(const dv2_vit_group *g, int n_groups, int depth, double rate) {
    size_t s = 0;
    for (int i = 0; i < n_groups; i++) s += (size_t)dv2_vit_droppath_k(g[i].n_img, rate);
    return s * 2 * (size_t)depth;
}

int dv2_vit_droppath_draw(int *subset, const dv2_vit_group *g, int n_groups, int depth,
                           double rate, dv2_rng *rng) {
    size_t o = 0;
    for (int l = 0; l < depth; l++)
        for (int br = 0; br < 2; br++)
            for (int i = 0; i < n_groups; i++) {
                int b = g[i].n_img, k = dv2_vit_droppath_k(b, rate);
                /* partial Fisher-Yates: the first k of a uniform permutation */
                uint32_t *tmp = malloc(sizeof(uint32_t) * (size_t)b);
                if (!tmp) return DV2_ENOMEM;
                for (int j = 0; j < b; j++) tmp[j] = (uint32_t)j;
                for (int j = 0; j < k; j++) {
                    int r = j + (int)dv2_rng_below(rng, (uint64_t)(b - j));
                    uint32_t t = tmp[j]; tmp[j] = tmp[r]; tmp[r] = t;
                    subset[o + (size_t)j] = (int)tmp[j];
                }
                free(tmp);
                o += (size_t)k;
            }
    return DV2_OK;
}
