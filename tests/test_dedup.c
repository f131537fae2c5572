/* test_dedup.c — the search and dedup core on plain float arrays: exact
 * k-NN against a naive double-precision scan, independence from block sizes,
 * union-find roots, dedup components on planted near-copies (representative,
 * leakage), the split of rows between ranks, NaN rejection, and the FAISS
 * layer (Flat equals exact, IVF recall, k-means, save/load, errors). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curate/dedup.h"
#include "search/faissx.h"
#include "search/knn.h"
#include "core/rng.h"
#include "testutil.h"
#include "curate/uf.h"

static float *random_unit(int64_t n, int dim, uint64_t seed) {
    dv2_rng r;
    dv2_rng_seed(&r, seed, 0);
    float *x = malloc(sizeof(float) * (size_t)n * (size_t)dim);
    for (int64_t i = 0; i < n * dim; i++) x[i] = (float)dv2_rng_normal(&r);
    dv2_knn_normalize(x, n, dim, 0, NULL);
    return x;
}

static void test_exact_knn(void) {
    int64_t nb = 1237, nq = 97;
    int dim = 29, k = 10;
    float *db = random_unit(nb, dim, 1), *q = random_unit(nq, dim, 2);
    dv2_vecsrc src;
    dv2_vecsrc_floats(&src, db, nb, dim);
    dv2_knn_opts o;
    dv2_knn_opts_default(&o);
    o.db_block = 100; /* many partial blocks, streamed (no cache) */
    o.cache_bytes = -1;
    dv2_knn *s;
    dv2_error err;
    CHECK(dv2_knn_create(&s, &src, &o, &err) == 0);
    float *sim = malloc(sizeof(float) * nq * k);
    int64_t *row = malloc(sizeof(int64_t) * nq * k);
    CHECK(dv2_knn_search(s, sim, row, q, nq, k, -INFINITY, -1, &err) == 0);
    int bad = 0;
    for (int64_t i = 0; i < nq; i++) {
        /* naive: the k best by double dot product */
        double best[10];
        int64_t bi[10];
        for (int j = 0; j < k; j++) best[j] = -2, bi[j] = -1;
        for (int64_t r = 0; r < nb; r++) {
            double d = 0;
            for (int c = 0; c < dim; c++) d += (double)q[i * dim + c] * db[r * dim + c];
            int pos = k;
            while (pos > 0 && d > best[pos - 1]) pos--;
            if (pos < k) {
                for (int j = k - 1; j > pos; j--) best[j] = best[j - 1], bi[j] = bi[j - 1];
                best[pos] = d;
                bi[pos] = r;
            }
        }
        for (int j = 0; j < k; j++) {
            if (fabs(sim[i * k + j] - best[j]) > 1e-5) bad++;
            if (row[i * k + j] != bi[j] && fabs(best[j] - best[j < k - 1 ? j + 1 : j]) > 1e-5) bad++;
            if (j > 0 && sim[i * k + j] > sim[i * k + j - 1]) bad++;
        }
    }
    CHECKF(bad == 0, "%d mismatches against the naive scan", bad);

    /* other block sizes, the converted-once cache and a self-search give the
     * same answers */
    dv2_knn *s2;
    o.db_block = 8192;
    o.cache_bytes = 0;
    CHECK(dv2_knn_create(&s2, &src, &o, &err) == 0);
    float *sim2 = malloc(sizeof(float) * nq * k);
    int64_t *row2 = malloc(sizeof(int64_t) * nq * k);
    CHECK(dv2_knn_search(s2, sim2, row2, q, nq, k, -INFINITY, -1, &err) == 0);
    int diff = 0;
    for (int64_t i = 0; i < nq * k; i++) diff += row[i] != row2[i];
    CHECKF(diff == 0, "%d rows differ between block sizes", diff);
    /* self-search: database rows 200.. as queries never return themselves */
    float *qs = malloc(sizeof(float) * 50 * dim);
    memcpy(qs, db + 200 * dim, sizeof(float) * 50 * dim);
    CHECK(dv2_knn_search(s2, sim2, row2, qs, 50, k, -INFINITY, 200, &err) == 0);
    int selfhits = 0;
    for (int64_t i = 0; i < 50; i++)
        for (int j = 0; j < k; j++) selfhits += row2[i * k + j] == 200 + i;
    CHECK(selfhits == 0);
    /* min_sim drops candidates */
    CHECK(dv2_knn_search(s2, sim2, row2, q, nq, k, 0.3f, -1, &err) == 0);
    int below = 0;
    for (int64_t i = 0; i < nq * k; i++) below += row2[i] >= 0 && !(sim2[i] > 0.3f);
    CHECK(below == 0);
    free(qs);
    dv2_knn_free(s2);
    free(sim2);
    free(row2);

    if (dv2_faissx_available()) {
        /* FAISS Flat gives the same neighbours; IVF recalls most of them */
        dv2_knn *f;
        o.backend = DV2_KNN_FAISS;
        o.factory = "Flat";
        CHECK(dv2_knn_create(&f, &src, &o, &err) == 0);
        float *fs = malloc(sizeof(float) * nq * k);
        int64_t *fr = malloc(sizeof(int64_t) * nq * k);
        CHECK(dv2_knn_search(f, fs, fr, q, nq, k, -INFINITY, -1, &err) == 0);
        CHECK(tu_close("faiss Flat similarities", fs, sim, nq * k, 1e-5, 1e-5));
        dv2_knn_free(f);
        o.factory = "IVF16,Flat";
        o.nprobe = 4;
        CHECK(dv2_knn_create(&f, &src, &o, &err) == 0);
        CHECK(dv2_knn_search(f, fs, fr, q, nq, k, -INFINITY, -1, &err) == 0);
        int64_t hit = 0;
        for (int64_t i = 0; i < nq; i++)
            for (int j = 0; j < k; j++)
                for (int l = 0; l < k; l++) hit += fr[i * k + j] == row[i * k + l];
        CHECKF(hit >= 0.6 * nq * k && hit < nq * k, "IVF16 nprobe 4 recall %.3f", (double)hit / (nq * k));
        dv2_knn_free(f);
        free(fs);
        free(fr);
    }
    dv2_knn_free(s);
    free(sim);
    free(row);
    free(db);
    free(q);
}

static void test_unionfind(void) {
    dv2_uf uf;
    CHECK(dv2_uf_init(&uf, 10, NULL) == 0);
    CHECK(dv2_uf_union(&uf, 7, 3) == 1);
    CHECK(dv2_uf_union(&uf, 9, 7) == 1);
    CHECK(dv2_uf_union(&uf, 3, 9) == 0);
    CHECK(dv2_uf_union(&uf, 5, 8) == 1);
    CHECK(dv2_uf_union(&uf, 8, 9) == 1);
    dv2_uf_flatten(&uf);
    CHECK(uf.parent[9] == 3 && uf.parent[7] == 3 && uf.parent[5] == 3 && uf.parent[8] == 3);
    CHECK(uf.parent[0] == 0 && uf.parent[4] == 4);
    dv2_uf_free(&uf);
}

/* Planted groups: group g has 1 + g%4 copies of a base vector with small
 * noise; the rest are random distractors.  Rows are interleaved. */
static void test_dedup_groups(void) {
    int dim = 128, ngroups = 40, ndistract = 300; /* random pairs: cos ~ N(0, 1/128) */
    int64_t n = 0;
    int64_t cap = ngroups * 4 + ndistract;
    float *x = malloc(sizeof(float) * cap * dim);
    int *truth = malloc(sizeof(int) * cap); /* group, or -1 */
    dv2_rng r;
    dv2_rng_seed(&r, 7, 0);
    float *base = random_unit(ngroups, dim, 11), *dis = random_unit(ndistract, dim, 12);
    for (int g = 0; g < ngroups; g++)
        for (int c = 0; c <= g % 4; c++) {
            for (int j = 0; j < dim; j++) x[n * dim + j] = base[g * dim + j] + 0.05f * (float)dv2_rng_normal(&r);
            truth[n++] = g;
        }
    for (int i = 0; i < ndistract; i++) {
        memcpy(x + n * dim, dis + i * dim, sizeof(float) * dim);
        truth[n++] = -1;
    }
    /* shuffle rows so groups are not contiguous */
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)dv2_rng_below(&r, (uint64_t)i + 1);
        for (int c = 0; c < dim; c++) {
            float t = x[i * dim + c];
            x[i * dim + c] = x[j * dim + c];
            x[j * dim + c] = t;
        }
        int t = truth[i];
        truth[i] = truth[j];
        truth[j] = t;
    }
    dv2_vecsrc pool, against;
    dv2_vecsrc_floats(&pool, x, n, dim);
    /* the against set: a noisy copy of group 5's base */
    float ev[128];
    for (int j = 0; j < dim; j++) ev[j] = base[5 * dim + j] + 0.05f * (float)dv2_rng_normal(&r);
    dv2_vecsrc_floats(&against, ev, 1, dim);

    dv2_dedup_params p;
    dv2_dedup_params_default(&p);
    p.k = 8;
    p.query_block = 64;
    dv2_dist d;
    dv2_dist_init_single(&d);
    dv2_dedup_part part;
    dv2_dedup_result res;
    dv2_error err;
    CHECK(dv2_dedup_search(&part, &pool, &against, 0, n, &p, &err) == 0);
    CHECK(dv2_dedup_merge(&res, &part, &d, p.against_threshold, &err) == 0);
    int wrong = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) {
            int same_truth = truth[i] >= 0 && truth[i] == truth[j];
            wrong += same_truth != (res.root[i] == res.root[j]);
        }
    CHECKF(wrong == 0, "%d pairs grouped wrongly", wrong);
    int64_t want_kept = ndistract, want_leak = 0;
    for (int g = 0; g < ngroups; g++) want_kept += g != 5;
    want_leak = 1 + 5 % 4;
    CHECKF(res.kept == want_kept, "kept %lld, wanted %lld", (long long)res.kept, (long long)want_kept);
    CHECKF(res.leaked == want_leak, "leaked %lld, wanted %lld", (long long)res.leaked, (long long)want_leak);
    CHECK(res.largest == 4);
    CHECK(res.kept + res.copies + res.leaked == n);
    for (int64_t i = 0; i < n; i++) {
        CHECK(res.root[i] <= i);
        if (res.root[i] == i) CHECK(res.status[i] != DV2_DEDUP_COPY);
        if (truth[i] == 5) CHECK(res.status[i] == DV2_DEDUP_LEAK);
    }
    /* two "ranks" run in one process, merged by hand, equal one process */
    int64_t a0, a1, b0, b1;
    dv2_dedup_split(n, p.query_block, 0, 2, &a0, &a1);
    dv2_dedup_split(n, p.query_block, 1, 2, &b0, &b1);
    CHECK(a0 == 0 && a1 == b0 && b1 == n && a1 % p.query_block == 0);
    dv2_dedup_part pa, pb;
    CHECK(dv2_dedup_search(&pa, &pool, &against, a0, a1, &p, &err) == 0);
    CHECK(dv2_dedup_search(&pb, &pool, &against, b0, b1, &p, &err) == 0);
    dv2_uf_flatten(&pb.uf);
    for (int64_t i = 0; i < n; i++) dv2_uf_union(&pa.uf, i, pb.uf.parent[i]);
    dv2_uf_flatten(&pa.uf);
    int differ = 0;
    for (int64_t i = 0; i < n; i++) differ += pa.uf.parent[i] != res.root[i];
    CHECK(differ == 0);
    dv2_dedup_part_free(&pa);
    dv2_dedup_part_free(&pb);
    dv2_dedup_part_free(&part);
    dv2_dedup_result_free(&res);

    /* a NaN vector is an error naming the row, not a crash */
    x[17 * dim + 3] = NAN;
    int rc = dv2_dedup_search(&part, &pool, NULL, 0, n, &p, &err);
    CHECK(rc == DV2_ECORRUPT);
    CHECKF(strstr(err.msg, "row 17") != NULL, "message: %s", err.msg);
    free(x);
    free(truth);
    free(base);
    free(dis);
}

static void test_faiss_layer(void) {
    if (!dv2_faissx_available()) {
        dv2_faissx_index *ix;
        dv2_error err;
        CHECK(dv2_faissx_index_create(&ix, 8, "Flat", &err) == DV2_EUNSUPPORTED);
        return;
    }
    dv2_error err;
    dv2_faissx_index *ix = NULL;
    CHECK(dv2_faissx_index_create(&ix, 16, "NoSuchIndex99", &err) < 0);
    CHECK(ix == NULL);
    CHECKF(strstr(err.msg, "faiss") != NULL, "message: %s", err.msg);
    int64_t n = 2000;
    int dim = 16, k = 20;
    float *x = random_unit(n, dim, 5);
    CHECK(dv2_faissx_index_create(&ix, dim, "IVF8,Flat", &err) == 0);
    CHECK(dv2_faissx_index_add(ix, x, n, &err) < 0); /* untrained */
    CHECK(dv2_faissx_index_train(ix, x, n, &err) == 0);
    CHECK(dv2_faissx_index_add(ix, x, n, &err) == 0);
    CHECK(dv2_faissx_index_set_nprobe(ix, 8, &err) == 0);
    CHECK(dv2_faissx_index_ntotal(ix) == n && dv2_faissx_index_nlist(ix) == 8);
    float sim[20];
    int64_t row[20];
    CHECK(dv2_faissx_index_search(ix, sim, row, x + 5 * dim, 1, k, &err) == 0);
    CHECK(row[0] == 5 && fabsf(sim[0] - 1) < 1e-5f);
    int64_t *lims, *rr;
    float *ss;
    CHECK(dv2_faissx_index_range_search_alloc(ix, &lims, &rr, &ss, x + 5 * dim, 1, 0.5f, &err) == 0);
    int ok = lims[1] >= 1;
    for (int64_t j = lims[0]; j < lims[1]; j++) ok &= ss[j] > 0.5f;
    CHECK(ok);
    free(lims);
    free(rr);
    free(ss);
    CHECK(dv2_faissx_index_save(ix, "ix.faiss", 0, NULL, &err) == 0);
    CHECK(dv2_faissx_index_save(ix, "ix.faiss", 0, NULL, &err) == DV2_EEXIST);
    dv2_faissx_index *iy;
    CHECK(dv2_faissx_index_load(&iy, "ix.faiss", &err) == 0);
    CHECK(iy && dv2_faissx_index_ntotal(iy) == n && dv2_faissx_index_ids(iy) == NULL);
    dv2_faissx_index_free(iy);
    /* with ids: an IndexIDMap that loads back as the same index and its ids */
    uint64_t *rid = malloc(sizeof *rid * (size_t)n);
    for (int64_t i = 0; i < n; i++) rid[i] = 0xfedcba9876543210ull ^ (uint64_t)(i * 7919);
    CHECK(dv2_faissx_index_save(ix, "ids.faiss", 0, rid, &err) == 0);
    CHECK(dv2_faissx_index_load(&iy, "ids.faiss", &err) == 0);
    CHECK(iy && dv2_faissx_index_ntotal(iy) == n && dv2_faissx_index_nlist(iy) == 8);
    const uint64_t *got = iy ? dv2_faissx_index_ids(iy) : NULL;
    CHECK(got && memcmp(got, rid, sizeof *rid * (size_t)n) == 0);
    CHECK(iy && dv2_faissx_index_search(iy, sim, row, x + 5 * dim, 1, k, &err) == 0 && row[0] == 5);
    dv2_faissx_index_free(iy);
    free(rid);
    CHECK(dv2_faissx_index_load(&iy, "missing.faiss", &err) == DV2_EIO);
    FILE *f = fopen("junk.faiss", "wb");
    fputs("not an index", f);
    fclose(f);
    CHECK(dv2_faissx_index_load(&iy, "junk.faiss", &err) < 0);
    dv2_faissx_index_free(ix);
    /* k-means: spherical centroids have unit norm; too few points is an error */
    float cent[4 * 16];
    double obj = 0;
    CHECK(dv2_faissx_kmeans(cent, &obj, x, n, dim, 4, 10, 1, 1234, 0, &err) == 0);
    for (int c = 0; c < 4; c++) {
        double ss2 = 0;
        for (int j = 0; j < dim; j++) ss2 += cent[c * dim + j] * cent[c * dim + j];
        CHECK(fabs(ss2 - 1) < 1e-4);
    }
    CHECK(obj > 0 && obj <= n);
    CHECK(dv2_faissx_kmeans(cent, &obj, x, 3, dim, 4, 10, 1, 1234, 0, &err) == DV2_EINVAL);
    free(x);
}

int main(void) {
    test_exact_knn();
    test_unionfind();
    test_dedup_groups();
    test_faiss_layer();
    return tu_finish("test_dedup");
}
