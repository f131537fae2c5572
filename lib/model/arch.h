/* arch.h — the architecture of a DINOv2 ViT backbone as one plain struct,
 * the presets of the released variants (vit_small/base/large/giant2) and the
 * SwiGLU hidden-size rule.
 *
 * dv2_arch is the one description of a backbone shared by the model code
 * (lib/vit.*), the weight files (lib/safetensors.*: written to and read from
 * the safetensors "__metadata__", or inferred from tensor shapes) and the
 * programs.  The model code takes its sizes from here; it does not keep a
 * second copy of them.
 *
 * Fields are plain ints/floats so the struct can be copied, compared and
 * serialized field by field (dv2_arch_to_kv / dv2_arch_set_kv). */
#ifndef DV2_ARCH_H
#define DV2_ARCH_H

#include "core/dv2.h"

enum {
    DV2_FFN_MLP = 0,    /* fc1 D->4D, exact GELU, fc2 4D->D ("mlp") */
    DV2_FFN_SWIGLU = 1, /* w12 D->2h', SiLU(x1)*x2, w3 h'->D ("swiglufused", "swiglu") */
};

typedef struct dv2_arch {
    char name[32];             /* "vit_small", "vit_base", "vit_large", "vit_giant2" or "custom" */
    int embed_dim;             /* D */
    int depth;                 /* L, number of blocks */
    int num_heads;             /* H; D/H = 64 for every released variant */
    int patch_size;            /* p */
    int img_size;              /* side of the image the pos_embed table was built for */
    int in_chans;              /* 3 */
    int ffn_kind;              /* DV2_FFN_MLP or DV2_FFN_SWIGLU */
    int ffn_hidden;            /* hidden width: 4D for MLP, h' for SwiGLU (dv2_arch_swiglu_hidden) */
    int num_register_tokens;   /* R: 0 or 4 */
    float interpolate_offset;  /* 0.1 (no registers) or 0.0 (registers) */
    int interpolate_antialias; /* 0 or 1 */
    int qkv_bias, proj_bias, ffn_bias; /* 1 in every released model */
    float layerscale_init;     /* LayerScale gamma init (1e-5 training, 1.0 hub) */
    int block_chunks;          /* 0 = names blocks.N., c>0 = blocks.<chunk>.N. */
} dv2_arch;

/* SwiGLU hidden size for a nominal hidden h = 4D: 8*floor((int(2h/3)+7)/8).
 * ViT-S 1024, ViT-B 2048, ViT-L 2736, ViT-g 4096. */
int dv2_arch_swiglu_hidden(int nominal_hidden);

/* Fills a with the preset `name` (vit_small, vit_base, vit_large, vit_giant2)
 * as built for training: patch 14, img_size 224, MLP FFN except giant2
 * (SwiGLU), no registers, offset 0.1, antialias 0, layerscale 1e-5,
 * block_chunks 0.  DV2_EINVAL for an unknown name. */
int dv2_arch_preset(dv2_arch *a, const char *name, dv2_error *err);

/* Sets the FFN kind from a config word ("mlp", "swiglu", "swiglufused") and
 * recomputes ffn_hidden from embed_dim. */
int dv2_arch_set_ffn(dv2_arch *a, const char *ffn_layer, dv2_error *err);

/* Registers on/off with the interpolation mode that goes with them in the
 * released models: R>0 => offset 0, antialias 1; R=0 => offset 0.1, antialias 0. */
void dv2_arch_set_registers(dv2_arch *a, int num_register_tokens);

/* Checks the struct: positive sizes within sane bounds, D % H == 0,
 * img_size % patch_size == 0, known ffn kind.  DV2_EINVAL with a reason. */
int dv2_arch_validate(const dv2_arch *a, dv2_error *err);

/* Patch grid side of the stored pos_embed (img_size / patch_size) and the
 * number of its patch entries (side^2). */
int dv2_arch_grid(const dv2_arch *a);
long dv2_arch_num_patches(const dv2_arch *a);
const char *dv2_arch_ffn_name(int ffn_kind); /* "mlp" / "swiglufused" */

/* Serialization as string key/value pairs (the safetensors metadata).
 * dv2_arch_to_kv writes up to max pairs (keys and values point into static
 * tables or into vals, a caller buffer of max*32 chars); returns the count.
 * Keys: arch, embed_dim, depth, num_heads, patch_size, img_size, in_chans,
 * ffn_layer, ffn_hidden, num_register_tokens, interpolate_offset,
 * interpolate_antialias, qkv_bias, proj_bias, ffn_bias, layerscale_init,
 * block_chunks. */
#define DV2_ARCH_NKEYS 17
int dv2_arch_to_kv(const dv2_arch *a, const char **keys, char (*vals)[32], int max);
/* Sets one field from a key/value pair.  Returns 1 if the key was known and
 * parsed, 0 if the key is not an architecture key, DV2_EINVAL on a bad value. */
int dv2_arch_set_kv(dv2_arch *a, const char *key, const char *val, dv2_error *err);

#endif
