/* arch.c — presets of the DINOv2 ViT variants, the SwiGLU hidden-size rule
 * and the key/value form of dv2_arch used in weight-file metadata. */
#include "model/arch.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dv2_arch_swiglu_hidden(int nominal_hidden) {
    /* int(h * 2 / 3) in Python on an int h is floor of the exact rational. */
    int h23 = (int)(((long)nominal_hidden * 2) / 3);
    return 8 * ((h23 + 7) / 8);
}

static const struct { const char *name; int dim, depth, heads, ffn; } presets[] = {
    {"vit_small", 384, 12, 6, DV2_FFN_MLP},
    {"vit_base", 768, 12, 12, DV2_FFN_MLP},
    {"vit_large", 1024, 24, 16, DV2_FFN_MLP},
    {"vit_giant2", 1536, 40, 24, DV2_FFN_SWIGLU},
};

static void set_hidden(dv2_arch *a) {
    a->ffn_hidden = a->ffn_kind == DV2_FFN_SWIGLU ? dv2_arch_swiglu_hidden(4 * a->embed_dim)
                                                  : 4 * a->embed_dim;
}

int dv2_arch_preset(dv2_arch *a, const char *name, dv2_error *err) {
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (strcmp(name, presets[i].name) != 0) continue;
        memset(a, 0, sizeof *a);
        snprintf(a->name, sizeof a->name, "%s", presets[i].name);
        a->embed_dim = presets[i].dim;
        a->depth = presets[i].depth;
        a->num_heads = presets[i].heads;
        a->patch_size = 14;
        a->img_size = 224;
        a->in_chans = 3;
        a->ffn_kind = presets[i].ffn;
        set_hidden(a);
        a->num_register_tokens = 0;
        a->interpolate_offset = 0.1f;
        a->interpolate_antialias = 0;
        a->qkv_bias = a->proj_bias = a->ffn_bias = 1;
        a->layerscale_init = 1e-5f;
        a->block_chunks = 0;
        return DV2_OK;
    }
    return dv2_error_set(err, DV2_EINVAL,
                         "unknown architecture '%s' (vit_small, vit_base, vit_large, vit_giant2)", name);
}

int dv2_arch_set_ffn(dv2_arch *a, const char *ffn_layer, dv2_error *err) {
    if (strcmp(ffn_layer, "mlp") == 0) a->ffn_kind = DV2_FFN_MLP;
    else if (strcmp(ffn_layer, "swiglu") == 0 || strcmp(ffn_layer, "swiglufused") == 0)
        a->ffn_kind = DV2_FFN_SWIGLU;
    else
        return dv2_error_set(err, DV2_EINVAL, "unknown ffn_layer '%s' (mlp, swiglu, swiglufused)",
                             ffn_layer);
    set_hidden(a);
    return DV2_OK;
}

void dv2_arch_set_registers(dv2_arch *a, int num_register_tokens) {
    a->num_register_tokens = num_register_tokens;
    a->interpolate_offset = num_register_tokens > 0 ? 0.0f : 0.1f;
    a->interpolate_antialias = num_register_tokens > 0;
}

int dv2_arch_validate(const dv2_arch *a, dv2_error *err) {
    if (a->embed_dim <= 0 || a->embed_dim > 65536)
        return dv2_error_set(err, DV2_EINVAL, "architecture: embed_dim %d out of range", a->embed_dim);
    if (a->depth <= 0 || a->depth > 1024)
        return dv2_error_set(err, DV2_EINVAL, "architecture: depth %d out of range", a->depth);
    if (a->num_heads <= 0 || a->embed_dim % a->num_heads != 0)
        return dv2_error_set(err, DV2_EINVAL, "architecture: num_heads %d does not divide embed_dim %d",
                             a->num_heads, a->embed_dim);
    if (a->patch_size <= 0 || a->patch_size > 1024)
        return dv2_error_set(err, DV2_EINVAL, "architecture: patch_size %d out of range", a->patch_size);
    if (a->img_size <= 0 || a->img_size > 65536 || a->img_size % a->patch_size != 0)
        return dv2_error_set(err, DV2_EINVAL,
                             "architecture: img_size %d is not a positive multiple of patch_size %d",
                             a->img_size, a->patch_size);
    if (a->in_chans <= 0 || a->in_chans > 64)
        return dv2_error_set(err, DV2_EINVAL, "architecture: in_chans %d out of range", a->in_chans);
    if (a->ffn_kind != DV2_FFN_MLP && a->ffn_kind != DV2_FFN_SWIGLU)
        return dv2_error_set(err, DV2_EINVAL, "architecture: unknown ffn kind %d", a->ffn_kind);
    if (a->ffn_hidden <= 0 || a->ffn_hidden > (1 << 20))
        return dv2_error_set(err, DV2_EINVAL, "architecture: ffn_hidden %d out of range", a->ffn_hidden);
    if (a->num_register_tokens < 0 || a->num_register_tokens > 256)
        return dv2_error_set(err, DV2_EINVAL, "architecture: num_register_tokens %d out of range",
                             a->num_register_tokens);
    if (!(a->interpolate_offset >= 0.0f && a->interpolate_offset < 1.0f))
        return dv2_error_set(err, DV2_EINVAL, "architecture: interpolate_offset %g out of [0,1)",
                             (double)a->interpolate_offset);
    if (a->block_chunks < 0 || a->block_chunks > a->depth)
        return dv2_error_set(err, DV2_EINVAL, "architecture: block_chunks %d out of range",
                             a->block_chunks);
    return DV2_OK;
}

int dv2_arch_grid(const dv2_arch *a) { return a->patch_size > 0 ? a->img_size / a->patch_size : 0; }

long dv2_arch_num_patches(const dv2_arch *a) {
    long g = dv2_arch_grid(a);
    return g * g;
}

const char *dv2_arch_ffn_name(int ffn_kind) {
    return ffn_kind == DV2_FFN_SWIGLU ? "swiglufused" : "mlp";
}

static const char *const kv_keys[DV2_ARCH_NKEYS] = {
    "arch", "embed_dim", "depth", "num_heads", "patch_size", "img_size", "in_chans",
    "ffn_layer", "ffn_hidden", "num_register_tokens", "interpolate_offset",
    "interpolate_antialias", "qkv_bias", "proj_bias", "ffn_bias", "layerscale_init",
    "block_chunks",
};

int dv2_arch_to_kv(const dv2_arch *a, const char **keys, char (*vals)[32], int max) {
    int n = 0;
#define KV(fmt, v) do { if (n < max) { keys[n] = kv_keys[n]; snprintf(vals[n], 32, fmt, v); n++; } } while (0)
    KV("%s", a->name[0] ? a->name : "custom");
    KV("%d", a->embed_dim);
    KV("%d", a->depth);
    KV("%d", a->num_heads);
    KV("%d", a->patch_size);
    KV("%d", a->img_size);
    KV("%d", a->in_chans);
    KV("%s", dv2_arch_ffn_name(a->ffn_kind));
    KV("%d", a->ffn_hidden);
    KV("%d", a->num_register_tokens);
    KV("%.9g", (double)a->interpolate_offset);
    KV("%d", a->interpolate_antialias);
    KV("%d", a->qkv_bias);
    KV("%d", a->proj_bias);
    KV("%d", a->ffn_bias);
    KV("%.9g", (double)a->layerscale_init);
    KV("%d", a->block_chunks);
#undef KV
    return n;
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int parse_bool(const char *s, int *out) {
    if (!strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "True")) { *out = 1; return 0; }
    if (!strcmp(s, "0") || !strcmp(s, "false") || !strcmp(s, "False")) { *out = 0; return 0; }
    return -1;
}

int dv2_arch_set_kv(dv2_arch *a, const char *key, const char *val, dv2_error *err) {
    int *ip = NULL, isbool = 0;
    float *fp = NULL;
    if (!strcmp(key, "arch")) {
        if (strlen(val) >= sizeof a->name)
            return dv2_error_set(err, DV2_EINVAL, "architecture: arch name too long");
        snprintf(a->name, sizeof a->name, "%s", val);
        return 1;
    }
    if (!strcmp(key, "ffn_layer")) {
        /* recomputes ffn_hidden from embed_dim; an explicit ffn_hidden key
         * (written after ffn_layer) overrides it */
        int rc = dv2_arch_set_ffn(a, val, err);
        return rc < 0 ? rc : 1;
    }
    if (!strcmp(key, "embed_dim")) ip = &a->embed_dim;
    else if (!strcmp(key, "depth")) ip = &a->depth;
    else if (!strcmp(key, "num_heads")) ip = &a->num_heads;
    else if (!strcmp(key, "patch_size")) ip = &a->patch_size;
    else if (!strcmp(key, "img_size")) ip = &a->img_size;
    else if (!strcmp(key, "in_chans")) ip = &a->in_chans;
    else if (!strcmp(key, "ffn_hidden")) ip = &a->ffn_hidden;
    else if (!strcmp(key, "num_register_tokens")) ip = &a->num_register_tokens;
    else if (!strcmp(key, "block_chunks")) ip = &a->block_chunks;
    else if (!strcmp(key, "interpolate_antialias")) { ip = &a->interpolate_antialias; isbool = 1; }
    else if (!strcmp(key, "qkv_bias")) { ip = &a->qkv_bias; isbool = 1; }
    else if (!strcmp(key, "proj_bias")) { ip = &a->proj_bias; isbool = 1; }
    else if (!strcmp(key, "ffn_bias")) { ip = &a->ffn_bias; isbool = 1; }
    else if (!strcmp(key, "interpolate_offset")) fp = &a->interpolate_offset;
    else if (!strcmp(key, "layerscale_init")) fp = &a->layerscale_init;
    else return 0;
    if (ip) {
        int rc = isbool ? parse_bool(val, ip) : parse_int(val, 0, 1 << 24, ip);
        if (rc < 0) return dv2_error_set(err, DV2_EINVAL, "architecture: bad value '%s' for %s", val, key);
        return 1;
    }
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || end == val || *end || !isfinite(v))
        return dv2_error_set(err, DV2_EINVAL, "architecture: bad value '%s' for %s", val, key);
    *fp = (float)v;
    return 1;
}
