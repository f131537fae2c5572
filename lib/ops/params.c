/* params.c — flat parameter / gradient buffers with a name table
 * (see params.h). */
#include <stdlib.h>
#include <string.h>
#include "ops/params.h"

void dv2_params_init(dv2_params *p, const dv2_backend *be) {
    memset(p, 0, sizeof *p);
    p->be = be;
}

void dv2_params_free(dv2_params *p) {
    if (!p) return;
    if (p->be) {
        p->be->free(p->be, p->data);
        p->be->free(p->be, p->grad);
        p->be->free(p->be, p->data16);
    }
    free(p->t);
    const dv2_backend *be = p->be;
    memset(p, 0, sizeof *p);
    p->be = be;
}

int dv2_params_add(dv2_params *p, const char *name, int ndim, const int64_t *shape,
                   dv2_error *err) {
    if (p->data)
        return dv2_error_set(err, DV2_EINVAL, "params: %s added after allocation", name);
    if (strlen(name) >= DV2_PARAM_NAME_MAX || ndim < 1 || ndim > DV2_PARAM_MAXDIM)
        return dv2_error_set(err, DV2_EINVAL, "params: bad tensor name or rank: %s", name);
    if (dv2_params_find(p, name) >= 0)
        return dv2_error_set(err, DV2_EINVAL, "params: duplicate tensor %s", name);
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        dv2_param_info *t = realloc(p->t, sizeof *t * (size_t)cap);
        if (!t) return dv2_error_set(err, DV2_ENOMEM, "params: out of memory");
        p->t = t;
        p->cap = cap;
    }
    dv2_param_info *e = &p->t[p->n];
    memset(e, 0, sizeof *e);
    strcpy(e->name, name);
    e->ndim = ndim;
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0 || shape[d] > ((int64_t)1 << 40) || numel > ((size_t)1 << 40))
            return dv2_error_set(err, DV2_EINVAL, "params: bad shape for %s", name);
        e->shape[d] = shape[d];
        numel *= (size_t)shape[d];
    }
    /* keep every tensor 16-float aligned so vector loads and device copies stay aligned */
    e->offset = p->numel;
    e->numel = numel;
    p->numel += (numel + 15) & ~(size_t)15;
    return p->n++;
}

int dv2_params_alloc(dv2_params *p, int with_grad, dv2_error *err) {
    p->data = p->be->alloc(p->be, sizeof(float) * (p->numel ? p->numel : 1));
    if (!p->data) return dv2_error_set(err, DV2_ENOMEM, "params: cannot allocate %zu floats", p->numel);
    if (p->be->weights_bf16) {
        p->data16 = p->be->alloc(p->be, sizeof(dv2_bf16) * (p->numel ? p->numel : 1));
        if (!p->data16) return dv2_error_set(err, DV2_ENOMEM, "params: cannot allocate the bf16 compute copy");
    }
    if (with_grad) {
        p->grad = p->be->alloc(p->be, sizeof(float) * (p->numel ? p->numel : 1));
        if (!p->grad) return dv2_error_set(err, DV2_ENOMEM, "params: cannot allocate gradients");
    }
    return DV2_OK;
}

int dv2_params_find(const dv2_params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->t[i].name, name)) return i;
    return -1;
}

int dv2_params_count(const dv2_params *p) { return p->n; }

const dv2_param_info *dv2_params_info(const dv2_params *p, int i) {
    return i >= 0 && i < p->n ? &p->t[i] : NULL;
}

float *dv2_params_data(const dv2_params *p, int i) {
    return i >= 0 && i < p->n && p->data ? p->data + p->t[i].offset : NULL;
}

float *dv2_params_grad(const dv2_params *p, int i) {
    return i >= 0 && i < p->n && p->grad ? p->grad + p->t[i].offset : NULL;
}

const dv2_bf16 *dv2_params_data16(const dv2_params *p, int i) {
    return i >= 0 && i < p->n && p->data16 ? p->data16 + p->t[i].offset : NULL;
}

int dv2_params_sync16_range(dv2_params *p, size_t off, size_t n, dv2_error *err) {
    if (!p->data16 || !n) return DV2_OK;
    int rc = p->be->to_bf16(p->be, p->data16 + off, p->data + off, n);
    return rc ? dv2_error_set(err, rc < 0 ? rc : DV2_EIO, "params: cannot write the bf16 compute copy on the %s device",
                              p->be->name)
              : DV2_OK;
}

int dv2_params_sync16(dv2_params *p, dv2_error *err) { return dv2_params_sync16_range(p, 0, p->numel, err); }

int dv2_params_zero_grad(dv2_params *p) {
    return p->grad ? p->be->zero(p->be, p->grad, sizeof(float) * p->numel) : DV2_OK;
}

int dv2_params_set(dv2_params *p, int i, const float *h_src, dv2_error *err) {
    if (i < 0 || i >= p->n || !p->data) return dv2_error_set(err, DV2_EINVAL, "params: no tensor %d", i);
    int rc = p->be->to_device(p->be, p->data + p->t[i].offset, h_src, sizeof(float) * p->t[i].numel);
    return rc ? dv2_error_set(err, rc < 0 ? rc : DV2_EIO, "params: cannot copy %s to the %s device", p->t[i].name,
                              p->be->name)
              : dv2_params_sync16_range(p, p->t[i].offset, p->t[i].numel, err);
}

int dv2_params_get(const dv2_params *p, int i, float *h_dst, dv2_error *err) {
    if (i < 0 || i >= p->n || !p->data) return dv2_error_set(err, DV2_EINVAL, "params: no tensor %d", i);
    int rc = p->be->to_host(p->be, h_dst, p->data + p->t[i].offset, sizeof(float) * p->t[i].numel);
    return rc ? dv2_error_set(err, rc < 0 ? rc : DV2_EIO, "params: cannot copy %s from the %s device",
                              p->t[i].name, p->be->name)
              : DV2_OK;
}

int dv2_params_copy(dv2_params *dst, const dv2_params *src, dv2_error *err) {
    if (dst->n != src->n || dst->numel != src->numel)
        return dv2_error_set(err, DV2_EINVAL, "params: copy between different tables");
    for (int i = 0; i < src->n; i++)
        if (strcmp(dst->t[i].name, src->t[i].name) || dst->t[i].numel != src->t[i].numel)
            return dv2_error_set(err, DV2_EINVAL, "params: copy: %s differs", src->t[i].name);
    int rc = dst->be->copy(dst->be, dst->data, src->data, sizeof(float) * src->numel);
    return rc ? dv2_error_set(err, rc < 0 ? rc : DV2_EIO, "params: copy on the %s device failed", dst->be->name)
              : dv2_params_sync16(dst, err);
}
