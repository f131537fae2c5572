/* teacher.c — finding, checking and loading the frozen teacher of
 * dv2-distill (teacher.h). */
#include "train/teacher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/hash.h"
#include "model/weights.h"
#include "model/weights_load.h"
#include "train/ckpt.h"

static const dv2_safetensors_tensor *find2(const dv2_safetensors_file *f, const char *prefix, const char *name) {
    char nm[256];
    snprintf(nm, sizeof nm, "%s%s", prefix, name);
    return dv2_safetensors_find(f, nm);
}

/* The head architecture stored under prefix (MLP depth and widths from the
 * shapes; the prototype count is the config's, checked against the tensors
 * in dv2_teacher_load).  DV2_ENOTFOUND when there is no such head. */
static int head_arch(dv2_head_arch *h, const dv2_safetensors_file *f, const char *prefix, int in_dim, int K) {
    const dv2_safetensors_tensor *v = find2(f, prefix, "last_layer.weight_v"), *w0 = find2(f, prefix, "mlp.0.weight"),
                                 *w1 = find2(f, prefix, "mlp.weight");
    if (!v || v->ndim != 2 || (!w0 && !w1)) return DV2_ENOTFOUND;
    memset(h, 0, sizeof *h);
    h->in_dim = in_dim;
    h->n_prototypes = K;
    h->bottleneck = (int)v->shape[1];
    h->l2_eps = 1e-6f;
    if (w1) {
        h->nlayers = 1;
        h->hidden_dim = h->bottleneck;
    } else {
        h->hidden_dim = w0->ndim == 2 ? (int)w0->shape[0] : 1;
        h->nlayers = find2(f, prefix, "mlp.4.weight") ? 3 : find2(f, prefix, "mlp.2.weight") ? 2 : 1;
    }
    return 0;
}

int dv2_teacher_open(dv2_teacher *t, const char *source, const dv2_config *c, dv2_error *err) {
    memset(t, 0, sizeof *t);
    struct stat st;
    if (stat(source, &st) != 0) return dv2_error_set(err, DV2_ENOTFOUND, "teacher %s: no such file or directory", source);
    dv2_safetensors_file *f = NULL;
    int rc, ckpt = 0;
    if (S_ISDIR(st.st_mode)) {
        int64_t step;
        if ((rc = dv2_ckpt_open_latest(&f, source, &step, NULL, err)))
            return dv2_error_prefix(err, "teacher (a dv2-train run directory needs a checkpoint)");
        ckpt = 1;
    } else {
        if ((rc = dv2_safetensors_open(&f, source, err))) return dv2_error_prefix(err, "teacher");
        const char *fmt = dv2_safetensors_meta(f, "format");
        ckpt = fmt && strcmp(fmt, "dv2-checkpoint") == 0;
    }
    snprintf(t->path, sizeof t->path, "%s", dv2_safetensors_path(f));
    const char *pre[DV2_TM_N] = {"", "dino_head.", "ibot_head."};
    if (ckpt) pre[0] = "teacher.backbone.", pre[1] = "teacher.dino_head.", pre[2] = "teacher.ibot_head.";
    for (int k = 0; k < DV2_TM_N; k++) snprintf(t->prefix[k], sizeof t->prefix[k], "%s", pre[k]);
    if (ckpt) { /* the run's resolved config describes its teacher */
        const char *text = dv2_safetensors_meta(f, "config");
        dv2_config tc;
        dv2_config_defaults(&tc);
        if (!text || !*text) rc = dv2_error_set(err, DV2_ECORRUPT, "teacher %s: checkpoint without its config", t->path);
        else if ((rc = dv2_config_parse(&tc, text, strlen(text), t->path, err)) ||
                 (rc = dv2_config_arch(&tc, &t->arch.arch, err)))
            dv2_error_prefix(err, "teacher");
        if (rc) goto out;
    } else if ((rc = dv2_weights_arch(f, &t->arch.arch, err))) {
        dv2_error_prefix(err, "teacher %s", t->path);
        goto out;
    }
    const dv2_arch *a = &t->arch.arch;
    if (a->patch_size != c->student.patch_size) {
        rc = dv2_error_set(err, DV2_EINVAL, "teacher %s: patch size %d, student.patch_size %d (the iBOT loss "
                           "compares the patch tokens one to one)", t->path, a->patch_size, c->student.patch_size);
        goto out;
    }
    if (head_arch(&t->arch.dino, f, t->prefix[1], a->embed_dim, c->dino.head_n_prototypes)) {
        rc = dv2_error_set(err, DV2_EINVAL, "teacher %s: no DINO head (%slast_layer.weight_v, %smlp.*); a teacher "
                           "needs its heads: a dv2-train run directory or safetensors with dino_head.*",
                           t->path, t->prefix[1], t->prefix[1]);
        goto out;
    }
    int has_ibot = head_arch(&t->arch.ibot, f, t->prefix[2], a->embed_dim, c->ibot.head_n_prototypes) == 0;
    if (has_ibot != (c->ibot.separate_head != 0)) {
        rc = dv2_error_set(err, DV2_EINVAL, "teacher %s: %s, but ibot.separate_head = %s", t->path,
                           has_ibot ? "has a separate iBOT head" : "has no separate iBOT head (ibot_head.*)",
                           c->ibot.separate_head ? "true" : "false");
        goto out;
    }
out:
    dv2_safetensors_close(f);
    return rc;
}

int dv2_teacher_load(const dv2_teacher *t, dv2_train_model *m, uint64_t *digest, dv2_error *err) {
    dv2_safetensors_file *f = NULL;
    int rc = dv2_safetensors_open(&f, t->path, err);
    if (rc) return dv2_error_prefix(err, "teacher");
    static const char *hint[DV2_TM_N] = {"", " (dino.head_n_prototypes)", " (ibot.head_n_prototypes)"};
    dv2_xxh64_state s;
    dv2_xxh64_init(&s, 0);
    /* a plain backbone file: any name form dv2_weights_find knows */
    for (int k = 0; !rc && k < m->n_mod; k++) {
        const char *prefix = k == 0 && !t->prefix[0][0] ? NULL : t->prefix[k];
        int bad;
        rc = dv2_weights_load(m->t_mod[k], f, prefix, "the config", &s, &bad, err);
        if (rc && err && bad >= 0 && strstr(m->t_mod[k]->t[bad].name, "last_layer") && hint[k][0]) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            dv2_error_set(err, rc, "%s%s", msg, hint[k]);
        }
        if (rc) dv2_error_prefix(err, "teacher");
    }
    if (rc == 0) *digest = dv2_xxh64_digest(&s);
    dv2_safetensors_close(f);
    return rc < 0 ? rc : 0;
}
