/* weights.c — official DINOv2 backbone names and the architecture of a
 * weight file (see weights.h). */
#include "model/weights.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* Length of the run of digits at s (0 if none). */
static size_t digits(const char *s) {
    size_t k = 0;
    while (isdigit((unsigned char)s[k])) k++;
    return k;
}

int dv2_weights_canonical_name(char *out, size_t outsz, const char *name) {
    const char *s = name;
    int backbone = 1;
    if (starts(s, "module.")) s += 7;
    if (starts(s, "teacher.backbone.") || starts(s, "student.backbone.")) s += 8;
    if (starts(s, "backbone.")) s += 9;
    else if (starts(s, "dino_head.") || starts(s, "ibot_head.") || starts(s, "teacher.") ||
             starts(s, "student."))
        backbone = 0;
    size_t n = strlen(s);
    if (n + 1 > outsz) return DV2_EINVAL;
    memcpy(out, s, n + 1);
    /* blocks.<chunk>.<index>.rest -> blocks.<index>.rest */
    if (backbone && starts(out, "blocks.")) {
        char *a = out + 7;
        size_t da = digits(a);
        if (da && a[da] == '.') {
            char *b = a + da + 1;
            size_t db = digits(b);
            if (db && b[db] == '.') memmove(a, b, strlen(b) + 1);
        }
    }
    return backbone;
}

const dv2_safetensors_tensor *dv2_weights_find(const dv2_safetensors_file *f, const char *name) {
    char want[512], c[512];
    if (dv2_weights_canonical_name(want, sizeof want, name) != 1) return NULL;
    const dv2_safetensors_tensor *t = dv2_safetensors_find(f, want);
    if (t) return t;
    for (size_t i = 0; i < dv2_safetensors_count(f); i++) {
        t = dv2_safetensors_at(f, i);
        if (dv2_weights_canonical_name(c, sizeof c, t->name) == 1 && !strcmp(c, want)) return t;
    }
    return NULL;
}

/* Index N of a canonical "blocks.N." name, or -1. */
static long block_index(const char *c) {
    if (!starts(c, "blocks.")) return -1;
    size_t d = digits(c + 7);
    if (!d || d > 6 || c[7 + d] != '.') return -1;
    return strtol(c + 7, NULL, 10);
}

/* Chunk index of a chunked stored name ("...blocks.<chunk>.<N>."), or -1. */
static long chunk_index(const char *name) {
    const char *p = strstr(name, "blocks.");
    if (!p || (p != name && p[-1] != '.')) return -1;
    p += 7;
    size_t da = digits(p);
    if (!da || da > 6 || p[da] != '.') return -1;
    size_t db = digits(p + da + 1);
    if (!db || p[da + 1 + db] != '.') return -1;
    return strtol(p, NULL, 10);
}

int dv2_weights_infer_arch(const dv2_safetensors_file *f, dv2_arch *a, dv2_error *err) {
    const char *P = dv2_safetensors_path(f);
    const dv2_safetensors_tensor *cls = NULL, *pe = NULL, *pos = NULL, *reg = NULL, *w12 = NULL,
                                 *fc1 = NULL;
    int qkv_bias = 0, proj_bias = 0, ffn_bias = 0;
    long depth = -1, chunks_seen[64], nchunks = 0;
    char c[512];
    memset(a, 0, sizeof *a);
    for (size_t i = 0; i < dv2_safetensors_count(f); i++) {
        const dv2_safetensors_tensor *t = dv2_safetensors_at(f, i);
        if (dv2_weights_canonical_name(c, sizeof c, t->name) != 1) continue;
        long b = block_index(c);
        if (b > depth) depth = b;
        long ch = chunk_index(t->name);
        if (ch >= 0) {
            int seen = 0;
            for (long k = 0; k < nchunks; k++) seen |= chunks_seen[k] == ch;
            if (!seen && nchunks < 64) chunks_seen[nchunks++] = ch;
        }
        if (!strcmp(c, "cls_token")) cls = t;
        else if (!strcmp(c, "patch_embed.proj.weight")) pe = t;
        else if (!strcmp(c, "pos_embed")) pos = t;
        else if (!strcmp(c, "register_tokens")) reg = t;
        else if (!strcmp(c, "blocks.0.mlp.w12.weight")) w12 = t;
        else if (!strcmp(c, "blocks.0.mlp.fc1.weight")) fc1 = t;
        else if (!strcmp(c, "blocks.0.attn.qkv.bias")) qkv_bias = 1;
        else if (!strcmp(c, "blocks.0.attn.proj.bias")) proj_bias = 1;
        else if (!strcmp(c, "blocks.0.mlp.fc1.bias") || !strcmp(c, "blocks.0.mlp.w12.bias")) ffn_bias = 1;
    }
    if (!cls) return dv2_error_set(err, DV2_ECORRUPT, "%s: no cls_token: not a DINOv2 backbone", P);
    if (cls->ndim != 3 || cls->shape[0] != 1 || cls->shape[1] != 1 || cls->shape[2] <= 0)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: cls_token is not [1, 1, D]", P);
    int64_t D = cls->shape[2];
    if (D > 65536) return dv2_error_set(err, DV2_ECORRUPT, "%s: embed dim %lld out of range", P, (long long)D);
    a->embed_dim = (int)D;
    if (depth < 0) return dv2_error_set(err, DV2_ECORRUPT, "%s: no blocks.N. tensors", P);
    a->depth = (int)depth + 1;
    if (D % 64) return dv2_error_set(err, DV2_ECORRUPT,
                                     "%s: embed dim %lld is not a multiple of 64: num_heads cannot be "
                                     "inferred (store it in the metadata)", P, (long long)D);
    a->num_heads = (int)(D / 64);
    if (!pe || pe->ndim != 4 || pe->shape[0] != D || pe->shape[2] != pe->shape[3] || pe->shape[2] <= 0 ||
        pe->shape[1] <= 0 || pe->shape[1] > 64 || pe->shape[2] > 1024)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: patch_embed.proj.weight missing or not [D, C, p, p]", P);
    a->in_chans = (int)pe->shape[1];
    a->patch_size = (int)pe->shape[2];
    if (!pos || pos->ndim != 3 || pos->shape[0] != 1 || pos->shape[2] != D || pos->shape[1] < 2)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: pos_embed missing or not [1, 1+N, D]", P);
    int64_t n0 = pos->shape[1] - 1, g = (int64_t)llround(sqrt((double)n0));
    if (g * g != n0 || g > 65536 / a->patch_size)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: pos_embed holds %lld patch positions, not a square grid", P,
                             (long long)n0);
    a->img_size = (int)(g * a->patch_size);
    if (reg) {
        if (reg->ndim != 3 || reg->shape[0] != 1 || reg->shape[2] != D || reg->shape[1] > 256)
            return dv2_error_set(err, DV2_ECORRUPT, "%s: register_tokens is not [1, R, D]", P);
        dv2_arch_set_registers(a, (int)reg->shape[1]);
    } else dv2_arch_set_registers(a, 0);
    if (w12) {
        if (w12->ndim != 2 || w12->shape[1] != D || w12->shape[0] % 2 || w12->shape[0] > (2 << 20))
            return dv2_error_set(err, DV2_ECORRUPT, "%s: blocks.0.mlp.w12.weight is not [2h, D]", P);
        a->ffn_kind = DV2_FFN_SWIGLU;
        a->ffn_hidden = (int)(w12->shape[0] / 2);
    } else if (fc1) {
        if (fc1->ndim != 2 || fc1->shape[1] != D || fc1->shape[0] > (1 << 20))
            return dv2_error_set(err, DV2_ECORRUPT, "%s: blocks.0.mlp.fc1.weight is not [h, D]", P);
        a->ffn_kind = DV2_FFN_MLP;
        a->ffn_hidden = (int)fc1->shape[0];
    } else
        return dv2_error_set(err, DV2_ECORRUPT, "%s: neither blocks.0.mlp.w12.weight nor blocks.0.mlp.fc1.weight", P);
    a->qkv_bias = qkv_bias;
    a->proj_bias = proj_bias;
    a->ffn_bias = ffn_bias;
    a->layerscale_init = 1.0f;
    a->block_chunks = (int)nchunks;
    snprintf(a->name, sizeof a->name, "custom");
    static const char *const names[] = {"vit_small", "vit_base", "vit_large", "vit_giant2"};
    for (int k = 0; k < 4; k++) {
        dv2_arch p;
        dv2_arch_preset(&p, names[k], NULL);
        if (p.embed_dim == a->embed_dim && p.depth == a->depth) snprintf(a->name, sizeof a->name, "%s", names[k]);
    }
    return dv2_arch_validate(a, err);
}

int dv2_weights_arch(const dv2_safetensors_file *f, dv2_arch *a, dv2_error *err) {
    const char *P = dv2_safetensors_path(f);
    dv2_arch inf;
    dv2_error ierr;
    dv2_error_clear(&ierr);
    int irc = dv2_weights_infer_arch(f, &inf, &ierr);
    if (!dv2_safetensors_meta(f, "embed_dim")) {
        if (irc < 0) return dv2_error_set(err, irc, "%s", ierr.msg);
        *a = inf;
        return DV2_OK;
    }
    if (irc == 0) *a = inf;
    else {
        memset(a, 0, sizeof *a);
        snprintf(a->name, sizeof a->name, "custom");
        a->in_chans = 3;
        a->qkv_bias = a->proj_bias = a->ffn_bias = 1;
        a->layerscale_init = 1.0f;
        dv2_arch_set_registers(a, 0);
    }
    /* the interpolation mode follows the registers unless stated */
    for (size_t i = 0; i < dv2_safetensors_meta_count(f); i++) {
        int rc = dv2_arch_set_kv(a, dv2_safetensors_meta_key(f, i), dv2_safetensors_meta_val(f, i), err);
        if (rc < 0) return dv2_error_prefix(err, "%s: metadata", P);
    }
    if (irc == 0) {
        const char *what = NULL;
        if (a->embed_dim != inf.embed_dim) what = "embed_dim";
        else if (a->depth != inf.depth) what = "depth";
        else if (a->patch_size != inf.patch_size) what = "patch_size";
        else if (a->img_size != inf.img_size) what = "img_size";
        else if (a->num_register_tokens != inf.num_register_tokens) what = "num_register_tokens";
        else if (a->ffn_kind != inf.ffn_kind || a->ffn_hidden != inf.ffn_hidden) what = "ffn_layer/ffn_hidden";
        if (what) return dv2_error_set(err, DV2_ECORRUPT, "%s: metadata %s disagrees with the tensor shapes", P, what);
    }
    int rc = dv2_arch_validate(a, err);
    return rc < 0 ? dv2_error_prefix(err, "%s", P) : rc;
}

int dv2_weights_check_finite(const float *v, size_t n, const char *path, const char *name,
                             dv2_error *err) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return dv2_error_set(err, DV2_ECORRUPT,
                                 "%s: tensor %s: element %zu is %s: the weights are not usable "
                                 "(a diverged training run?)",
                                 path, name, i, isnan(v[i]) ? "NaN" : "infinite");
    return DV2_OK;
}

int dv2_weights_write(const char *path, int force, const dv2_safetensors_entry *t, size_t n,
                               const dv2_arch *arch, const char *const *extra_keys,
                               const char *const *extra_vals, size_t nextra, dv2_error *err) {
    const char *keys[DV2_ARCH_NKEYS + 1];
    char vals[DV2_ARCH_NKEYS][32];
    int nk = dv2_arch_to_kv(arch, keys, vals, DV2_ARCH_NKEYS);
    size_t total = (size_t)nk + 1 + nextra;
    const char **mk = calloc(total, sizeof *mk), **mv = calloc(total, sizeof *mv);
    if (!mk || !mv) { free(mk); free(mv); return dv2_error_set(err, DV2_ENOMEM, "out of memory"); }
    size_t m = 0;
    mk[m] = "format"; mv[m++] = "dv2";
    for (int i = 0; i < nk; i++) { mk[m] = keys[i]; mv[m++] = vals[i]; }
    for (size_t i = 0; i < nextra; i++) { mk[m] = extra_keys[i]; mv[m++] = extra_vals[i]; }
    int rc = dv2_safetensors_write(path, force, t, n, mk, mv, m, err);
    free(mk);
    free(mv);
    return rc;
}
