/* collapse.c — collapse diagnostics of the DINO targets, the teacher's
 * logits and class tokens, and the last layer's prototypes (collapse.h).
 * Sums in double; the inputs are only read. */
#include "train/collapse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void dv2_collapse_targets(dv2_collapse_stats *st, const float *q, int n, int K, double *work, int *seen) {
    double h = 0;
    memset(work, 0, sizeof(double) * (size_t)K);
    memset(seen, 0, sizeof(int) * (size_t)K);
    int distinct = 0;
    for (int i = 0; i < n; i++) {
        const float *r = q + (size_t)i * K;
        int am = 0;
        for (int k = 0; k < K; k++) {
            double p = r[k];
            if (p > 0) h -= p * log(p);
            work[k] += p;
            if (r[k] > r[am]) am = k;
        }
        if (!seen[am]) seen[am] = 1, distinct++;
    }
    double hm = 0;
    for (int k = 0; k < K; k++) {
        double p = n > 0 ? work[k] / n : 0;
        if (p > 0) hm -= p * log(p);
    }
    st->tgt_entropy = n > 0 ? h / n : 0;
    st->tgt_mean_entropy = hm;
    st->n_argmax = distinct;
}

void dv2_collapse_spread(double *std, double *cos, const float *x, int n, int dim, double *work) {
    *std = 0, *cos = 1;
    if (n < 1 || dim < 1) return;
    /* column means, then the mean of the column standard deviations */
    memset(work, 0, sizeof(double) * (size_t)dim);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < dim; j++) work[j] += x[(size_t)i * dim + j];
    for (int j = 0; j < dim; j++) work[j] /= n;
    double s = 0;
    for (int j = 0; j < dim; j++) {
        double v = 0;
        for (int i = 0; i < n; i++) {
            double e = x[(size_t)i * dim + j] - work[j];
            v += e * e;
        }
        s += sqrt(v / n);
    }
    *std = s / dim;
    if (n < 2) return;
    /* mean pairwise cosine = (|sum u_i|² - sum |u_i|²) / (n(n-1)), u_i = x_i/|x_i| */
    memset(work, 0, sizeof(double) * (size_t)dim);
    int nz = 0;
    for (int i = 0; i < n; i++) {
        const float *r = x + (size_t)i * dim;
        double nn = 0;
        for (int j = 0; j < dim; j++) nn += (double)r[j] * r[j];
        if (nn <= 0) continue;
        nn = 1.0 / sqrt(nn);
        for (int j = 0; j < dim; j++) work[j] += r[j] * nn;
        nz++;
    }
    double ss = 0;
    for (int j = 0; j < dim; j++) ss += work[j] * work[j];
    *cos = (ss - nz) / ((double)n * (n - 1));
}

void dv2_collapse_prototypes(dv2_collapse_stats *st, const float *g, const float *v, int K, int d,
                             double *work) {
    double sg = 0, sg2 = 0;
    for (int k = 0; k < K; k++) sg += fabs(g[k]), sg2 += (double)g[k] * g[k];
    double mean = K > 0 ? sg / K : 0, var = K > 0 ? sg2 / K - mean * mean : 0;
    st->proto_norm_mean = mean;
    st->proto_norm_cv = mean > 0 ? sqrt(var > 0 ? var : 0) / mean : 0;
    /* with u_k = v_k/|v_k|: sum_{k≠l} cos = |sum u|² - K and
     * sum_{k≠l} cos² = |U^T U|_F² - K, U^T U the d × d Gram matrix */
    double *gram = work, *sum = work + (size_t)d * d;
    memset(work, 0, sizeof(double) * ((size_t)d * d + d));
    int nz = 0;
    for (int k = 0; k < K; k++) {
        const float *r = v + (size_t)k * d;
        double nn = 0;
        for (int j = 0; j < d; j++) nn += (double)r[j] * r[j];
        if (nn <= 0) continue;
        nn = 1.0 / nn;
        for (int a = 0; a < d; a++) {
            sum[a] += r[a] * sqrt(nn);
            for (int b = 0; b <= a; b++) gram[(size_t)a * d + b] += (double)r[a] * r[b] * nn;
        }
        nz++;
    }
    double s1 = 0, f2 = 0;
    for (int a = 0; a < d; a++) {
        s1 += sum[a] * sum[a];
        for (int b = 0; b <= a; b++) f2 += (a == b ? 1.0 : 2.0) * gram[(size_t)a * d + b] * gram[(size_t)a * d + b];
    }
    double pairs = (double)K * (K - 1);
    st->proto_cos_mean = K > 1 ? (s1 - nz) / pairs : 1;
    double ms = K > 1 ? (f2 - nz) / pairs : 1;
    st->proto_cos_rms = sqrt(ms > 0 ? ms : 0);
}

struct dv2_collapse {
    int n, K, d, D;
    double *work;
    int *seen;
    float *cls, *g, *v;
};

int dv2_collapse_create(dv2_collapse **out, int n, int K, int d, int D, dv2_error *err) {
    dv2_collapse *c = calloc(1, sizeof *c);
    *out = NULL;
    if (!c) return dv2_error_set(err, DV2_ENOMEM, "train: out of memory");
    c->n = n, c->K = K, c->d = d, c->D = D;
    size_t w = (size_t)d * d + d;
    if (w < (size_t)K) w = K;
    if (w < (size_t)D) w = D;
    c->work = malloc(sizeof(double) * w);
    c->seen = malloc(sizeof(int) * (size_t)K);
    c->cls = malloc(sizeof(float) * (size_t)n * D);
    c->g = malloc(sizeof(float) * (size_t)K);
    c->v = malloc(sizeof(float) * (size_t)K * d);
    if (!c->work || !c->seen || !c->cls || !c->g || !c->v) {
        dv2_collapse_free(c);
        return dv2_error_set(err, DV2_ENOMEM, "train: out of memory for the collapse diagnostics");
    }
    *out = c;
    return 0;
}

void dv2_collapse_free(dv2_collapse *c) {
    if (!c) return;
    free(c->work), free(c->seen), free(c->cls), free(c->g), free(c->v);
    free(c);
}

int dv2_collapse_measure(dv2_collapse *c, dv2_collapse_stats *st, const float *q, const float *t,
                         const float *d_cls, const dv2_head *h, int n, dv2_error *err) {
    memset(st, 0, sizeof *st);
    if (n > c->n || h->a.n_prototypes != c->K || h->a.bottleneck != c->d)
        return dv2_error_set(err, DV2_EINVAL, "train: collapse diagnostics sized for other shapes");
    dv2_collapse_targets(st, q, n, c->K, c->work, c->seen);
    double unused;
    dv2_collapse_spread(&st->logit_std, &unused, t, n, c->K, c->work);
    int rc = h->be->to_host(c->cls, d_cls, sizeof(float) * (size_t)n * c->D);
    if (rc) return dv2_error_set(err, rc < 0 ? rc : DV2_EIO, "train: backend memory operation failed");
    dv2_collapse_spread(&st->cls_std, &st->cls_cos, c->cls, n, c->D, c->work);
    if ((rc = dv2_params_get(&h->params, h->i_g, c->g, err)) || (rc = dv2_params_get(&h->params, h->i_v, c->v, err)))
        return rc;
    dv2_collapse_prototypes(st, c->g, c->v, c->K, c->d, c->work);
    return 0;
}

void dv2_collapse_keys(const dv2_collapse_stats *st, const char **keys, double *vals) {
    static const char *const k[DV2_COLLAPSE_NKEYS] = {
        "tgt_entropy", "tgt_mean_entropy", "n_argmax", "logit_std", "cls_std", "cls_cos",
        "proto_norm_mean", "proto_norm_cv", "proto_cos_mean", "proto_cos_rms"};
    double v[DV2_COLLAPSE_NKEYS] = {st->tgt_entropy, st->tgt_mean_entropy, st->n_argmax, st->logit_std,
                                    st->cls_std, st->cls_cos, st->proto_norm_mean, st->proto_norm_cv,
                                    st->proto_cos_mean, st->proto_cos_rms};
    for (int i = 0; i < DV2_COLLAPSE_NKEYS; i++) keys[i] = k[i], vals[i] = v[i];
}
