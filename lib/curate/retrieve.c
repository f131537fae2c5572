/* retrieve.c — sample-based and cluster-based retrieval (see retrieve.h):
 * query blocks split across ranks, per-pool-row best matches reduced with
 * max all-reduces, hits gathered so every rank holds the full answer. */
#include "curate/retrieve.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "curate/dedup.h"
#include "search/faissx.h"
#include "core/rng.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void dv2_retrieve_params_default(dv2_retrieve_params *p) {
    memset(p, 0, sizeof *p);
    p->n = 4;
    p->clusters = 0;
    p->per_cluster = 10000;
    p->min_queries = 3;
    p->cap = 1000000;
    p->niter = 20;
    p->kmeans_max_points = 256;
    p->query_block = 0; /* 1024 rows for the exact search, 65536 for FAISS and the GPU */
    dv2_knn_opts_default(&p->knn);
}

void dv2_retrieve_out_free(dv2_retrieve_out *out) {
    free(out->hits);
    memset(out, 0, sizeof *out);
}

/* Every rank must reach the same collectives: after a local phase the ranks
 * agree whether all of them succeeded (a failed rank keeps its own message). */
static int agree(const dv2_dist *d, int rc, dv2_error *err) {
    int64_t failed = rc < 0;
    int arc = dv2_dist_allreduce_sum_i64(d, &failed, 1, NULL);
    if (rc < 0) return rc;
    if (arc < 0 || failed) return dv2_error_set(err, DV2_EIO, "retrieve: another process failed");
    return 0;
}

/* Gathers every rank's hits (in rank order) into *all. */
static int gather_hits(dv2_retrieve_hit **all, int64_t *nall, const dv2_retrieve_hit *mine, int64_t n,
                       const dv2_dist *d, dv2_error *err) {
    *all = NULL;
    *nall = 0;
    int64_t *counts = dv2_calloc_array((size_t)d->world, sizeof(int64_t));
    if (!counts) return dv2_error_set(err, DV2_ENOMEM, "retrieve: out of memory");
    int rc = dv2_dist_allgather(d, &n, sizeof n, counts, err);
    int64_t maxn = 1, total = 0;
    for (int r = 0; r < d->world; r++) {
        if (counts[r] > maxn) maxn = counts[r];
        total += counts[r];
    }
    dv2_retrieve_hit *send = NULL, *recv = NULL, *out = NULL;
    if (rc == 0) {
        send = dv2_calloc_array((size_t)maxn, sizeof *send);
        recv = dv2_malloc_array((size_t)maxn * (size_t)d->world, sizeof *recv);
        out = dv2_malloc_array(total ? (size_t)total : 1, sizeof *out);
        if (!send || !recv || !out) rc = dv2_error_set(err, DV2_ENOMEM, "retrieve: out of memory for %lld hits", (long long)total);
    }
    if (rc == 0) {
        if (n) memcpy(send, mine, sizeof *send * (size_t)n);
        rc = dv2_dist_allgather(d, send, sizeof *send * (size_t)maxn, recv, err);
    }
    if (rc == 0) {
        int64_t o = 0;
        for (int r = 0; r < d->world; r++) {
            memcpy(out + o, recv + (size_t)r * (size_t)maxn, sizeof *out * (size_t)counts[r]);
            o += counts[r];
        }
        *all = out;
        *nall = total;
        out = NULL;
    }
    free(counts);
    free(send);
    free(recv);
    free(out);
    return rc;
}

int dv2_retrieve_sample(dv2_retrieve_out *out, const dv2_vecsrc *queries, const dv2_vecsrc *pool,
                        const dv2_retrieve_params *p, const dv2_dist *d, dv2_error *err) {
    memset(out, 0, sizeof *out);
    int k = p->n;
    if (k <= 0) return dv2_error_set(err, DV2_EINVAL, "retrieve: n must be positive");
    if (queries->dim != pool->dim)
        return dv2_error_set(err, DV2_EINVAL, "retrieve: queries have dimension %d, pool %d", queries->dim, pool->dim);
    int64_t qb = p->query_block > 0 ? p->query_block : p->knn.backend == DV2_KNN_EXACT ? 1024 : 65536, q0, q1;
    dv2_dedup_split(queries->n, qb, d->rank, d->world, &q0, &q1);
    int dim = pool->dim;
    int64_t np = pool->n;
    float *q = dv2_malloc_array((size_t)qb * (size_t)dim, sizeof(float));
    float *sim = dv2_malloc_array((size_t)qb * (size_t)k, sizeof(float));
    int64_t *row = dv2_malloc_array((size_t)qb * (size_t)k, sizeof(int64_t));
    /* unique mode: best similarity and (negated) query row per pool row, as
     * doubles so that max all-reduces combine the ranks exactly */
    double *bs = NULL, *bq = NULL;
    dv2_retrieve_hit *mine = NULL;
    int64_t nmine = 0, cap = 0;
    dv2_knn *s = NULL;
    int rc = 0;
    if (!q || !sim || !row) {
        rc = dv2_error_set(err, DV2_ENOMEM, "retrieve: out of memory");
        goto local_end;
    }
    if (!p->keep_repeats) {
        bs = dv2_malloc_array(np ? (size_t)np : 1, sizeof(double));
        bq = dv2_malloc_array(np ? (size_t)np : 1, sizeof(double));
        if (!bs || !bq) {
            rc = dv2_error_set(err, DV2_ENOMEM, "retrieve: out of memory for %lld pool rows", (long long)np);
            goto local_end;
        }
        for (int64_t i = 0; i < np; i++) bs[i] = bq[i] = -INFINITY;
    }
    double t0 = now_seconds();
    if (np > 0 && q1 > q0) {
        rc = dv2_knn_create(&s, pool, &p->knn, err);
        if (rc < 0) goto local_end;
    }
    double t1 = now_seconds();
    out->build_seconds = t1 - t0;
    for (int64_t b = q0; b < q1 && s; b += qb) {
        int64_t nb = q1 - b < qb ? q1 - b : qb;
        rc = dv2_vecsrc_read(queries, q, b, nb, err);
        if (rc == 0) rc = dv2_knn_search(s, sim, row, q, nb, k, -INFINITY, -1, err);
        if (rc < 0) goto local_end;
        for (int64_t i = 0; i < nb; i++)
            for (int j = 0; j < k; j++) {
                int64_t r = row[i * k + j];
                if (r < 0) break;
                out->pairs++;
                float v = sim[i * k + j];
                if (!p->keep_repeats) {
                    /* better: higher similarity, then lower query row */
                    if (v > bs[r] || (v == bs[r] && -(double)(b + i) > bq[r])) {
                        bs[r] = v;
                        bq[r] = -(double)(b + i);
                    }
                    continue;
                }
                if (nmine == cap) {
                    int64_t nc = cap ? 2 * cap : 4096;
                    dv2_retrieve_hit *g = realloc(mine, sizeof *g * (size_t)nc);
                    if (!g) {
                        rc = dv2_error_set(err, DV2_ENOMEM, "retrieve: out of memory for %lld hits", (long long)nc);
                        goto local_end;
                    }
                    mine = g;
                    cap = nc;
                }
                mine[nmine++] = (dv2_retrieve_hit){r, b + i, v, 0};
            }
        if (p->progress) p->progress(p->progress_ctx, b + nb - q0, q1 - q0);
    }
    out->search_seconds = now_seconds() - t1;
local_end:
    rc = agree(d, rc, err);
    if (rc < 0) goto done;
    rc = dv2_dist_allreduce_sum_i64(d, &out->pairs, 1, err);
    if (rc < 0) goto done;
    if (p->keep_repeats) {
        rc = gather_hits(&out->hits, &out->n, mine, nmine, d, err);
        goto done;
    }
    /* combine the ranks: the best similarity first, then the lowest query
     * row among the ranks that reached it */
    {
        double *g = dv2_malloc_array(np ? (size_t)np : 1, sizeof(double));
        if (!g) {
            rc = dv2_error_set(err, DV2_ENOMEM, "retrieve: out of memory for %lld pool rows", (long long)np);
            goto done;
        }
        memcpy(g, bs, sizeof(double) * (size_t)np);
        rc = dv2_dist_allreduce_max_f64(d, g, (size_t)np, err);
        for (int64_t i = 0; rc == 0 && i < np; i++)
            if (bs[i] != g[i]) bq[i] = -INFINITY;
        if (rc == 0) rc = dv2_dist_allreduce_max_f64(d, bq, (size_t)np, err);
        int64_t cnt = 0;
        for (int64_t i = 0; rc == 0 && i < np; i++) cnt += isfinite(g[i]);
        if (rc == 0) {
            out->hits = dv2_malloc_array(cnt ? (size_t)cnt : 1, sizeof *out->hits);
            if (!out->hits) rc = dv2_error_set(err, DV2_ENOMEM, "retrieve: out of memory for %lld hits", (long long)cnt);
        }
        for (int64_t i = 0; rc == 0 && i < np; i++)
            if (isfinite(g[i])) out->hits[out->n++] = (dv2_retrieve_hit){i, (int64_t)(-bq[i]), (float)g[i], 0};
        free(g);
    }
done:
    dv2_knn_free(s);
    free(q);
    free(sim);
    free(row);
    free(bs);
    free(bq);
    free(mine);
    return rc;
}

int dv2_retrieve_kmeans(float *centroids, double *objective, const dv2_vecsrc *src, int k, int niter,
                        int64_t max_points, uint64_t seed, const dv2_dist *d, dv2_error *err) {
    int dim = src->dim;
    int rc = 0;
    double obj = 0;
    if (max_points <= 0) max_points = 256;
    if (src->n < k)
        return dv2_error_set(err, DV2_EINVAL, "k-means: %lld pool images cannot make %d clusters",
                             (long long)src->n, k);
    if (d->rank == 0) {
        int64_t nt = src->n < max_points * k ? src->n : max_points * k;
        float *x = dv2_malloc_array((size_t)nt * (size_t)dim, sizeof(float));
        if (!x) {
            rc = dv2_error_set(err, DV2_ENOMEM, "k-means: cannot allocate %lld training vectors", (long long)nt);
        } else if (nt == src->n) {
            rc = dv2_vecsrc_read(src, x, 0, nt, err);
        } else {
            for (int64_t i = 0; i < nt && rc == 0; i++)
                rc = dv2_vecsrc_read(src, x + i * (int64_t)dim, (int64_t)((__int128)i * src->n / nt), 1, err);
        }
        if (rc == 0)
            rc = dv2_faissx_kmeans(centroids, &obj, x, nt, dim, k, niter, 1, seed, (int)max_points, err);
        free(x);
    }
    /* rank 0's outcome decides for everyone */
    double st[2] = {rc < 0 ? 1.0 : 0.0, obj};
    int brc = dv2_dist_broadcast(d, st, sizeof st, 0, err);
    if (brc < 0) return brc;
    if (st[0] != 0) return rc < 0 ? rc : dv2_error_set(err, DV2_EIO, "k-means failed on rank 0");
    brc = dv2_dist_broadcast(d, centroids, sizeof(float) * (size_t)k * (size_t)dim, 0, err);
    if (brc < 0) return brc;
    if (objective) *objective = st[1];
    return 0;
}

int dv2_retrieve_assign(int32_t *cluster, float *sim, const dv2_vecsrc *src, int64_t r0, int64_t r1,
                        const float *centroids, int k, int64_t block, dv2_error *err) {
    dv2_vecsrc cs;
    dv2_vecsrc_floats(&cs, centroids, k, src->dim);
    dv2_knn *s;
    int rc = dv2_knn_create(&s, &cs, NULL, err);
    if (rc < 0) return rc;
    int64_t qb = block > 0 ? block : 1024;
    float *q = dv2_malloc_array((size_t)qb * (size_t)src->dim, sizeof(float));
    float *bs = dv2_malloc_array((size_t)qb, sizeof(float));
    int64_t *br = dv2_malloc_array((size_t)qb, sizeof(int64_t));
    if (!q || !bs || !br) rc = dv2_error_set(err, DV2_ENOMEM, "retrieve: out of memory");
    for (int64_t b = r0; b < r1 && rc == 0; b += qb) {
        int64_t nb = r1 - b < qb ? r1 - b : qb;
        rc = dv2_vecsrc_read(src, q, b, nb, err);
        if (rc == 0) rc = dv2_knn_search(s, bs, br, q, nb, 1, -INFINITY, -1, err);
        for (int64_t i = 0; rc == 0 && i < nb; i++) {
            cluster[b - r0 + i] = (int32_t)br[i];
            sim[b - r0 + i] = bs[i];
        }
    }
    dv2_knn_free(s);
    free(q);
    free(bs);
    free(br);
    return rc;
}

static int cmp_hit_row(const void *a, const void *b) {
    int64_t x = ((const dv2_retrieve_hit *)a)->pool_row, y = ((const dv2_retrieve_hit *)b)->pool_row;
    return x < y ? -1 : x > y;
}

int dv2_retrieve_clusters(dv2_retrieve_out *out, const dv2_vecsrc *queries, const dv2_vecsrc *pool,
                          const dv2_retrieve_params *p, const dv2_dist *d, dv2_error *err) {
    memset(out, 0, sizeof *out);
    int k = p->clusters, dim = pool->dim;
    if (k <= 0) return dv2_error_set(err, DV2_EINVAL, "retrieve: the number of clusters must be positive");
    if (queries->dim != dim)
        return dv2_error_set(err, DV2_EINVAL, "retrieve: queries have dimension %d, pool %d", queries->dim, dim);
    int64_t np = pool->n, nq = queries->n, qb = p->query_block > 0 ? p->query_block : 1024;
    float *cent = dv2_malloc_array((size_t)k * (size_t)dim, sizeof(float));
    int32_t *pc = dv2_malloc_array(np ? (size_t)np : 1, sizeof(int32_t));
    float *ps = dv2_malloc_array(np ? (size_t)np : 1, sizeof(float));
    int64_t *qcount = dv2_calloc_array((size_t)k, sizeof(int64_t));
    int64_t *start = dv2_calloc_array((size_t)k + 1, sizeof(int64_t));
    int64_t *members = dv2_malloc_array(np ? (size_t)np : 1, sizeof(int64_t));
    int32_t *qc = NULL;
    float *qs = NULL;
    int rc = 0;
    if (!cent || !pc || !ps || !qcount || !start || !members) {
        rc = dv2_error_set(err, DV2_ENOMEM, "retrieve: out of memory for %lld pool rows", (long long)np);
        goto done;
    }
    rc = dv2_retrieve_kmeans(cent, &out->kmeans_objective, pool, k, p->niter, p->kmeans_max_points, p->seed, d, err);
    if (rc < 0) goto done;
    /* assign this rank's share of the pool and of the queries, then share */
    int64_t a0, a1;
    dv2_dedup_split(np, qb, d->rank, d->world, &a0, &a1);
    rc = agree(d, dv2_retrieve_assign(pc + a0, ps + a0, pool, a0, a1, cent, k, qb, err), err);
    if (rc < 0) goto done;
    if (d->world > 1) {
        /* every rank fills only its slice; sums of zeroed arrays combine them */
        for (int64_t i = 0; i < np; i++)
            if (i < a0 || i >= a1) pc[i] = 0, ps[i] = 0;
        int64_t *tmp = dv2_malloc_array(np ? (size_t)np : 1, sizeof(int64_t));
        if (!tmp) {
            rc = dv2_error_set(err, DV2_ENOMEM, "retrieve: out of memory");
            goto done;
        }
        for (int64_t i = 0; i < np; i++) tmp[i] = pc[i];
        rc = dv2_dist_allreduce_sum_i64(d, tmp, (size_t)np, err);
        for (int64_t i = 0; i < np; i++) pc[i] = (int32_t)tmp[i];
        free(tmp);
        if (rc == 0) rc = dv2_dist_allreduce_sum_f32(d, ps, (size_t)np, err);
        if (rc < 0) goto done;
    }
    int64_t b0, b1;
    dv2_dedup_split(nq, qb, d->rank, d->world, &b0, &b1);
    qc = dv2_malloc_array(b1 > b0 ? (size_t)(b1 - b0) : 1, sizeof(int32_t));
    qs = dv2_malloc_array(b1 > b0 ? (size_t)(b1 - b0) : 1, sizeof(float));
    if (!qc || !qs) {
        rc = dv2_error_set(err, DV2_ENOMEM, "retrieve: out of memory");
        goto done;
    }
    rc = agree(d, dv2_retrieve_assign(qc, qs, queries, b0, b1, cent, k, qb, err), err);
    if (rc < 0) goto done;
    for (int64_t i = 0; i < b1 - b0; i++) qcount[qc[i]]++;
    rc = dv2_dist_allreduce_sum_i64(d, qcount, (size_t)k, err);
    if (rc < 0) goto done;
    /* members of each cluster in pool order (counting sort) */
    for (int64_t i = 0; i < np; i++) start[pc[i] + 1]++;
    for (int c = 0; c < k; c++) start[c + 1] += start[c];
    {
        int64_t *fill = dv2_malloc_array((size_t)k, sizeof(int64_t));
        if (!fill) {
            rc = dv2_error_set(err, DV2_ENOMEM, "retrieve: out of memory");
            goto done;
        }
        memcpy(fill, start, sizeof(int64_t) * (size_t)k);
        for (int64_t i = 0; i < np; i++) members[fill[pc[i]]++] = i;
        free(fill);
    }
    /* draw per_cluster members of every used cluster: a partial Fisher-Yates
     * with a generator seeded by (seed, cluster), then back in pool order */
    int64_t total = 0;
    for (int c = 0; c < k; c++)
        if (qcount[c] > p->min_queries) {
            out->clusters_used++;
            int64_t sz = start[c + 1] - start[c];
            total += sz < p->per_cluster ? sz : p->per_cluster;
        }
    out->hits = dv2_malloc_array(total ? (size_t)total : 1, sizeof *out->hits);
    if (!out->hits) {
        rc = dv2_error_set(err, DV2_ENOMEM, "retrieve: out of memory for %lld hits", (long long)total);
        goto done;
    }
    for (int c = 0; c < k; c++) {
        if (!(qcount[c] > p->min_queries)) continue;
        int64_t *m = members + start[c], sz = start[c + 1] - start[c];
        int64_t take = sz < p->per_cluster ? sz : p->per_cluster;
        if (take < sz) {
            dv2_rng r;
            dv2_rng_seed(&r, p->seed, (uint64_t)c + 1);
            for (int64_t i = 0; i < take; i++) {
                int64_t j = i + (int64_t)dv2_rng_below(&r, (uint64_t)(sz - i));
                int64_t t = m[i];
                m[i] = m[j];
                m[j] = t;
            }
        }
        int64_t first = out->n;
        for (int64_t i = 0; i < take; i++) out->hits[out->n++] = (dv2_retrieve_hit){m[i], c, ps[m[i]], 0};
        qsort(out->hits + first, (size_t)(out->n - first), sizeof *out->hits, cmp_hit_row);
    }
    /* the cap: a seeded random subset, order kept */
    if (p->cap > 0 && out->n > p->cap) {
        uint8_t *keep = dv2_calloc_array((size_t)out->n, 1);
        int64_t *idx = dv2_malloc_array((size_t)out->n, sizeof(int64_t));
        if (!keep || !idx) {
            free(keep);
            free(idx);
            rc = dv2_error_set(err, DV2_ENOMEM, "retrieve: out of memory");
            goto done;
        }
        dv2_rng r;
        dv2_rng_seed(&r, p->seed, 0);
        for (int64_t i = 0; i < out->n; i++) idx[i] = i;
        for (int64_t i = 0; i < p->cap; i++) {
            int64_t j = i + (int64_t)dv2_rng_below(&r, (uint64_t)(out->n - i));
            int64_t t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
            keep[idx[i]] = 1;
        }
        int64_t o = 0;
        for (int64_t i = 0; i < out->n; i++)
            if (keep[i]) out->hits[o++] = out->hits[i];
        out->capped = out->n - o;
        out->n = o;
        free(keep);
        free(idx);
    }
done:
    free(cent);
    free(pc);
    free(ps);
    free(qcount);
    free(start);
    free(members);
    free(qc);
    free(qs);
    if (rc < 0) dv2_retrieve_out_free(out);
    return rc;
}
