/* head.c — the DINO / iBOT projection head (spec §3) on the op table:
 * Linear → GELU → Linear → GELU → Linear → L2 normalize → weight-normed
 * Linear without bias. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/head.h"

int dv2_head_init(dv2_head *h, const dv2_head_arch *a, const dv2_backend *be, int with_grad,
                  dv2_error *err) {
    memset(h, 0, sizeof *h);
    if (a->in_dim < 1 || a->bottleneck < 1 || a->n_prototypes < 1 || a->nlayers < 1 ||
        a->nlayers > 3 || (a->nlayers > 1 && a->hidden_dim < 1) || a->in_dim > (1 << 20) ||
        a->hidden_dim > (1 << 20) || a->bottleneck > (1 << 20) || a->n_prototypes > (1 << 24))
        return dv2_error_set(err, DV2_EINVAL,
                             "head: bad sizes (in %d, hidden %d, bottleneck %d, K %d, nlayers %d)",
                             a->in_dim, a->hidden_dim, a->bottleneck, a->n_prototypes, a->nlayers);
    h->a = *a;
    h->be = be;
    dv2_params_init(&h->params, be);
    int rc = 0;
    for (int k = 0; k < 3; k++) h->i_w[k] = h->i_b[k] = -1;
    for (int k = 0; k < a->nlayers && rc >= 0; k++) {
        int in = k == 0 ? a->in_dim : a->hidden_dim;
        int out = k == a->nlayers - 1 ? a->bottleneck : a->hidden_dim;
        char nw[64], nb[64];
        if (a->nlayers == 1) {
            snprintf(nw, sizeof nw, "mlp.weight");
            snprintf(nb, sizeof nb, "mlp.bias");
        } else {
            snprintf(nw, sizeof nw, "mlp.%d.weight", 2 * k);
            snprintf(nb, sizeof nb, "mlp.%d.bias", 2 * k);
        }
        int64_t sw[2] = {out, in}, sb[1] = {out};
        rc = h->i_w[k] = dv2_params_add(&h->params, nw, 2, sw, err);
        if (rc >= 0) rc = h->i_b[k] = dv2_params_add(&h->params, nb, 1, sb, err);
    }
    int64_t sg[2] = {a->n_prototypes, 1}, sv[2] = {a->n_prototypes, a->bottleneck};
    if (rc >= 0) rc = h->i_g = dv2_params_add(&h->params, "last_layer.weight_g", 2, sg, err);
    if (rc >= 0) rc = h->i_v = dv2_params_add(&h->params, "last_layer.weight_v", 2, sv, err);
    if (rc >= 0) rc = dv2_params_alloc(&h->params, with_grad, err);
    if (rc < 0) {
        dv2_head_free(h);
        return rc;
    }
    return DV2_OK;
}

void dv2_head_free(dv2_head *h) {
    if (h) dv2_params_free(&h->params);
}

int dv2_head_init_weights(dv2_head *h, dv2_rng *rng, dv2_error *err) {
    dv2_params *p = &h->params;
    size_t mx = 0;
    for (int i = 0; i < p->n; i++) mx = p->t[i].numel > mx ? p->t[i].numel : mx;
    float *buf = malloc(sizeof(float) * mx);
    if (!buf) return dv2_error_set(err, DV2_ENOMEM, "head: out of memory");
    int rc = 0;
    for (int k = 0; k < h->a.nlayers && rc >= 0; k++) {
        size_t n = p->t[h->i_w[k]].numel;
        for (size_t i = 0; i < n; i++) {
            double x;
            do x = dv2_rng_normal(rng) * 0.02; while (x < -2.0 || x > 2.0);
            buf[i] = (float)x;
        }
        rc = dv2_params_set(p, h->i_w[k], buf, err);
        if (rc >= 0) {
            memset(buf, 0, sizeof(float) * p->t[h->i_b[k]].numel);
            rc = dv2_params_set(p, h->i_b[k], buf, err);
        }
    }
    if (rc >= 0) {
        double bound = 1.0 / sqrt((double)h->a.bottleneck);
        size_t n = p->t[h->i_v].numel;
        for (size_t i = 0; i < n; i++) buf[i] = (float)dv2_rng_uniform_range(rng, -bound, bound);
        rc = dv2_params_set(p, h->i_v, buf, err);
    }
    if (rc >= 0) {
        for (size_t i = 0; i < p->t[h->i_g].numel; i++) buf[i] = 1.0f;
        rc = dv2_params_set(p, h->i_g, buf, err);
    }
    free(buf);
    return rc < 0 ? rc : DV2_OK;
}

struct dv2_head_pass {
    dv2_head *h;
    int max_rows, flags, n;
    const float *x;             /* input of the last forward (train) */
    float *pre[3], *act[2];     /* linear outputs, GELU outputs */
    float *z, *norm, *w, *vnorm;
    float *dz, *dpre, *dact[2], *dw; /* dact: the GELU outputs' gradients, layer by layer in turn */
};

void dv2_head_pass_free(dv2_head_pass *ps) {
    if (!ps) return;
    const dv2_backend *be = ps->h->be;
    float *b[] = {ps->pre[0], ps->pre[1], ps->pre[2], ps->act[0], ps->act[1], ps->z, ps->norm,
                  ps->w, ps->vnorm, ps->dz, ps->dpre, ps->dact[0], ps->dact[1], ps->dw};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) be->free(be, b[i]);
    free(ps);
}

int dv2_head_pass_create(dv2_head_pass **out, dv2_head *h, int max_rows, int flags,
                         dv2_error *err) {
    *out = NULL;
    if (max_rows < 1) return dv2_error_set(err, DV2_EINVAL, "head: max_rows %d", max_rows);
    if ((flags & DV2_HEAD_TRAIN) && !h->params.grad)
        return dv2_error_set(err, DV2_EINVAL, "head: training pass on a head without gradients");
    dv2_head_pass *ps = calloc(1, sizeof *ps);
    if (!ps) return dv2_error_set(err, DV2_ENOMEM, "head: out of memory");
    ps->h = h;
    ps->max_rows = max_rows;
    ps->flags = flags;
    const dv2_backend *be = h->be;
    const dv2_head_arch *a = &h->a;
    size_t R = (size_t)max_rows, wide = (size_t)(a->hidden_dim > a->bottleneck ? a->hidden_dim : a->bottleneck);
    int ok = 1;
#define A(p, n) do { (p) = be->alloc(be, sizeof(float) * (n)); ok = ok && (p); } while (0)
    for (int k = 0; k < a->nlayers; k++)
        A(ps->pre[k], R * (k == a->nlayers - 1 ? (size_t)a->bottleneck : (size_t)a->hidden_dim));
    for (int k = 0; k + 1 < a->nlayers; k++) A(ps->act[k], R * (size_t)a->hidden_dim);
    A(ps->z, R * a->bottleneck);
    A(ps->norm, R);
    A(ps->w, (size_t)a->n_prototypes * a->bottleneck);
    A(ps->vnorm, (size_t)a->n_prototypes);
    if (flags & DV2_HEAD_TRAIN) {
        A(ps->dz, R * a->bottleneck);
        A(ps->dpre, R * wide);
        for (int j = 0; j < 2 && a->nlayers > 1; j++) A(ps->dact[j], R * (size_t)a->hidden_dim);
        A(ps->dw, (size_t)a->n_prototypes * a->bottleneck);
    }
#undef A
    if (!ok) {
        dv2_head_pass_free(ps);
        return dv2_error_set(err, DV2_ENOMEM, "head: cannot allocate pass buffers");
    }
    *out = ps;
    return DV2_OK;
}

#define HD(i) dv2_params_data(&h->params, (i))
#define HG(i) dv2_params_grad(&h->params, (i))
#define H16(i) dv2_params_data16(&h->params, (i)) /* the bf16 compute copy, or NULL */

int dv2_head_pass_forward(dv2_head_pass *ps, float *logits, const float *x, int n,
                          dv2_error *err) {
    dv2_head *h = ps->h;
    const dv2_head_arch *a = &h->a;
    const dv2_backend *be = h->be;
    if (n < 0 || n > ps->max_rows)
        return dv2_error_set(err, DV2_EINVAL, "head: %d rows (max %d)", n, ps->max_rows);
    ps->n = n;
    ps->x = x;
    const float *in = x;
    int din = a->in_dim;
    for (int k = 0; k < a->nlayers; k++) {
        int dout = k == a->nlayers - 1 ? a->bottleneck : a->hidden_dim;
        if (k + 1 < a->nlayers) { /* bias+GELU epilogue, pre-activation kept */
            be->linear_forward(be, ps->act[k], ps->pre[k], in, HD(h->i_w[k]), H16(h->i_w[k]), HD(h->i_b[k]), n,
                               din, dout, DV2_LINEAR_GELU);
            in = ps->act[k];
        } else {
            be->linear_forward(be, ps->pre[k], NULL, in, HD(h->i_w[k]), H16(h->i_w[k]), HD(h->i_b[k]), n, din,
                               dout, 0);
        }
        din = dout;
    }
    be->l2norm_forward(be, ps->z, ps->norm, ps->pre[a->nlayers - 1], n, a->bottleneck, a->l2_eps);
    be->weightnorm_forward(be, ps->w, ps->vnorm, HD(h->i_v), HD(h->i_g), a->n_prototypes, a->bottleneck);
    be->linear_forward(be, logits, NULL, ps->z, ps->w, NULL, NULL, n, a->bottleneck, a->n_prototypes, 0);
    return dv2_backend_check(be, "head forward", err);
}

int dv2_head_pass_backward(dv2_head_pass *ps, float *dx, const float *dlogits, dv2_error *err) {
    dv2_head *h = ps->h;
    const dv2_head_arch *a = &h->a;
    const dv2_backend *be = h->be;
    if (!(ps->flags & DV2_HEAD_TRAIN))
        return dv2_error_set(err, DV2_EINVAL, "head: backward of a pass created without DV2_HEAD_TRAIN");
    int n = ps->n, bn = a->bottleneck, K = a->n_prototypes, hd = a->hidden_dim;
    be->zero(be, ps->dw, sizeof(float) * (size_t)K * bn);
    be->linear_backward(be, ps->dz, ps->dw, NULL, NULL, dlogits, NULL, ps->z, ps->w, NULL, n, bn, K, 0);
    be->weightnorm_backward(be, HG(h->i_v), HG(h->i_g), ps->dw, HD(h->i_v), HD(h->i_g), ps->vnorm, K, bn);
    /* dpre of the last linear */
    be->zero(be, ps->dpre, sizeof(float) * (size_t)n * bn);
    be->l2norm_backward(be, ps->dpre, ps->dz, ps->pre[a->nlayers - 1], ps->norm, n, bn, a->l2_eps);
    /* g: the gradient of layer k's output, its pre-activation for the last
     * layer, its GELU output for the others, whose dGELU the backward's
     * epilogue forms in dpre; din overwrites (dx accumulates: the caller may
     * sum several heads into it), so the GELU gradients alternate between
     * two buffers */
    const float *g = ps->dpre;
    for (int k = a->nlayers - 1; k >= 0; k--) {
        int dout = k == a->nlayers - 1 ? bn : hd, gelu = k < a->nlayers - 1;
        int din = k == 0 ? a->in_dim : hd;
        const float *in = k == 0 ? ps->x : ps->act[k - 1];
        float *d = k == 0 ? dx : ps->dact[k & 1];
        be->linear_backward(be, d, HG(h->i_w[k]), HG(h->i_b[k]), gelu ? ps->dpre : NULL, g,
                            gelu ? ps->pre[k] : NULL, in, HD(h->i_w[k]), H16(h->i_w[k]), n, din, dout,
                            (k == 0 ? DV2_LINEAR_ACCUMULATE : 0) | (gelu ? DV2_LINEAR_GELU : 0));
        g = d;
    }
    return dv2_backend_check(be, "head backward", err);
}
