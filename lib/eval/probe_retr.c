/* probe_retr.c — instance retrieval metrics (mAP, recall@1/5/10) over the
 * whole ranked database, without sorting it: a query's positives are found
 * through the label index and scored first; then every other database row is
 * streamed through a blocked sgemm and only counted against the positives
 * it ranks ahead of (binary search), which gives each positive's rank. */
#include "eval/probe.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

void dv2_probe_retr_init(dv2_probe_retr *s) {
    memset(s, 0, sizeof *s);
    s->recall_k[0] = 1;
    s->recall_k[1] = 5;
    s->recall_k[2] = 10;
}

typedef struct { float s; int64_t r; } pos_t;

static int cmp_pos(const void *a, const void *b) { /* best first */
    const pos_t *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return (x->r > y->r) - (x->r < y->r);
}

/* The first index in the label index holding label lab (or where it would be). */
static size_t label_lower(const dv2_probe_db *db, int32_t lab) {
    size_t lo = 0, hi = db->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (db->labels[db->by_label[mid]] < lab) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

int dv2_probe_retr_block(dv2_probe_retr *s, const dv2_probe_db *db, const float *q, size_t nq,
                         const uint64_t *ids, const int32_t *labels, dv2_error *err) {
    if (!db->by_label) return dv2_error_set(err, DV2_EINVAL, "retrieval: labels not grouped");
    if (nq == 0 || db->n == 0) {
        s->no_positive += nq;
        return DV2_OK;
    }
    size_t dim = db->dim;
    /* Positives of every query of the block, one after another. */
    size_t *off = malloc((nq + 1) * sizeof(size_t));
    if (!off) return dv2_error_set(err, DV2_ENOMEM, "retrieval: out of memory");
    off[0] = 0;
    for (size_t i = 0; i < nq; i++) {
        size_t a = label_lower(db, labels[i]), p = 0;
        for (size_t t = a; t < db->n && db->labels[db->by_label[t]] == labels[i]; t++)
            p += db->ids[db->by_label[t]] != ids[i];
        off[i + 1] = off[i] + p;
    }
    size_t total = off[nq], nb = db->db_block ? db->db_block : 4096;
    pos_t *pos = dv2_malloc_array(total ? total : 1, sizeof(pos_t));
    uint64_t *cnt = calloc(total + nq, sizeof(uint64_t)); /* P+1 counters per query */
    if (!pos || !cnt) {
        free(off);
        free(pos);
        free(cnt);
        return dv2_error_set(err, DV2_ENOMEM, "retrieval: out of memory");
    }
#pragma omp parallel for schedule(dynamic, 16)
    for (size_t i = 0; i < nq; i++) {
        size_t a = label_lower(db, labels[i]), k = off[i];
        for (size_t t = a; t < db->n && db->labels[db->by_label[t]] == labels[i]; t++) {
            int64_t r = db->by_label[t];
            if (db->ids[r] == ids[i]) continue;
            float d = cblas_sdot((int)dim, q + i * dim, 1, db->x + (size_t)r * db->ld, 1);
            pos[k].s = d * db->inv_norm[r];
            pos[k++].r = r;
        }
        qsort(pos + off[i], off[i + 1] - off[i], sizeof(pos_t), cmp_pos);
    }
    size_t nt = (size_t)omp_get_max_threads(), chunk = (nq + nt - 1) / nt;
    if (chunk < 16) chunk = 16;
    size_t nchunks = (nq + chunk - 1) / chunk;
    int nomem = 0;
    /* As in the exact k-NN search: a slice of the queries per thread, single-threaded
     * sgemm, training blocks walked in step. */
#pragma omp parallel if (nchunks > 1)
    {
        float *S = dv2_malloc_array(chunk * nb, sizeof(float));
        if (!S) {
#pragma omp atomic write
            nomem = 1;
        }
#pragma omp barrier
        for (size_t b0 = 0; b0 < db->n && !nomem; b0 += nb) {
            size_t m = db->n - b0 < nb ? db->n - b0 : nb;
#pragma omp for schedule(static)
            for (size_t ch = 0; ch < nchunks; ch++) {
                size_t i0 = ch * chunk, nc = nq - i0 < chunk ? nq - i0 : chunk;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nc, (int)m, (int)dim, 1.0f,
                            q + i0 * dim, (int)dim, db->x + b0 * db->ld, (int)db->ld, 0.0f, S, (int)m);
                for (size_t ii = 0; ii < nc; ii++) {
                    size_t i = i0 + ii, P = off[i + 1] - off[i];
                    if (P == 0) continue;
                    const pos_t *pi = pos + off[i];
                    uint64_t *ci = cnt + off[i] + i;
                    float worst = pi[P - 1].s;
                    for (size_t j = 0; j < m; j++) {
                        int64_t r = (int64_t)(b0 + j);
                        float sv = S[ii * m + j] * db->inv_norm[b0 + j];
                        if (sv < worst) continue; /* behind every positive */
                        if (db->labels[r] == labels[i] || db->ids[r] == ids[i]) continue;
                        /* lo = positives ranked ahead of this row */
                        size_t lo = 0, hi = P;
                        while (lo < hi) {
                            size_t mid = lo + (hi - lo) / 2;
                            if (pi[mid].s > sv || (pi[mid].s == sv && pi[mid].r < r)) lo = mid + 1;
                            else hi = mid;
                        }
                        if (lo < P) ci[lo]++;
                    }
                }
            }
        }
        free(S);
    }
    if (nomem) {
        free(off);
        free(pos);
        free(cnt);
        return dv2_error_set(err, DV2_ENOMEM, "retrieval: out of memory");
    }
    double ap_sum = 0;
    uint64_t n = 0, none = 0, hits[DV2_PROBE_RECALL_KS] = {0};
    for (size_t i = 0; i < nq; i++) {
        size_t P = off[i + 1] - off[i];
        if (P == 0) {
            none++;
            continue;
        }
        const uint64_t *ci = cnt + off[i] + i;
        uint64_t ahead = 0; /* non-positives ranked ahead of positive t */
        double ap = 0;
        for (size_t t = 0; t < P; t++) {
            ahead += ci[t];
            uint64_t rank = t + ahead; /* 0-based */
            ap += (double)(t + 1) / (double)(rank + 1);
            if (t == 0)
                for (int k = 0; k < DV2_PROBE_RECALL_KS; k++) hits[k] += rank < (uint64_t)s->recall_k[k];
        }
        ap_sum += ap / (double)P;
        n++;
    }
    s->ap_sum += ap_sum;
    s->n += n;
    s->no_positive += none;
    for (int k = 0; k < DV2_PROBE_RECALL_KS; k++) s->recall_hits[k] += hits[k];
    free(off);
    free(pos);
    free(cnt);
    return DV2_OK;
}
