/* probe.c — k-NN classification and instance retrieval against an in-memory
 * (or mapped) training set: blocked sgemm for the similarities, a bounded
 * heap per query for the top-k, rank counting by binary search for mAP.
 * Definitions and orders: probe.h. */
#include "eval/probe.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
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

/* ---- top-k -------------------------------------------------------------------------- */

typedef struct { float s; int64_t r; } cand;

/* a ranks before b */
static inline int better(float sa, int64_t ra, float sb, int64_t rb) {
    return sa > sb || (sa == sb && ra < rb);
}

/* Min-heap by rank: h[0] is the worst kept neighbour. */
static void sift_down(cand *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, w = i;
        if (l < n && better(h[w].s, h[w].r, h[l].s, h[l].r)) w = l;
        if (l + 1 < n && better(h[w].s, h[w].r, h[l + 1].s, h[l + 1].r)) w = l + 1;
        if (w == i) return;
        cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void sift_up(cand *h, int i) {
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!better(h[p].s, h[p].r, h[i].s, h[i].r)) return;
        cand t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

int dv2_probe_topk(float *out_sim, int64_t *out_row, const dv2_probe_db *db, const float *q,
                   size_t nq, int k, dv2_error *err) {
    if (k < 1 || (size_t)k > db->n)
        return dv2_error_set(err, DV2_EINVAL, "top-k: k = %d with %zu training rows", k, db->n);
    if (nq == 0) return DV2_OK;
    size_t nb = db->db_block ? db->db_block : DEFAULT_DB_BLOCK;
    size_t nt = (size_t)omp_get_max_threads(), chunk = (nq + nt - 1) / nt;
    if (chunk < 16) chunk = 16;
    size_t nchunks = (nq + chunk - 1) / chunk;
    cand *heap = dv2_malloc_array(nq * (size_t)k, sizeof(cand));
    int *cnt = calloc(nq, sizeof(int));
    int nomem = !heap || !cnt;
    /* Each thread owns a slice of the queries and calls a single-threaded
     * sgemm on it; all threads walk the training blocks in step, so a block
     * is read from memory once for all of them. */
#pragma omp parallel if (nchunks > 1)
    {
        float *S = nomem ? NULL : dv2_malloc_array(chunk * nb, sizeof(float));
        if (!S) {
#pragma omp atomic write
            nomem = 1;
        }
#pragma omp barrier
        for (size_t b0 = 0; b0 < db->n && !nomem; b0 += nb) {
            size_t m = db->n - b0 < nb ? db->n - b0 : nb;
            const float *inv = db->inv_norm + b0;
#pragma omp for schedule(static)
            for (size_t ch = 0; ch < nchunks; ch++) {
                size_t i0 = ch * chunk, nc = nq - i0 < chunk ? nq - i0 : chunk;
                /* S (nc x m) = q[i0 ..] (nc x dim) . X[b0 .. b0+m)^T, X rows ld apart */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nc, (int)m, (int)db->dim,
                            1.0f, q + i0 * db->dim, (int)db->dim, db->x + b0 * db->ld, (int)db->ld,
                            0.0f, S, (int)m);
                for (size_t ii = 0; ii < nc; ii++) {
                    size_t i = i0 + ii;
                    cand *h = heap + i * (size_t)k;
                    int c = cnt[i];
                    const float *srow = S + ii * m;
                    for (size_t j = 0; j < m; j++) {
                        float s = srow[j] * inv[j];
                        int64_t r = (int64_t)(b0 + j);
                        if (c < k) {
                            h[c].s = s;
                            h[c].r = r;
                            sift_up(h, c++);
                        } else if (s >= h[0].s && better(s, r, h[0].s, h[0].r)) {
                            h[0].s = s;
                            h[0].r = r;
                            sift_down(h, k, 0);
                        }
                    }
                    cnt[i] = c;
                }
            }
        }
        free(S);
    }
    if (nomem) {
        free(heap);
        free(cnt);
        return dv2_error_set(err, DV2_ENOMEM, "top-k: out of memory");
    }
    /* Pop the worst first into the back: best first in the output. */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < nq; i++) {
        cand *h = heap + i * (size_t)k;
        for (int n = k; n > 0; n--) {
            out_sim[i * (size_t)k + (size_t)n - 1] = h[0].s;
            out_row[i * (size_t)k + (size_t)n - 1] = h[0].r;
            h[0] = h[n - 1];
            sift_down(h, n - 1, 0);
        }
    }
    free(heap);
    free(cnt);
    return DV2_OK;
}

/* ---- k-NN classifier ------------------------------------------------------------------ */

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int dv2_probe_knn_init(dv2_probe_knn *s, const dv2_probe_db *db, const int *ks, int nk,
                       double temperature, int uniform, dv2_error *err) {
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
    return DV2_OK;
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
    if (!rc) rc = dv2_probe_topk(sim, row, db, q, nq, K, err);
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
