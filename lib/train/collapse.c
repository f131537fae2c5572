/* collapse.c — collapse diagnostics of the DINO targets, the teacher's
 * logits and class tokens, and the last layer's prototypes (collapse.h).
 * The sums run on the backend (its collapse_stats entry); one small vector
 * of doubles comes back to the host per call. */
#include "train/collapse.h"

#include <stdlib.h>
#include <string.h>

struct dv2_collapse {
    const dv2_backend *be;
    int n, K, d, D;
    double *d_out; /* DV2_STATS_N doubles on the device */
};

int dv2_collapse_create(dv2_collapse **out, const dv2_backend *be, int n, int K, int d, int D,
                        dv2_error *err) {
    dv2_collapse *c = calloc(1, sizeof *c);
    *out = NULL;
    if (!c) return dv2_error_set(err, DV2_ENOMEM, "train: out of memory");
    c->be = be, c->n = n, c->K = K, c->d = d, c->D = D;
    c->d_out = be->alloc(be, sizeof(double) * DV2_STATS_N);
    if (!c->d_out) {
        dv2_collapse_free(c);
        return dv2_error_set(err, DV2_ENOMEM, "train: out of memory for the collapse diagnostics");
    }
    *out = c;
    return 0;
}

void dv2_collapse_free(dv2_collapse *c) {
    if (!c) return;
    c->be->free(c->be, c->d_out);
    free(c);
}

void dv2_collapse_from_slots(dv2_collapse_stats *st, const double *v) {
    st->tgt_entropy = v[DV2_STAT_TGT_ENTROPY];
    st->tgt_mean_entropy = v[DV2_STAT_TGT_MEAN_ENTROPY];
    st->n_argmax = (int)v[DV2_STAT_N_ARGMAX];
    st->logit_std = v[DV2_STAT_LOGIT_STD];
    st->cls_std = v[DV2_STAT_CLS_STD];
    st->cls_cos = v[DV2_STAT_CLS_COS];
    st->proto_norm_mean = v[DV2_STAT_PROTO_NORM_MEAN];
    st->proto_norm_cv = v[DV2_STAT_PROTO_NORM_CV];
    st->proto_cos_mean = v[DV2_STAT_PROTO_COS_MEAN];
    st->proto_cos_rms = v[DV2_STAT_PROTO_COS_RMS];
}

int dv2_collapse_measure(dv2_collapse *c, dv2_collapse_stats *st, const float *d_q, const float *d_t,
                         const float *d_cls, const dv2_head *h, int n, dv2_error *err) {
    const dv2_backend *be = c->be;
    memset(st, 0, sizeof *st);
    if (n > c->n || h->a.n_prototypes != c->K || h->a.bottleneck != c->d)
        return dv2_error_set(err, DV2_EINVAL, "train: collapse diagnostics sized for other shapes");
    double v[DV2_STATS_N];
    int rc = be->collapse_stats(be, c->d_out, d_q, d_t, d_cls, dv2_params_data(&h->params, h->i_g),
                                dv2_params_data(&h->params, h->i_v), n, c->K, c->D, c->d);
    if (!rc) rc = be->to_host(be, v, c->d_out, sizeof v);
    if (rc) return dv2_error_set(err, rc < 0 ? rc : DV2_EIO, "train: the collapse diagnostics failed");
    dv2_collapse_from_slots(st, v);
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
