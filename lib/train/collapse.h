/* collapse.h — what tells the collapse modes of the DINO objective apart,
 * measured on one iteration's teacher outputs (logged by dv2-train next to
 * the losses):
 *
 *   uniform targets     tgt_entropy ≈ tgt_mean_entropy ≈ ln K, and the
 *                       teacher logits barely differ across the batch
 *                       (logit_std ≈ 0, cls_cos ≈ 1);
 *   one prototype wins  tgt_entropy and tgt_mean_entropy ≈ 0, n_argmax = 1;
 *   healthy             tgt_entropy well below tgt_mean_entropy (each image
 *                       sharp, the batch spread over many prototypes) and
 *                       n_argmax a good fraction of the rows.
 *
 * The prototype terms look at the last layer (W_k = g_k v_k/||v_k||):
 * proto_norm_mean/proto_norm_cv are the mean and coefficient of variation
 * of |g_k| (the length of W_k), proto_cos_mean and proto_cos_rms the mean
 * and root mean square of the cosine between two distinct prototypes (for
 * random directions in d dimensions: 0 and about 1/sqrt(d)).
 *
 * All entropies in nats.  Costs O(n K + n D + K d²) per call, a small
 * fraction of a step; reading the values changes nothing in the training. */
#ifndef DV2_COLLAPSE_H
#define DV2_COLLAPSE_H

#include "core/dv2.h"
#include "model/head.h"

typedef struct dv2_collapse_stats {
    double tgt_entropy;      /* mean over rows of H(q_i) */
    double tgt_mean_entropy; /* H(mean_i q_i) */
    int n_argmax;            /* distinct argmax_k q_ik over the rows */
    double logit_std;        /* mean over k of the std over rows of the teacher logits, before centering */
    double cls_std;          /* mean over dimensions of the std over rows of the teacher class tokens */
    double cls_cos;          /* mean cosine between two distinct class tokens */
    double proto_norm_mean, proto_norm_cv;
    double proto_cos_mean, proto_cos_rms;
} dv2_collapse_stats;

/* The stats from the backend's collapse_stats slots (enum dv2_stat). */
void dv2_collapse_from_slots(dv2_collapse_stats *st, const double *slots);

/* The step's hook, for batches of up to n rows, K prototypes of a head of
 * bottleneck d, backbone width D, on backend be. */
typedef struct dv2_collapse dv2_collapse;
int dv2_collapse_create(dv2_collapse **out, const dv2_backend *be, int n, int K, int d, int D,
                        dv2_error *err);
void dv2_collapse_free(dv2_collapse *c); /* NULL allowed */
/* All terms: d_q and d_t (n, K) the targets and raw teacher logits, d_cls
 * (n, D) the teacher class tokens, all on the backend's device; h the
 * teacher head (its prototypes). */
int dv2_collapse_measure(dv2_collapse *c, dv2_collapse_stats *st, const float *d_q, const float *d_t,
                         const float *d_cls, const dv2_head *h, int n, dv2_error *err);

/* The metrics.jsonl keys of the stats, in this order, and their values:
 * writes DV2_COLLAPSE_NKEYS entries to keys and vals. */
#define DV2_COLLAPSE_NKEYS 10
void dv2_collapse_keys(const dv2_collapse_stats *st, const char **keys, double *vals);

#endif
