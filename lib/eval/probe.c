/* probe.c — the k-NN classifier against an in-memory (or mapped) training
 * set, its neighbours from the exact search of lib/search/knn.h, and the
 * training side shared with retrieval (probe_retr.c).  Definitions and
 * orders: probe.h. */
#include "eval/probe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { DEFAULT_DB_BLOCK = 4096 };

int dv2_probe_normalize(float *x, size_t n, size_t dim, uint64_t first_row, const char *name,
                        dv2_error *err) {
    int64_t bad = -1;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float *r = x + i * dim;
        double s = 0;
        for (size_t j = 0; j < dim; j++) s += (double)r[j] * r[j];
        if (!isfinite(s)) {
#pragma omp critical
            if (bad < 0 || (int64_t)i < bad) bad = (int64_t)i;
            continue;
        }
        if (s > 0) {
            float inv = (float)(1.0 / sqrt(s));
            for (size_t j = 0; j < dim; j++) r[j] *= inv;
        }
    }
    if (bad >= 0)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: row %llu: non-finite value in the vector",
                             name, (unsigned long long)(first_row + (uint64_t)bad));
    return DV2_OK;
}

int dv2_probe_db_init(dv2_probe_db *db, const float *x, size_t n, size_t dim, size_t ld,
                      const int32_t *labels, const uint64_t *ids, const char *name,
                      dv2_error *err) {
    memset(db, 0, sizeof *db);
    db->x = x;
    db->n = n;
    db->dim = dim;
    db->ld = ld;
    db->labels = labels;
    db->ids = ids;
    db->db_block = DEFAULT_DB_BLOCK;
    db->max_label = -1;
    db->inv_norm = dv2_malloc_array(n ? n : 1, sizeof(float));
    if (!db->inv_norm) return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", name);
    int64_t bad = -1, unlabelled = -1;
    int32_t maxl = -1;
#pragma omp parallel for schedule(static) reduction(max : maxl)
    for (size_t i = 0; i < n; i++) {
        const float *r = x + i * ld;
        double s = 0;
        for (size_t j = 0; j < dim; j++) s += (double)r[j] * r[j];
        if (!isfinite(s) || labels[i] < 0) {
#pragma omp critical
            {
                if (!isfinite(s) && (bad < 0 || (int64_t)i < bad)) bad = (int64_t)i;
                if (labels[i] < 0 && (unlabelled < 0 || (int64_t)i < unlabelled))
                    unlabelled = (int64_t)i;
            }
        }
        db->inv_norm[i] = s > 0 && isfinite(s) ? (float)(1.0 / sqrt(s)) : 0.0f;
        if (labels[i] > maxl) maxl = labels[i];
    }
    db->max_label = maxl;
    dv2_vecsrc_rows(&db->src, x, (int64_t)n, (int)dim, ld, db->inv_norm);
    if (bad >= 0) {
        dv2_probe_db_free(db);
        return dv2_error_set(err, DV2_ECORRUPT, "%s: row %lld (id %llu): non-finite value in the vector",
                             name, (long long)bad, (unsigned long long)ids[bad]);
    }
    if (unlabelled >= 0) {
        dv2_probe_db_free(db);
        return dv2_error_set(err, DV2_ECORRUPT, "%s: row %lld (id %llu) has no label (%d)", name,
                             (long long)unlabelled, (unsigned long long)ids[unlabelled],
                             labels[unlabelled]);
    }
    return DV2_OK;
}

static const int32_t *sort_labels; /* qsort has no context argument; set around the call */
static int cmp_by_label(const void *a, const void *b) {
    int64_t ra = *(const int64_t *)a, rb = *(const int64_t *)b;
    int32_t la = sort_labels[ra], lb = sort_labels[rb];
    if (la != lb) return la < lb ? -1 : 1;
    return ra < rb ? -1 : ra > rb;
}

int dv2_probe_db_group_labels(dv2_probe_db *db, dv2_error *err) {
    free(db->by_label);
    db->by_label = dv2_malloc_array(db->n ? db->n : 1, sizeof(int64_t));
    if (!db->by_label) return dv2_error_set(err, DV2_ENOMEM, "out of memory grouping labels");
    for (size_t i = 0; i < db->n; i++) db->by_label[i] = (int64_t)i;
    sort_labels = db->labels;
    qsort(db->by_label, db->n, sizeof(int64_t), cmp_by_label);
    sort_labels = NULL;
    return DV2_OK;
}

void dv2_probe_db_free(dv2_probe_db *db) {
    if (!db) return;
    free(db->inv_norm);
    free(db->by_label);
    memset(db, 0, sizeof *db);
}

/* ---- k-NN classifier ------------------------------------------------------------------ */

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int dv2_probe_knn_init(dv2_probe_knn *s, const dv2_probe_db *db, const int *ks, int nk,
                       double temperature, int uniform, int backend, dv2_error *err) {
    memset(s, 0, sizeof *s);
    if (nk < 1 || nk > DV2_PROBE_MAX_KS)
        return dv2_error_set(err, DV2_EINVAL, "k-NN: between 1 and %d values of k", DV2_PROBE_MAX_KS);
    if (!(temperature > 0))
        return dv2_error_set(err, DV2_EINVAL, "k-NN: temperature must be > 0");
    if (db->n == 0) return dv2_error_set(err, DV2_EINVAL, "k-NN: the training set is empty");
    if ((int64_t)db->max_label + 1 > DV2_PROBE_MAX_CLASSES)
        return dv2_error_set(err, DV2_EINVAL, "k-NN: labels up to %d are supported (found %d)",
                             DV2_PROBE_MAX_CLASSES - 1, db->max_label);
    memcpy(s->ks, ks, (size_t)nk * sizeof(int));
    qsort(s->ks, (size_t)nk, sizeof(int), cmp_int);
    for (int i = 0; i < nk; i++)
        if (s->ks[i] < 1) return dv2_error_set(err, DV2_EINVAL, "k-NN: k must be >= 1");
    s->nk = nk;
    s->kmax = s->ks[nk - 1] < (int64_t)db->n ? s->ks[nk - 1] : (int)db->n;
    s->temperature = temperature;
    s->uniform = uniform;
    s->nclass = db->max_label + 1;
    dv2_knn_opts o;
    dv2_knn_opts_default(&o);
    o.backend = backend;
    o.db_block = (int64_t)(db->db_block ? db->db_block : DEFAULT_DB_BLOCK);
    return dv2_knn_create(&s->engine, &db->src, &o, err);
}

void dv2_probe_knn_free(dv2_probe_knn *s) {
    if (!s) return;
    dv2_knn_free(s->engine);
    s->engine = NULL;
}

int dv2_probe_knn_block(dv2_probe_knn *s, const dv2_probe_db *db, const float *q, size_t nq,
                        const int32_t *labels, uint64_t first_row, const char *name,
                        dv2_error *err) {
    for (size_t i = 0; i < nq; i++)
        if (labels[i] < 0)
            return dv2_error_set(err, DV2_ECORRUPT, "%s: row %llu has no label (%d)", name,
                                 (unsigned long long)(first_row + i), labels[i]);
    if (nq == 0) return DV2_OK;
    int K = s->kmax, C = s->nclass;
    float *sim = dv2_malloc_array(nq * (size_t)K, sizeof(float));
    int64_t *row = dv2_malloc_array(nq * (size_t)K, sizeof(int64_t));
    int rc = DV2_OK;
    if (!sim || !row) rc = dv2_error_set(err, DV2_ENOMEM, "k-NN: out of memory");
    if (!rc) rc = dv2_knn_search(s->engine, sim, row, q, (int64_t)nq, K, -INFINITY, -1, err);
    uint64_t top1[DV2_PROBE_MAX_KS] = {0}, top5[DV2_PROBE_MAX_KS] = {0};
    int nomem = 0;
    if (!rc) {
#pragma omp parallel
        {
            double *score = calloc((size_t)C, sizeof(double));
            unsigned char *seen = calloc((size_t)C, 1);
            int *touched = malloc((size_t)K * sizeof(int));
            uint64_t t1[DV2_PROBE_MAX_KS] = {0}, t5[DV2_PROBE_MAX_KS] = {0};
            if (!score || !seen || !touched) {
#pragma omp atomic write
                nomem = 1;
            } else {
#pragma omp for schedule(static)
                for (size_t i = 0; i < nq; i++) {
                    const float *si = sim + i * (size_t)K;
                    const int64_t *ri = row + i * (size_t)K;
                    int y = labels[i], nt = 0, ki = 0;
                    for (int j = 0; j < K && ki < s->nk; j++) {
                        /* softmax(sim/T): the shared normaliser does not change
                         * the ranking of classes, so it is left out. */
                        double w = s->uniform ? 1.0 : exp(((double)si[j] - si[0]) / s->temperature);
                        int c = db->labels[ri[j]];
                        if (!seen[c]) {
                            seen[c] = 1;
                            touched[nt++] = c;
                        }
                        score[c] += w;
                        while (ki < s->nk && (s->ks[ki] <= j + 1 || j + 1 == K)) {
                            /* classes ahead of y: higher score, or equal and lower index */
                            int best = touched[0], ahead = 0, below = 0;
                            double sy = y < C ? score[y] : -1;
                            for (int t = 0; t < nt; t++) {
                                int ct = touched[t];
                                if (score[ct] > score[best] || (score[ct] == score[best] && ct < best))
                                    best = ct;
                                if (score[ct] > sy || (score[ct] == sy && ct < y)) ahead++;
                                if (ct < y) below++;
                            }
                            if (y < C && !seen[y]) ahead += y - below; /* untouched lower classes tie at 0 */
                            if (best == y) t1[ki]++;
                            if (y < C && ahead < 5) t5[ki]++;
                            ki++;
                        }
                    }
                    for (int t = 0; t < nt; t++) {
                        score[touched[t]] = 0;
                        seen[touched[t]] = 0;
                    }
                }
#pragma omp critical
                for (int t = 0; t < s->nk; t++) {
                    top1[t] += t1[t];
                    top5[t] += t5[t];
                }
            }
            free(score);
            free(seen);
            free(touched);
        }
        if (nomem) rc = dv2_error_set(err, DV2_ENOMEM, "k-NN: out of memory");
    }
    if (!rc) {
        for (int t = 0; t < s->nk; t++) {
            s->top1[t] += top1[t];
            s->top5[t] += top5[t];
        }
        s->n += nq;
    }
    free(sim);
    free(row);
    return rc;
}
