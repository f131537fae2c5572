/* config.h — the training configuration of dv2-train (and dv2-distill):
 * the official DINOv2 keys (student.*, dino.*, ibot.*, train.*, teacher.*,
 * optim.*, crops.*, ...) with the official defaults of ssl_default_config.yaml
 * (spec §1.1), plus a few keys of our own (student.embed_dim/depth/num_heads
 * for custom sizes, train.max_iters, train.checkpoint_period, ...).
 *
 * Text form, one setting per line:
 *     # comment
 *     student.arch = vit_large
 *     crops.global_crops_scale = [0.32, 1.0]
 * Values: integers, reals, booleans (true/false), words, or lists of two
 * reals in brackets.  Unknown keys, repeated keys in one file, bad values and
 * values outside a key's range are errors naming "file:line".  Command-line
 * overrides use the same `key=value` form.  dv2_config_write prints every key
 * (the resolved config), which reads back to the same struct. */
#ifndef DV2_CONFIG_H
#define DV2_CONFIG_H

#include <stdio.h>
#include "model/arch.h"
#include "core/dv2.h"

#define DV2_CFG_STR 64

typedef struct dv2_config {
    struct {
        char arch[DV2_CFG_STR];    /* vit_small, vit_base, vit_large, vit_giant2, custom */
        int patch_size;
        int embed_dim, depth, num_heads; /* ours: 0 = from the arch preset */
        double drop_path_rate;
        int drop_path_uniform;
        double layerscale;
        char ffn_layer[DV2_CFG_STR]; /* mlp, swiglu, swiglufused */
        int block_chunks;
        int qkv_bias, proj_bias, ffn_bias;
        int num_register_tokens;
        int interpolate_antialias;
        double interpolate_offset;
        char pretrained_weights[256]; /* ours: safetensors to start from ("" = none) */
    } student;
    struct {
        double loss_weight;
        int head_n_prototypes, head_bottleneck_dim, head_nlayers, head_hidden_dim;
        double koleo_loss_weight;
    } dino;
    struct {
        double loss_weight;
        double mask_sample_probability;
        double mask_ratio_min_max[2];
        int separate_head;
        int head_n_prototypes, head_bottleneck_dim, head_nlayers, head_hidden_dim;
    } ibot;
    struct {
        int batch_size_per_gpu;
        char dataset_path[4096]; /* one dataset, or several separated by commas */
        int OFFICIAL_EPOCH_LENGTH;
        char centering[DV2_CFG_STR]; /* centering, sinkhorn_knopp */
        long long seed;
        int num_workers;
        int shuffle;                  /* ours: 0 = every rank reads r, r+W, ... in order */
        long long max_iters;          /* ours: 0 = optim.epochs * OFFICIAL_EPOCH_LENGTH */
        long long checkpoint_period;  /* ours: iterations between checkpoints (0 = only at exit) */
        int keep_checkpoints;         /* ours: complete checkpoints kept */
        int max_bad_steps;            /* ours: stop after this many non-finite steps */
        long long highres_iters;      /* ours: last N iterations at crops.highres_size */
        int highres_size;             /* ours: global crop side of that phase */
        int log_period;               /* ours: iterations between metric lines */
        int shard_optimizer;          /* ours: ZeRO-1, AdamW moments sharded over the ranks */
        int overlap_grad_reduce;      /* ours: start each block's reduction in the backward */
    } train;
    struct {
        double momentum_teacher, final_momentum_teacher;
        double warmup_teacher_temp, teacher_temp;
        double warmup_teacher_temp_epochs;
    } teacher;
    struct {
        double epochs;
        double weight_decay, weight_decay_end;
        double base_lr;
        double lr;                    /* 0 = derived by the scaling rule */
        double warmup_epochs;
        double min_lr;
        double clip_grad;
        double freeze_last_layer_epochs;
        char scaling_rule[DV2_CFG_STR]; /* sqrt_wrt_1024, none */
        double patch_embed_lr_mult;
        double layerwise_decay;
        double adamw_beta1, adamw_beta2;
    } optim;
    struct {
        double global_crops_scale[2];
        int local_crops_number;
        double local_crops_scale[2];
        int global_crops_size, local_crops_size;
    } crops;
    struct {
        int grad_scaler; /* accepted for compatibility; the CPU step is fp32 */
    } compute_precision;
    struct {
        long long eval_period_iterations;
    } evaluation;
} dv2_config;

/* The official defaults (ssl_default_config.yaml) and our keys' defaults. */
void dv2_config_defaults(dv2_config *c);

/* Sets one key from its text value.  where ("file:line", "command line") is
 * used in messages.  DV2_EINVAL for an unknown key or a bad value. */
int dv2_config_set(dv2_config *c, const char *key, const char *value, const char *where,
                   dv2_error *err);
/* One "key=value" (or "key = value") override. */
int dv2_config_override(dv2_config *c, const char *assignment, dv2_error *err);
/* Applies the lines of text[0..n) (name used in messages). */
int dv2_config_parse(dv2_config *c, const char *text, size_t n, const char *name, dv2_error *err);
/* Reads and applies a config file. */
int dv2_config_load(dv2_config *c, const char *path, dv2_error *err);

/* Cross-key checks (crop sizes divisible by the patch, ranges ordered, the
 * architecture valid, ...).  Call after all files and overrides. */
int dv2_config_validate(const dv2_config *c, dv2_error *err);

/* Writes every key as `key = value`, grouped by section.  0 or DV2_EIO. */
int dv2_config_write(const dv2_config *c, FILE *f);
/* Writes the resolved config atomically to path. */
int dv2_config_save(const dv2_config *c, const char *path, dv2_error *err);

/* The backbone architecture the config describes (preset + overrides, image
 * size = crops.global_crops_size). */
int dv2_config_arch(const dv2_config *c, dv2_arch *a, dv2_error *err);

/* Derived quantities (spec §1.2). */
long long dv2_config_total_iters(const dv2_config *c); /* max_iters or epochs*E */
double dv2_config_peak_lr(const dv2_config *c, int world); /* scaling rule applied */

/* The key table, for --help listings and the man page. */
typedef struct dv2_config_keyinfo {
    const char *key;
    const char *type; /* "int", "real", "bool", "word", "list" */
    const char *help;
} dv2_config_keyinfo;
int dv2_config_key(size_t i, dv2_config_keyinfo *out); /* 0, or -1 past the end */

#endif
