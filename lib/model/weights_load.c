/* weights_load.c — copying a weight file's tensors into model parameters
 * under one set of rules (weights_load.h). */
#include "model/weights_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void shape_str(char *buf, size_t cap, const int64_t *shape, int ndim) {
    size_t n = (size_t)snprintf(buf, cap, "(");
    for (int d = 0; d < ndim && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (n < cap) snprintf(buf + n, cap - n, ")");
}

/* The same shape once leading 1s are dropped from both. */
static int same_shape(const int64_t *a, int na, size_t numel_a, const int64_t *b, int nb, size_t numel_b) {
    int ia = 0, ib = 0;
    while (ia < na - 1 && a[ia] == 1) ia++;
    while (ib < nb - 1 && b[ib] == 1) ib++;
    if (na - ia != nb - ib || numel_a != numel_b) return 0;
    for (int d = 0; d < na - ia; d++)
        if (a[ia + d] != b[ib + d]) return 0;
    return 1;
}

static const dv2_safetensors_tensor *lookup(const dv2_safetensors_file *f, const char *prefix, const char *name) {
    if (!prefix) return dv2_weights_find(f, name);
    char nm[640], canon[512];
    snprintf(nm, sizeof nm, "%s%s", prefix, name);
    const dv2_safetensors_tensor *t = dv2_safetensors_find(f, nm);
    if (t || dv2_weights_canonical_name(canon, sizeof canon, name) != 1 || !strcmp(canon, name)) return t;
    snprintf(nm, sizeof nm, "%s%s", prefix, canon);
    return dv2_safetensors_find(f, nm);
}

int dv2_weights_load(dv2_params *p, const dv2_safetensors_file *f, const char *prefix,
                     const char *needs, dv2_xxh64_state *digest, int *bad, dv2_error *err) {
    const char *P = dv2_safetensors_path(f);
    int n = dv2_params_count(p), rc = DV2_OK, at = -1;
    if (bad) *bad = -1;
    const dv2_safetensors_tensor **src = calloc(n > 0 ? (size_t)n : 1, sizeof *src);
    if (!src) return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", P);
    size_t mx = 1;
    for (int i = 0; i < n && !rc; i++) {
        const dv2_param_info *pi = dv2_params_info(p, i);
        const dv2_safetensors_tensor *t = lookup(f, prefix, pi->name);
        char want[128], got[128];
        shape_str(want, sizeof want, pi->shape, pi->ndim);
        if (!t) {
            if (!strcmp(pi->name, "mask_token")) continue;
            rc = dv2_error_set(err, DV2_ECORRUPT, "%s: tensor %s%s is missing, %s needs it %s", P,
                               prefix ? prefix : "", pi->name, needs, want);
        } else if (!same_shape(t->shape, t->ndim, t->numel, pi->shape, pi->ndim, pi->numel)) {
            shape_str(got, sizeof got, t->shape, t->ndim);
            rc = dv2_error_set(err, DV2_ECORRUPT, "%s: tensor %s is %s, %s needs %s", P, t->name, got, needs, want);
        }
        if (rc) at = i;
        src[i] = t;
        if (pi->numel > mx) mx = pi->numel;
    }
    float *h = rc ? NULL : dv2_malloc_array(mx, sizeof *h);
    if (!rc && !h) rc = dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", P);
    for (int i = 0; i < n && !rc; i++) {
        if (!src[i]) continue;
        const dv2_param_info *pi = dv2_params_info(p, i);
        rc = dv2_safetensors_read_f32(f, src[i], h, pi->numel, err);
        if (!rc) rc = dv2_weights_check_finite(h, pi->numel, P, src[i]->name, err);
        if (!rc) rc = dv2_params_set(p, i, h, err);
        if (rc) at = i;
        else if (digest) dv2_xxh64_update(digest, h, pi->numel * sizeof *h);
    }
    if (bad) *bad = at;
    free(h);
    free(src);
    return rc < 0 ? rc : DV2_OK;
}
