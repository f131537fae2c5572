/* dedup.c — the k-NN graph search, the merge of per-rank union-find forests
 * and the classification of every pool row (see dedup.h). */
#include "curate/dedup.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void dv2_dedup_params_default(dv2_dedup_params *p) {
    memset(p, 0, sizeof *p);
    p->k = 64;
    p->threshold = 0.6f;
    p->against_threshold = 0.45f;
    p->margin = 0.05f;
    p->margin_rank = 10;
    p->query_block = 0;
    dv2_knn_opts_default(&p->pool_knn);
    dv2_knn_opts_default(&p->against_knn);
}

int64_t dv2_dedup_block(const dv2_dedup_params *p) {
    if (p->query_block > 0) return p->query_block;
    return p->pool_knn.backend == DV2_KNN_EXACT ? 1024 : 65536;
}

void dv2_dedup_split(int64_t n, int64_t query_block, int rank, int world, int64_t *q0, int64_t *q1) {
    int64_t qb = query_block > 0 ? query_block : 1024;
    int64_t nblocks = (n + qb - 1) / qb;
    int64_t b0 = nblocks * rank / world, b1 = nblocks * (rank + 1) / world;
    *q0 = b0 * qb < n ? b0 * qb : n;
    *q1 = b1 * qb < n ? b1 * qb : n;
}

void dv2_dedup_part_free(dv2_dedup_part *part) {
    dv2_uf_free(&part->uf);
    free(part->best_sim);
    free(part->leak_sim);
    free(part->leak_row);
    free(part->bg);
    free(part->cand);
    memset(part, 0, sizeof *part);
}

int dv2_dedup_search(dv2_dedup_part *part, const dv2_vecsrc *pool, const dv2_vecsrc *against,
                     int64_t q0, int64_t q1, const dv2_dedup_params *p, dv2_error *err) {
    memset(part, 0, sizeof *part);
    int64_t n = pool->n;
    int dim = pool->dim, k = p->k;
    if (k <= 0) return dv2_error_set(err, DV2_EINVAL, "dedup: k must be positive");
    if (p->margin_on && (p->margin_rank < 1 || p->margin_rank > k))
        return dv2_error_set(err, DV2_EINVAL, "dedup: the margin's neighbour rank %d is not in 1..k (%d)", p->margin_rank, k);
    if (q0 < 0 || q1 < q0 || q1 > n) return dv2_error_set(err, DV2_EINVAL, "dedup: bad query range");
    if (against && against->dim != dim)
        return dv2_error_set(err, DV2_EINVAL, "dedup: against vectors have dimension %d, pool %d",
                             against->dim, dim);
    int64_t qb = dv2_dedup_block(p);
    int rc = dv2_uf_init(&part->uf, n, err);
    if (rc < 0) return rc;
    part->n = n;
    part->q0 = q0;
    part->q1 = q1;
    int64_t m = q1 - q0;
    part->best_sim = dv2_malloc_array(m > 0 ? (size_t)m : 1, sizeof(float));
    part->leak_sim = dv2_malloc_array(m > 0 ? (size_t)m : 1, sizeof(float));
    part->margin = p->margin;
    if (p->margin_on && !(part->bg = dv2_malloc_array(m > 0 ? (size_t)m : 1, sizeof(float)))) {
        dv2_dedup_part_free(part);
        return dv2_error_set(err, DV2_ENOMEM, "dedup: out of memory for %lld rows", (long long)m);
    }
    part->leak_row = dv2_malloc_array(m > 0 ? (size_t)m : 1, sizeof(int64_t));
    float *q = dv2_malloc_array((size_t)qb * (size_t)dim, sizeof(float));
    float *sim = dv2_malloc_array((size_t)qb * (size_t)k, sizeof(float));
    int64_t *row = dv2_malloc_array((size_t)qb * (size_t)k, sizeof(int64_t));
    float *lsim = dv2_malloc_array((size_t)qb, sizeof(float));
    int64_t *lrow = dv2_malloc_array((size_t)qb, sizeof(int64_t));
    dv2_knn *self = NULL, *ag = NULL;
    if (!part->best_sim || !part->leak_sim || !part->leak_row || !q || !sim || !row || !lsim || !lrow) {
        rc = dv2_error_set(err, DV2_ENOMEM, "dedup: out of memory for query blocks of %lld rows", (long long)qb);
        goto done;
    }
    for (int64_t i = 0; i < m; i++) {
        part->best_sim[i] = part->leak_sim[i] = -INFINITY;
        part->leak_row[i] = -1;
    }
    if (m == 0) goto done;
    rc = dv2_knn_create(&self, pool, &p->pool_knn, err);
    if (rc < 0) goto done;
    if (against && against->n > 0) {
        rc = dv2_knn_create(&ag, against, &p->against_knn, err);
        if (rc < 0) {
            dv2_error_prefix(err, "against sets");
            goto done;
        }
    }
    for (int64_t b = q0; b < q1; b += qb) {
        int64_t nb = q1 - b < qb ? q1 - b : qb;
        rc = dv2_vecsrc_read(pool, q, b, nb, err);
        if (rc < 0) goto done;
        rc = dv2_knn_search(self, sim, row, q, nb, k, -INFINITY, b, err);
        if (rc < 0) goto done;
        for (int64_t i = 0; i < nb; i++) {
            part->best_sim[b - q0 + i] = sim[i * k];
            if (p->margin_on) {
                int64_t r = row[i * k + p->margin_rank - 1];
                part->bg[b - q0 + i] = r >= 0 ? sim[i * k + p->margin_rank - 1] : -INFINITY;
            }
            for (int j = 0; j < k; j++) {
                int64_t r = row[i * k + j];
                if (r < 0 || !(sim[i * k + j] > p->threshold)) break; /* best first */
                if (!p->margin_on) {
                    part->edges++;
                    dv2_uf_union(&part->uf, b + i, r);
                    continue;
                }
                if (part->ncand == part->capcand) {
                    int64_t cap = part->capcand ? 2 * part->capcand : 4096;
                    void *nc = realloc(part->cand, sizeof *part->cand * (size_t)cap);
                    if (!nc) {
                        rc = dv2_error_set(err, DV2_ENOMEM, "dedup: out of memory for %lld edges", (long long)cap);
                        goto done;
                    }
                    part->cand = nc;
                    part->capcand = cap;
                }
                part->cand[part->ncand++] = (struct dv2_dedup_cand){b + i, r, sim[i * k + j]};
            }
        }
        if (ag) {
            rc = dv2_knn_search(ag, lsim, lrow, q, nb, 1, -INFINITY, -1, err);
            if (rc < 0) goto done;
            for (int64_t i = 0; i < nb; i++) {
                part->leak_sim[b - q0 + i] = lsim[i];
                part->leak_row[b - q0 + i] = lrow[i];
            }
        }
        if (p->progress) p->progress(p->progress_ctx, b + nb - q0, m);
    }
done:
    dv2_knn_free(self);
    dv2_knn_free(ag);
    free(q);
    free(sim);
    free(row);
    free(lsim);
    free(lrow);
    if (rc < 0) dv2_dedup_part_free(part);
    return rc;
}

void dv2_dedup_result_free(dv2_dedup_result *res) {
    free(res->root);
    free(res->comp);
    free(res->status);
    free(res->best_sim);
    free(res->leak_sim);
    free(res->leak_row);
    free(res->bg);
    memset(res, 0, sizeof *res);
}

/* Every rank's searched slice of a per-row array (elements of es bytes),
 * gathered into all[n].  Slices differ in length, so each is padded to the
 * longest. */
static int gather_rows(void *all, const void *mine, size_t es, const dv2_dedup_part *part, const dv2_dist *d,
                       const int64_t *q0s, const int64_t *q1s, dv2_error *err) {
    int64_t maxlen = 1;
    for (int r = 0; r < d->world; r++)
        if (q1s[r] - q0s[r] > maxlen) maxlen = q1s[r] - q0s[r];
    uint8_t *send = dv2_calloc_array((size_t)maxlen, es);
    uint8_t *recv = dv2_calloc_array((size_t)d->world * (size_t)maxlen, es);
    int rc = 0;
    if (!send || !recv) {
        rc = dv2_error_set(err, DV2_ENOMEM, "dedup: out of memory gathering results");
        goto done;
    }
    memcpy(send, mine, es * (size_t)(part->q1 - part->q0));
    rc = dv2_dist_allgather(d, send, es * (size_t)maxlen, recv, err);
    if (rc < 0) goto done;
    for (int r = 0; r < d->world; r++)
        memcpy((uint8_t *)all + es * (size_t)q0s[r], recv + (size_t)r * (size_t)maxlen * es,
               es * (size_t)(q1s[r] - q0s[r]));
done:
    free(send);
    free(recv);
    return rc;
}

/* Unions the links (row, root) of every other rank's forest into part->uf. */
static int merge_forests(dv2_dedup_part *part, const dv2_dist *d, dv2_error *err) {
    dv2_uf_flatten(&part->uf);
    int64_t nl = 0;
    for (int64_t i = 0; i < part->n; i++)
        if (part->uf.parent[i] != i) nl++;
    int64_t *counts = dv2_calloc_array((size_t)d->world, sizeof(int64_t));
    if (!counts) return dv2_error_set(err, DV2_ENOMEM, "dedup: out of memory");
    int rc = dv2_dist_allgather(d, &nl, sizeof nl, counts, err);
    int64_t maxl = 1;
    for (int r = 0; r < d->world; r++)
        if (counts[r] > maxl) maxl = counts[r];
    int64_t *send = rc < 0 ? NULL : dv2_malloc_array((size_t)maxl * 2, sizeof(int64_t));
    int64_t *recv = rc < 0 ? NULL : dv2_malloc_array((size_t)maxl * 2 * (size_t)d->world, sizeof(int64_t));
    if (rc == 0 && (!send || !recv))
        rc = dv2_error_set(err, DV2_ENOMEM, "dedup: out of memory for %lld component links", (long long)maxl);
    if (rc == 0) {
        int64_t o = 0;
        for (int64_t i = 0; i < part->n; i++)
            if (part->uf.parent[i] != i) {
                send[2 * o] = i;
                send[2 * o + 1] = part->uf.parent[i];
                o++;
            }
        rc = dv2_dist_allgather(d, send, sizeof(int64_t) * 2 * (size_t)maxl, recv, err);
    }
    if (rc == 0)
        for (int r = 0; r < d->world; r++) {
            if (r == d->rank) continue;
            const int64_t *l = recv + (size_t)r * 2 * (size_t)maxl;
            for (int64_t j = 0; j < counts[r]; j++) {
                if (l[2 * j] < 0 || l[2 * j] >= part->n || l[2 * j + 1] < 0 || l[2 * j + 1] >= part->n) {
                    rc = dv2_error_set(err, DV2_ECORRUPT, "dedup: rank %d sent a bad component link", r);
                    break;
                }
                dv2_uf_union(&part->uf, l[2 * j], l[2 * j + 1]);
            }
        }
    free(counts);
    free(send);
    free(recv);
    return rc;
}

/* The margin: every row's background (gathered from the ranks, whose
 * searched ranges are q0s/q1s, into bg, n floats), then the candidate edges
 * of this rank that beat both ends' background by part->margin united into
 * part->uf. */
static int apply_margin(float *bg, dv2_dedup_part *part, const dv2_dist *d, const int64_t *q0s, const int64_t *q1s,
                        dv2_error *err) {
    if (d->world > 1) {
        int rc = gather_rows(bg, part->bg, sizeof(float), part, d, q0s, q1s, err);
        if (rc < 0) return rc;
    } else {
        for (int64_t i = 0; i < part->n; i++) bg[i] = -INFINITY;
        memcpy(bg + part->q0, part->bg, sizeof(float) * (size_t)(part->q1 - part->q0));
    }
    for (int64_t e = 0; e < part->ncand; e++) {
        const struct dv2_dedup_cand *c = &part->cand[e];
        float b = bg[c->a] > bg[c->b] ? bg[c->a] : bg[c->b];
        if (c->s - b > part->margin) {
            part->edges++;
            dv2_uf_union(&part->uf, c->a, c->b);
        } else {
            part->dropped++;
        }
    }
    return 0;
}

int dv2_dedup_merge(dv2_dedup_result *res, dv2_dedup_part *part, const dv2_dist *d,
                    float against_threshold, dv2_error *err) {
    memset(res, 0, sizeof *res);
    int64_t n = part->n;
    size_t nn = n > 0 ? (size_t)n : 1;
    res->n = n;
    res->root = dv2_malloc_array(nn, sizeof(int64_t));
    res->comp = dv2_malloc_array(nn, sizeof(int64_t));
    res->status = dv2_calloc_array(nn, 1);
    res->best_sim = dv2_malloc_array(nn, sizeof(float));
    res->leak_sim = dv2_malloc_array(nn, sizeof(float));
    res->leak_row = dv2_malloc_array(nn, sizeof(int64_t));
    int64_t *size = dv2_calloc_array(nn, sizeof(int64_t));
    uint8_t *leaky = dv2_calloc_array(nn, 1);
    int64_t *q0s = dv2_calloc_array((size_t)d->world, sizeof(int64_t));
    int64_t *q1s = dv2_calloc_array((size_t)d->world, sizeof(int64_t));
    int rc = 0;
    if (!res->root || !res->comp || !res->status || !res->best_sim || !res->leak_sim || !res->leak_row || !size || !leaky ||
        !q0s || !q1s) {
        rc = dv2_error_set(err, DV2_ENOMEM, "dedup: out of memory for %lld rows", (long long)n);
        goto done;
    }
    if (d->world > 1) { /* every rank's searched range, for the gathers below */
        rc = dv2_dist_allgather(d, &part->q0, sizeof(int64_t), q0s, err);
        if (rc == 0) rc = dv2_dist_allgather(d, &part->q1, sizeof(int64_t), q1s, err);
        if (rc < 0) goto done;
    }
    if (part->bg) {
        if (!(res->bg = dv2_malloc_array(nn, sizeof(float)))) {
            rc = dv2_error_set(err, DV2_ENOMEM, "dedup: out of memory for %lld rows", (long long)n);
            goto done;
        }
        res->margin = part->margin;
        if ((rc = apply_margin(res->bg, part, d, q0s, q1s, err)) < 0) goto done;
    }
    int64_t edges = part->edges, dropped = part->dropped;
    if (d->world > 1) {
        rc = merge_forests(part, d, err);
        if (rc == 0) rc = dv2_dist_allreduce_sum_i64(d, &edges, 1, err);
        if (rc == 0) rc = dv2_dist_allreduce_sum_i64(d, &dropped, 1, err);
        if (rc == 0) rc = gather_rows(res->best_sim, part->best_sim, sizeof(float), part, d, q0s, q1s, err);
        if (rc == 0) rc = gather_rows(res->leak_sim, part->leak_sim, sizeof(float), part, d, q0s, q1s, err);
        if (rc == 0) rc = gather_rows(res->leak_row, part->leak_row, sizeof(int64_t), part, d, q0s, q1s, err);
        if (rc < 0) goto done;
        for (int r = 0; r < d->world; r++)
            if (r > 0 && q0s[r] != q1s[r - 1]) {
                rc = dv2_error_set(err, DV2_EINVAL, "dedup: the ranks' row ranges do not tile the pool");
                goto done;
            }
        if (q0s[0] != 0 || q1s[d->world - 1] != n) {
            rc = dv2_error_set(err, DV2_EINVAL, "dedup: the ranks' row ranges do not cover the pool");
            goto done;
        }
    } else {
        if (part->q0 != 0 || part->q1 != n) {
            rc = dv2_error_set(err, DV2_EINVAL, "dedup: a single process must search the whole pool");
            goto done;
        }
        memcpy(res->best_sim, part->best_sim, sizeof(float) * (size_t)n);
        memcpy(res->leak_sim, part->leak_sim, sizeof(float) * (size_t)n);
        memcpy(res->leak_row, part->leak_row, sizeof(int64_t) * (size_t)n);
    }
    res->edges = edges;
    res->margin_dropped = dropped;
    dv2_uf_flatten(&part->uf);
    for (int64_t i = 0; i < n; i++) {
        int64_t r = part->uf.parent[i];
        res->root[i] = r;
        size[r]++;
        /* with the margin a leak must also stand out from the row's background */
        if (res->leak_sim[i] > against_threshold && (!res->bg || res->leak_sim[i] - res->bg[i] > res->margin))
            leaky[r] = 1;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t r = res->root[i];
        if (r == i) {
            res->comp[i] = res->components++;
            if (size[i] > 1) res->multi_components++;
            if (size[i] > res->largest) res->largest = size[i];
        } else {
            res->comp[i] = res->comp[r]; /* r < i: already numbered */
        }
        if (leaky[r]) {
            res->status[i] = DV2_DEDUP_LEAK;
            res->leaked++;
        } else if (r != i) {
            res->status[i] = DV2_DEDUP_COPY;
            res->copies++;
        } else {
            res->status[i] = DV2_DEDUP_KEPT;
            res->kept++;
        }
    }
done:
    free(size);
    free(leaky);
    free(q0s);
    free(q1s);
    if (rc < 0) dv2_dedup_result_free(res);
    return rc;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

float dv2_dedup_median_nn(const dv2_dedup_result *res) {
    float *v = dv2_malloc_array(res->n > 0 ? (size_t)res->n : 1, sizeof(float));
    if (!v) return -INFINITY;
    size_t m = 0;
    for (int64_t i = 0; i < res->n; i++)
        if (isfinite(res->best_sim[i])) v[m++] = res->best_sim[i];
    float med = -INFINITY;
    if (m) {
        qsort(v, m, sizeof *v, cmp_float);
        med = m % 2 ? v[m / 2] : 0.5f * (v[m / 2 - 1] + v[m / 2]);
    }
    free(v);
    return med;
}
