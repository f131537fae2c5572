/* config.c — the training config (config.h): one table of keys with their
 * type, field offset, range and help; a line parser; the resolved writer.
 *
 * Reals are written in the shortest form that reads back to the same double,
 * so a resolved config.cfg reloads bit-identically (resume relies on it). */
#include "train/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/afile.h"

enum { K_INT, K_I64, K_REAL, K_BOOL, K_WORD, K_LIST };

typedef struct keydef {
    const char *key;
    int type;
    size_t off;
    size_t size;        /* for words: buffer size */
    double min, max;    /* numeric range (inclusive); lists: each element */
    const char *choices; /* words: "a|b|c", or NULL for free text */
    const char *help;
} keydef;

#define O(f) offsetof(dv2_config, f)
#define I(k, f, lo, hi, h) {k, K_INT, O(f), 0, lo, hi, NULL, h}
#define L(k, f, lo, hi, h) {k, K_I64, O(f), 0, lo, hi, NULL, h}
#define R(k, f, lo, hi, h) {k, K_REAL, O(f), 0, lo, hi, NULL, h}
#define B(k, f, h) {k, K_BOOL, O(f), 0, 0, 1, NULL, h}
#define W(k, f, ch, h) {k, K_WORD, O(f), sizeof(((dv2_config *)0)->f), 0, 0, ch, h}
#define LS(k, f, lo, hi, h) {k, K_LIST, O(f), 0, lo, hi, NULL, h}
#define BIG 1e15

static const keydef keys[] = {
    W("student.arch", student.arch, "vit_small|vit_base|vit_large|vit_giant2|custom",
      "backbone preset (custom: give embed_dim, depth, num_heads)"),
    I("student.patch_size", student.patch_size, 1, 64, "patch side in pixels"),
    I("student.embed_dim", student.embed_dim, 0, 8192, "embedding dimension D (0: from the preset)"),
    I("student.depth", student.depth, 0, 256, "number of blocks L (0: from the preset)"),
    I("student.num_heads", student.num_heads, 0, 256, "attention heads H (0: from the preset)"),
    R("student.drop_path_rate", student.drop_path_rate, 0, 0.99, "stochastic depth rate of the student"),
    B("student.drop_path_uniform", student.drop_path_uniform, "same rate in every block (else linear 0..rate)"),
    R("student.layerscale", student.layerscale, 0, 10, "LayerScale gamma init (0: no LayerScale)"),
    W("student.ffn_layer", student.ffn_layer, "mlp|swiglu|swiglufused", "feed-forward kind"),
    I("student.block_chunks", student.block_chunks, 0, 256, "block chunking of parameter names (0: blocks.N.)"),
    B("student.qkv_bias", student.qkv_bias, "bias in qkv"),
    B("student.proj_bias", student.proj_bias, "bias in the attention projection"),
    B("student.ffn_bias", student.ffn_bias, "bias in the FFN linears"),
    I("student.num_register_tokens", student.num_register_tokens, 0, 64, "register tokens R"),
    B("student.interpolate_antialias", student.interpolate_antialias, "antialiased pos-embed resampling"),
    R("student.interpolate_offset", student.interpolate_offset, 0, 1, "pos-embed resampling offset"),
    W("student.pretrained_weights", student.pretrained_weights, NULL, "safetensors backbone to start from"),
    R("dino.loss_weight", dino.loss_weight, 0, 1e6, "weight of the DINO loss"),
    I("dino.head_n_prototypes", dino.head_n_prototypes, 1, 1 << 24, "DINO prototypes K"),
    I("dino.head_bottleneck_dim", dino.head_bottleneck_dim, 1, 65536, "DINO head bottleneck"),
    I("dino.head_nlayers", dino.head_nlayers, 1, 16, "DINO head MLP layers"),
    I("dino.head_hidden_dim", dino.head_hidden_dim, 1, 65536, "DINO head hidden width"),
    R("dino.koleo_loss_weight", dino.koleo_loss_weight, 0, 1e6, "weight of the KoLeo regularizer"),
    R("ibot.loss_weight", ibot.loss_weight, 0, 1e6, "weight of the iBOT loss"),
    R("ibot.mask_sample_probability", ibot.mask_sample_probability, 0, 1, "fraction of global crops masked"),
    LS("ibot.mask_ratio_min_max", ibot.mask_ratio_min_max, 0, 1, "[min, max] masked patch ratio"),
    B("ibot.separate_head", ibot.separate_head, "iBOT has its own head"),
    I("ibot.head_n_prototypes", ibot.head_n_prototypes, 1, 1 << 24, "iBOT prototypes K_i"),
    I("ibot.head_bottleneck_dim", ibot.head_bottleneck_dim, 1, 65536, "iBOT head bottleneck"),
    I("ibot.head_nlayers", ibot.head_nlayers, 1, 16, "iBOT head MLP layers"),
    I("ibot.head_hidden_dim", ibot.head_hidden_dim, 1, 65536, "iBOT head hidden width"),
    I("train.batch_size_per_gpu", train.batch_size_per_gpu, 1, 1 << 20, "images per rank per step"),
    W("train.dataset_path", train.dataset_path, NULL,
      "training shards; several datasets separated by commas (--data overrides)"),
    I("train.OFFICIAL_EPOCH_LENGTH", train.OFFICIAL_EPOCH_LENGTH, 1, 1 << 30, "iterations per schedule epoch"),
    W("train.centering", train.centering, "centering|sinkhorn_knopp", "teacher target normalization"),
    L("train.seed", train.seed, 0, 9.0e18, "random seed"),
    I("train.num_workers", train.num_workers, 0, 256, "data loading threads (0: one)"),
    B("train.shuffle", train.shuffle, "shuffle the samples (false: rank r reads r, r+W, ... in order)"),
    L("train.max_iters", train.max_iters, 0, BIG, "stop after this many iterations (0: epochs*E)"),
    L("train.checkpoint_period", train.checkpoint_period, 0, BIG, "iterations between checkpoints"),
    I("train.keep_checkpoints", train.keep_checkpoints, 1, 1000, "complete checkpoints kept"),
    I("train.max_bad_steps", train.max_bad_steps, 1, 1 << 30, "stop after this many non-finite steps"),
    L("train.highres_iters", train.highres_iters, 0, BIG, "last N iterations at train.highres_size"),
    I("train.highres_size", train.highres_size, 0, 8192, "global crop side of the high-res phase"),
    I("train.log_period", train.log_period, 1, 1 << 30, "iterations between stderr log lines"),
    B("train.shard_optimizer", train.shard_optimizer,
      "shard the AdamW moments over the ranks (ZeRO-1; the official FSDP SHARD_GRAD_OP shards them too)"),
    B("train.overlap_grad_reduce", train.overlap_grad_reduce,
      "reduce each block's gradient across the ranks while the backward goes on"),
    R("teacher.momentum_teacher", teacher.momentum_teacher, 0, 1, "EMA momentum at the start"),
    R("teacher.final_momentum_teacher", teacher.final_momentum_teacher, 0, 1, "EMA momentum at the end"),
    R("teacher.warmup_teacher_temp", teacher.warmup_teacher_temp, 1e-6, 100, "teacher temperature at it 0"),
    R("teacher.teacher_temp", teacher.teacher_temp, 1e-6, 100, "teacher temperature after warm-up"),
    R("teacher.warmup_teacher_temp_epochs", teacher.warmup_teacher_temp_epochs, 0, 1e9, "temperature warm-up epochs"),
    R("optim.epochs", optim.epochs, 0, 1e9, "schedule length in epochs"),
    R("optim.weight_decay", optim.weight_decay, 0, 100, "weight decay at the start"),
    R("optim.weight_decay_end", optim.weight_decay_end, 0, 100, "weight decay at the end"),
    R("optim.base_lr", optim.base_lr, 0, 100, "learning rate for a batch of 1024"),
    R("optim.lr", optim.lr, 0, 100, "peak learning rate (0: base_lr by the scaling rule)"),
    R("optim.warmup_epochs", optim.warmup_epochs, 0, 1e9, "lr warm-up epochs"),
    R("optim.min_lr", optim.min_lr, 0, 100, "final learning rate"),
    R("optim.clip_grad", optim.clip_grad, 0, 1e9, "max gradient norm per module (0: no clipping)"),
    R("optim.freeze_last_layer_epochs", optim.freeze_last_layer_epochs, 0, 1e9, "epochs with the heads' last layer frozen"),
    W("optim.scaling_rule", optim.scaling_rule, "sqrt_wrt_1024|none", "lr scaling with the global batch"),
    R("optim.patch_embed_lr_mult", optim.patch_embed_lr_mult, 0, 100, "extra lr factor of the patch embed"),
    R("optim.layerwise_decay", optim.layerwise_decay, 0, 1, "layer-wise lr decay rate"),
    R("optim.adamw_beta1", optim.adamw_beta1, 0, 0.999999, "AdamW beta1"),
    R("optim.adamw_beta2", optim.adamw_beta2, 0, 0.999999999, "AdamW beta2"),
    LS("crops.global_crops_scale", crops.global_crops_scale, 1e-6, 1, "[min, max] area of global crops"),
    I("crops.local_crops_number", crops.local_crops_number, 0, 64, "local crops per image"),
    LS("crops.local_crops_scale", crops.local_crops_scale, 1e-6, 1, "[min, max] area of local crops"),
    I("crops.global_crops_size", crops.global_crops_size, 1, 8192, "global crop side"),
    I("crops.local_crops_size", crops.local_crops_size, 1, 8192, "local crop side"),
    B("compute_precision.grad_scaler", compute_precision.grad_scaler, "fp16 loss scaling (GPU)"),
    L("evaluation.eval_period_iterations", evaluation.eval_period_iterations, 0, BIG, "iterations between teacher exports"),
};
#define NKEYS (sizeof keys / sizeof keys[0])

static void copy_word(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src);
}

void dv2_config_defaults(dv2_config *c) {
    memset(c, 0, sizeof *c);
    copy_word(c->student.arch, sizeof c->student.arch, "vit_large");
    c->student.patch_size = 16;
    c->student.drop_path_rate = 0.3;
    c->student.drop_path_uniform = 1;
    c->student.layerscale = 1.0e-5;
    copy_word(c->student.ffn_layer, sizeof c->student.ffn_layer, "mlp");
    c->student.block_chunks = 0;
    c->student.qkv_bias = c->student.proj_bias = c->student.ffn_bias = 1;
    c->student.num_register_tokens = 0;
    c->student.interpolate_antialias = 0;
    c->student.interpolate_offset = 0.1;
    c->dino.loss_weight = 1.0;
    c->dino.head_n_prototypes = 65536;
    c->dino.head_bottleneck_dim = 256;
    c->dino.head_nlayers = 3;
    c->dino.head_hidden_dim = 2048;
    c->dino.koleo_loss_weight = 0.1;
    c->ibot.loss_weight = 1.0;
    c->ibot.mask_sample_probability = 0.5;
    c->ibot.mask_ratio_min_max[0] = 0.1;
    c->ibot.mask_ratio_min_max[1] = 0.5;
    c->ibot.separate_head = 0;
    c->ibot.head_n_prototypes = 65536;
    c->ibot.head_bottleneck_dim = 256;
    c->ibot.head_nlayers = 3;
    c->ibot.head_hidden_dim = 2048;
    c->train.batch_size_per_gpu = 64;
    copy_word(c->train.dataset_path, sizeof c->train.dataset_path, "");
    c->train.OFFICIAL_EPOCH_LENGTH = 1250;
    copy_word(c->train.centering, sizeof c->train.centering, "centering");
    c->train.seed = 0;
    c->train.num_workers = 10;
    c->train.shuffle = 1;
    c->train.max_iters = 0;
    c->train.checkpoint_period = 3750; /* 3 * OFFICIAL_EPOCH_LENGTH (spec §10.5) */
    c->train.keep_checkpoints = 3;
    c->train.max_bad_steps = 10;
    c->train.highres_iters = 0;
    c->train.highres_size = 0;
    c->train.log_period = 10;
    c->train.shard_optimizer = 0; /* the default keeps results of earlier versions */
    c->train.overlap_grad_reduce = 1;
    c->teacher.momentum_teacher = 0.992;
    c->teacher.final_momentum_teacher = 1.0;
    c->teacher.warmup_teacher_temp = 0.04;
    c->teacher.teacher_temp = 0.07;
    c->teacher.warmup_teacher_temp_epochs = 30;
    c->optim.epochs = 100;
    c->optim.weight_decay = 0.04;
    c->optim.weight_decay_end = 0.4;
    c->optim.base_lr = 0.004;
    c->optim.lr = 0;
    c->optim.warmup_epochs = 10;
    c->optim.min_lr = 1.0e-6;
    c->optim.clip_grad = 3.0;
    c->optim.freeze_last_layer_epochs = 1;
    copy_word(c->optim.scaling_rule, sizeof c->optim.scaling_rule, "sqrt_wrt_1024");
    c->optim.patch_embed_lr_mult = 0.2;
    c->optim.layerwise_decay = 0.9;
    c->optim.adamw_beta1 = 0.9;
    c->optim.adamw_beta2 = 0.999;
    c->crops.global_crops_scale[0] = 0.32;
    c->crops.global_crops_scale[1] = 1.0;
    c->crops.local_crops_number = 8;
    c->crops.local_crops_scale[0] = 0.05;
    c->crops.local_crops_scale[1] = 0.32;
    c->crops.global_crops_size = 224;
    c->crops.local_crops_size = 96;
    c->compute_precision.grad_scaler = 1;
    c->evaluation.eval_period_iterations = 12500;
}

static const keydef *find_key(const char *key) {
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].key, key) == 0) return &keys[i];
    return NULL;
}

static int parse_real(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* Trims spaces and one pair of matching quotes in place. */
static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0]) {
        s[n - 1] = 0;
        s++;
    }
    return s;
}

static int in_choices(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

int dv2_config_set(dv2_config *c, const char *key, const char *value, const char *where,
                   dv2_error *err) {
    const keydef *k = find_key(key);
    if (!where) where = "config";
    if (!k) return dv2_error_set(err, DV2_EINVAL, "%s: unknown key '%s'", where, key);
    char buf[512];
    if (strlen(value) >= sizeof buf)
        return dv2_error_set(err, DV2_EINVAL, "%s: %s: value too long", where, key);
    strcpy(buf, value);
    char *v = trim(buf);
    char *field = (char *)c + k->off;
    double d;
    switch (k->type) {
    case K_INT:
    case K_I64: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (end == v || *end || errno == ERANGE) {
            /* accept integral reals such as 1e5 */
            if (parse_real(v, &d) || d != floor(d) || fabs(d) > 9.0e18)
                return dv2_error_set(err, DV2_EINVAL, "%s: %s: '%s' is not an integer", where, key, v);
            x = (long long)d;
        }
        if ((double)x < k->min || (double)x > k->max)
            return dv2_error_set(err, DV2_EINVAL, "%s: %s: %lld outside [%.15g, %.15g]", where, key, x,
                                 k->min, k->max);
        if (k->type == K_INT) *(int *)field = (int)x;
        else *(long long *)field = x;
        return DV2_OK;
    }
    case K_REAL:
        if (parse_real(v, &d))
            return dv2_error_set(err, DV2_EINVAL, "%s: %s: '%s' is not a number", where, key, v);
        if (d < k->min || d > k->max)
            return dv2_error_set(err, DV2_EINVAL, "%s: %s: %g outside [%g, %g]", where, key, d, k->min,
                                 k->max);
        *(double *)field = d;
        return DV2_OK;
    case K_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "1") || !strcmp(v, "yes")) {
            *(int *)field = 1;
        } else if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "0") || !strcmp(v, "no")) {
            *(int *)field = 0;
        } else {
            return dv2_error_set(err, DV2_EINVAL, "%s: %s: '%s' is not true or false", where, key, v);
        }
        return DV2_OK;
    case K_WORD:
        if (k->choices && !in_choices(k->choices, v))
            return dv2_error_set(err, DV2_EINVAL, "%s: %s: '%s' is not one of %s", where, key, v,
                                 k->choices);
        if (strlen(v) >= k->size)
            return dv2_error_set(err, DV2_EINVAL, "%s: %s: value longer than %zu bytes", where, key,
                                 k->size - 1);
        strcpy(field, v);
        return DV2_OK;
    case K_LIST: {
        size_t n = strlen(v);
        if (n < 2 || v[0] != '[' || v[n - 1] != ']')
            return dv2_error_set(err, DV2_EINVAL, "%s: %s: expected a list like [0.1, 0.5]", where, key);
        v[n - 1] = 0;
        char *comma = strchr(v + 1, ',');
        if (!comma || strchr(comma + 1, ','))
            return dv2_error_set(err, DV2_EINVAL, "%s: %s: expected two values", where, key);
        *comma = 0;
        double a, b;
        if (parse_real(trim(v + 1), &a) || parse_real(trim(comma + 1), &b))
            return dv2_error_set(err, DV2_EINVAL, "%s: %s: list values must be numbers", where, key);
        if (a < k->min || b > k->max || a > b)
            return dv2_error_set(err, DV2_EINVAL, "%s: %s: [%g, %g] must be ordered within [%g, %g]",
                                 where, key, a, b, k->min, k->max);
        ((double *)field)[0] = a;
        ((double *)field)[1] = b;
        return DV2_OK;
    }
    }
    return dv2_error_set(err, DV2_EINVAL, "%s: %s: bad key type", where, key);
}

int dv2_config_override(dv2_config *c, const char *assignment, dv2_error *err) {
    const char *eq = strchr(assignment, '=');
    if (!eq) return dv2_error_set(err, DV2_EINVAL, "override '%s': expected key=value", assignment);
    char key[128];
    size_t n = (size_t)(eq - assignment);
    if (n >= sizeof key) return dv2_error_set(err, DV2_EINVAL, "override '%s': key too long", assignment);
    memcpy(key, assignment, n);
    key[n] = 0;
    return dv2_config_set(c, trim(key), eq + 1, "command line", err);
}

int dv2_config_parse(dv2_config *c, const char *text, size_t n, const char *name, dv2_error *err) {
    const char *p = text, *end = text + n;
    int lineno = 0;
    unsigned char seen[NKEYS] = {0};
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        lineno++;
        char line[1024], where[512];
        snprintf(where, sizeof where, "%s:%d", name, lineno);
        if (len >= sizeof line) return dv2_error_set(err, DV2_EINVAL, "%s: line too long", where);
        memcpy(line, p, len);
        line[len] = 0;
        p += len + (nl ? 1 : 0);
        if (memchr(line, 0, len)) return dv2_error_set(err, DV2_EINVAL, "%s: NUL byte in line", where);
        /* a '#' starts a comment unless it sits inside quotes */
        int q = 0;
        for (char *s = line; *s; s++) {
            if (*s == '"' || *s == '\'') q = !q;
            else if (*s == '#' && !q) { *s = 0; break; }
        }
        char *t = trim(line);
        if (!*t) continue;
        char *eq = strchr(t, '=');
        if (!eq) return dv2_error_set(err, DV2_EINVAL, "%s: expected 'key = value'", where);
        *eq = 0;
        char *key = trim(t);
        const keydef *k = find_key(key);
        if (!k) return dv2_error_set(err, DV2_EINVAL, "%s: unknown key '%s'", where, key);
        size_t ki = (size_t)(k - keys);
        if (seen[ki]) return dv2_error_set(err, DV2_EINVAL, "%s: key '%s' set twice", where, key);
        seen[ki] = 1;
        int rc = dv2_config_set(c, key, eq + 1, where, err);
        if (rc) return rc;
    }
    return DV2_OK;
}

int dv2_config_load(dv2_config *c, const char *path, dv2_error *err) {
    char *text = NULL;
    size_t n = 0;
    int rc = dv2_read_file(path, 1 << 20, &text, &n, err);
    if (rc) return rc;
    rc = dv2_config_parse(c, text, n, path, err);
    free(text);
    return rc;
}

/* Shortest "%.Ng" that reads back to the same double. */
static void fmt_real(char *buf, size_t cap, double v) {
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    /* keep reals recognizable as reals */
    if (!strpbrk(buf, ".eEn")) {
        size_t n = strlen(buf);
        if (n + 2 < cap) strcat(buf, ".0");
    }
}

int dv2_config_write(const dv2_config *c, FILE *f) {
    const char *prev = "";
    size_t prevlen = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        const keydef *k = &keys[i];
        const char *dot = strchr(k->key, '.');
        size_t sect = (size_t)(dot - k->key);
        if (sect != prevlen || strncmp(prev, k->key, sect) != 0) {
            if (i) fputc('\n', f);
            fprintf(f, "# %.*s\n", (int)sect, k->key);
            prev = k->key;
            prevlen = sect;
        }
        const char *field = (const char *)c + k->off;
        char a[64], b[64];
        switch (k->type) {
        case K_INT: fprintf(f, "%s = %d\n", k->key, *(const int *)field); break;
        case K_I64: fprintf(f, "%s = %lld\n", k->key, *(const long long *)field); break;
        case K_REAL: fmt_real(a, sizeof a, *(const double *)field); fprintf(f, "%s = %s\n", k->key, a); break;
        case K_BOOL: fprintf(f, "%s = %s\n", k->key, *(const int *)field ? "true" : "false"); break;
        case K_WORD: fprintf(f, "%s = \"%s\"\n", k->key, field); break;
        case K_LIST:
            fmt_real(a, sizeof a, ((const double *)field)[0]);
            fmt_real(b, sizeof b, ((const double *)field)[1]);
            fprintf(f, "%s = [%s, %s]\n", k->key, a, b);
            break;
        }
    }
    return ferror(f) ? DV2_EIO : DV2_OK;
}

int dv2_config_save(const dv2_config *c, const char *path, dv2_error *err) {
    dv2_afile a;
    int rc = dv2_afile_open(&a, path, 1, err);
    if (rc) return rc;
    fprintf(a.f, "# dv2-train resolved configuration\n");
    if (dv2_config_write(c, a.f)) {
        dv2_afile_abort(&a);
        return dv2_error_set(err, DV2_EIO, "%s: write failed", path);
    }
    return dv2_afile_commit(&a, err);
}

int dv2_config_arch(const dv2_config *c, dv2_arch *a, dv2_error *err) {
    int rc;
    if (strcmp(c->student.arch, "custom") == 0) {
        if (!c->student.embed_dim || !c->student.depth || !c->student.num_heads)
            return dv2_error_set(err, DV2_EINVAL,
                                 "student.arch = custom needs student.embed_dim, depth and num_heads");
        rc = dv2_arch_preset(a, "vit_small", err);
        if (rc) return rc;
        snprintf(a->name, sizeof a->name, "custom");
    } else {
        rc = dv2_arch_preset(a, c->student.arch, err);
        if (rc) return rc;
    }
    if (c->student.embed_dim) a->embed_dim = c->student.embed_dim;
    if (c->student.depth) a->depth = c->student.depth;
    if (c->student.num_heads) a->num_heads = c->student.num_heads;
    a->patch_size = c->student.patch_size;
    a->img_size = c->crops.global_crops_size;
    rc = dv2_arch_set_ffn(a, c->student.ffn_layer, err);
    if (rc) return rc;
    a->num_register_tokens = c->student.num_register_tokens;
    a->interpolate_offset = (float)c->student.interpolate_offset;
    a->interpolate_antialias = c->student.interpolate_antialias;
    a->qkv_bias = c->student.qkv_bias;
    a->proj_bias = c->student.proj_bias;
    a->ffn_bias = c->student.ffn_bias;
    a->layerscale_init = (float)c->student.layerscale;
    a->block_chunks = c->student.block_chunks;
    return dv2_arch_validate(a, err);
}

int dv2_config_validate(const dv2_config *c, dv2_error *err) {
    dv2_arch a;
    int rc = dv2_config_arch(c, &a, err);
    if (rc) return dv2_error_prefix(err, "config");
    int p = c->student.patch_size;
    if (c->crops.global_crops_size % p)
        return dv2_error_set(err, DV2_EINVAL, "config: crops.global_crops_size %d is not a multiple of "
                             "student.patch_size %d", c->crops.global_crops_size, p);
    if (c->crops.local_crops_size % p)
        return dv2_error_set(err, DV2_EINVAL, "config: crops.local_crops_size %d is not a multiple of "
                             "student.patch_size %d", c->crops.local_crops_size, p);
    if (c->train.highres_iters && (c->train.highres_size <= 0 || c->train.highres_size % p))
        return dv2_error_set(err, DV2_EINVAL, "config: train.highres_iters needs train.highres_size, a "
                             "multiple of student.patch_size %d", p);
    if (c->student.block_chunks && a.depth % c->student.block_chunks)
        return dv2_error_set(err, DV2_EINVAL, "config: student.block_chunks %d does not divide depth %d",
                             c->student.block_chunks, a.depth);
    if (dv2_config_total_iters(c) <= 0)
        return dv2_error_set(err, DV2_EINVAL, "config: no iterations (optim.epochs = 0 and "
                             "train.max_iters = 0)");
    if (!c->ibot.separate_head && (c->ibot.loss_weight > 0) &&
        c->ibot.head_n_prototypes != c->dino.head_n_prototypes)
        return dv2_error_set(err, DV2_EINVAL, "config: a shared head (ibot.separate_head = false) "
                             "needs ibot.head_n_prototypes = dino.head_n_prototypes");
    if (c->optim.lr == 0 && c->optim.base_lr == 0)
        return dv2_error_set(err, DV2_EINVAL, "config: optim.base_lr is 0");
    return DV2_OK;
}

long long dv2_config_total_iters(const dv2_config *c) {
    if (c->train.max_iters > 0) return c->train.max_iters;
    return (long long)llround(c->optim.epochs * c->train.OFFICIAL_EPOCH_LENGTH);
}

double dv2_config_peak_lr(const dv2_config *c, int world) {
    if (c->optim.lr > 0) return c->optim.lr;
    if (strcmp(c->optim.scaling_rule, "sqrt_wrt_1024") == 0)
        return c->optim.base_lr * sqrt((double)c->train.batch_size_per_gpu * world / 1024.0);
    return c->optim.base_lr;
}

int dv2_config_key(size_t i, dv2_config_keyinfo *out) {
    static const char *tn[] = {"int", "int", "real", "bool", "word", "list"};
    if (i >= NKEYS) return -1;
    out->key = keys[i].key;
    out->type = tn[keys[i].type];
    out->help = keys[i].help;
    return 0;
}
