/* test_probe.c — dv2-probe's k-NN classifier on the one exact search of
 * lib/search/knn.h: neighbours in place over raw rows (dv2_vecsrc_rows)
 * against a double-precision brute force, exact ties to the lower row, results
 * bit for bit the same at 1, 2, 3 and 7 threads, for any database block
 * and any cut of the test set into blocks; the evaluation pass of
 * lib/eval/probe_eval.h over matrix files. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "eval/probe.h"
#include "eval/probe_eval.h"
#include "format/matrix.h"
#include "search/knn.h"
#include "testutil.h"

enum { N = 1500, DIM = 37, NQ = 137, K = 13, LD = DIM + 3, NCLASS = 7 };

static float xs[N * LD], qs[NQ * DIM];
static int32_t labels[N], qlabels[NQ];
static uint64_t ids[N], qids[NQ];

static void make_data(void) {
    dv2_rng r;
    dv2_rng_seed(&r, 42, 0);
    for (int i = 0; i < N; i++) {
        labels[i] = (int32_t)(dv2_rng_u64(&r) % NCLASS);
        ids[i] = 1000 + (uint64_t)i;
        for (int j = 0; j < LD; j++) xs[(size_t)i * LD + j] = j < DIM ? (float)dv2_rng_normal(&r) + labels[i] * 0.3f : NAN;
    }
    /* exact ties: rows 17 and 900 repeat row 5 (900 scaled: the same cosine) */
    for (int j = 0; j < DIM; j++) {
        xs[17 * LD + j] = xs[5 * LD + j];
        xs[900 * LD + j] = 2.0f * xs[5 * LD + j];
    }
    for (int j = DIM / 2; j < DIM; j++) xs[33 * LD + j] = 0; /* some structure */
    for (int i = 0; i < NQ; i++) {
        qlabels[i] = (int32_t)(dv2_rng_u64(&r) % NCLASS);
        qids[i] = 5000 + (uint64_t)i;
        for (int j = 0; j < DIM; j++) qs[(size_t)i * DIM + j] = (float)dv2_rng_normal(&r) + qlabels[i] * 0.3f;
    }
    for (int j = 0; j < DIM; j++) qs[j] = xs[5 * LD + j]; /* query 0 is row 5 */
}

static void test_search(const dv2_probe_db *db, const float *q) {
    dv2_error err = {0};
    float sim[4][NQ * K];
    int64_t row[4][NQ * K];
    const int threads[4] = {1, 2, 3, 7};
    const int64_t blocks[4] = {8192, 100, 1, 777};
    for (int t = 0; t < 4; t++) {
        omp_set_num_threads(threads[t]);
        dv2_knn_opts o;
        dv2_knn_opts_default(&o);
        o.db_block = blocks[t]; /* in place: the whole database is one block whatever this says */
        dv2_knn *s = NULL;
        CHECKF(dv2_knn_create(&s, &db->src, &o, &err) == 0, "%s", err.msg);
        if (!s) return;
        CHECKF(dv2_knn_search(s, sim[t], row[t], q, NQ, K, -INFINITY, -1, &err) == 0, "%s", err.msg);
        dv2_knn_free(s);
    }
    omp_set_num_threads(2);
    for (int t = 1; t < 4; t++) {
        CHECKF(memcmp(sim[0], sim[t], sizeof sim[0]) == 0, "similarities at %d threads differ from 1 thread", threads[t]);
        CHECKF(memcmp(row[0], row[t], sizeof row[0]) == 0, "neighbours at %d threads differ from 1 thread", threads[t]);
    }
    /* query 0 is row 5: rows 5, 17, 900 hold the same direction (BLAS may
     * round their products apart in the last bit) */
    int64_t top[3] = {row[0][0], row[0][1], row[0][2]};
    int found = 0;
    for (int j = 0; j < 3; j++) found += top[j] == 5 || top[j] == 17 || top[j] == 900;
    CHECKF(found == 3 && fabsf(sim[0][2] - 1.0f) < 1e-6f, "%lld %lld %lld: %.9g", (long long)top[0],
           (long long)top[1], (long long)top[2], sim[0][2]);
    /* against a double-precision brute force: sorted, and no row outside the
     * result is better by more than rounding */
    int bad = 0;
    for (int i = 0; i < NQ; i++) {
        double *c = malloc(sizeof(double) * N), qn = 0;
        for (int j = 0; j < DIM; j++) qn += (double)q[i * DIM + j] * q[i * DIM + j];
        for (int r = 0; r < N; r++) {
            double d = 0, xn = 0;
            for (int j = 0; j < DIM; j++) {
                d += (double)q[i * DIM + j] * xs[(size_t)r * LD + j];
                xn += (double)xs[(size_t)r * LD + j] * xs[(size_t)r * LD + j];
            }
            c[r] = d / sqrt(qn * xn);
        }
        const float *si = sim[0] + i * K;
        const int64_t *ri = row[0] + i * K;
        for (int j = 0; j < K; j++) {
            if (j && (si[j] > si[j - 1] || (si[j] == si[j - 1] && ri[j] < ri[j - 1]))) bad++;
            if (fabs(c[ri[j]] - si[j]) > 1e-5) bad++;
        }
        for (int r = 0; r < N; r++) {
            int in = 0;
            for (int j = 0; j < K; j++) in |= ri[j] == r;
            if (!in && c[r] > si[K - 1] + 1e-5) bad++;
        }
        free(c);
    }
    CHECKF(bad == 0, "%d neighbours out of order or missing against the brute force", bad);
}

/* Exact ties: zero rows score exactly 0 for every query and rank by row;
 * the query's cosine with every other row is negative. */
static void test_ties(void) {
    enum { M = 60 };
    static float x[M * DIM];
    static int32_t lab[M];
    static uint64_t id[M];
    dv2_rng r;
    dv2_rng_seed(&r, 7, 0);
    memset(x, 0, sizeof x);
    for (int i = 0; i < M; i++) {
        lab[i] = i % 3;
        id[i] = (uint64_t)i;
        if (i % 4 == 0) /* rows 0, 4, 8, ...: pointing away from the query */
            for (int j = 0; j < DIM; j++) x[i * DIM + j] = j ? 0.1f * (float)dv2_rng_normal(&r) : -1.0f;
    }
    float q[DIM] = {1.0f};
    dv2_error err = {0};
    dv2_probe_db db;
    CHECK(dv2_probe_db_init(&db, x, M, DIM, DIM, lab, id, "ties", &err) == 0);
    for (int t = 1; t <= 3; t += 2) {
        omp_set_num_threads(t);
        dv2_knn *s = NULL;
        float sim[K];
        int64_t row[K];
        CHECK(dv2_knn_create(&s, &db.src, NULL, &err) == 0);
        CHECK(s && dv2_knn_search(s, sim, row, q, 1, K, -INFINITY, -1, &err) == 0);
        int bad = 0;
        for (int j = 0, want = 1; j < K; j++, want += want % 4 == 3 ? 2 : 1) bad += sim[j] != 0.0f || row[j] != want;
        CHECKF(bad == 0, "ties at %d threads: rows %lld %lld %lld ...", t, (long long)row[0], (long long)row[1],
               (long long)row[2]);
        dv2_knn_free(s);
    }
    omp_set_num_threads(2);
    dv2_probe_db_free(&db);
}

/* The classifier's counts: the same at every thread count and for every cut
 * of the test set into blocks. */
static void test_classifier(const dv2_probe_db *db, const float *q) {
    dv2_error err = {0};
    const int ks[3] = {20, 1, 5};
    uint64_t top1[4][3], top5[4][3];
    const int threads[4] = {1, 2, 3, 7};
    const size_t cut[4] = {NQ, 7, 1, 64};
    for (int t = 0; t < 4; t++) {
        omp_set_num_threads(threads[t]);
        dv2_probe_knn s;
        CHECKF(dv2_probe_knn_init(&s, db, ks, 3, 0.07, 0, DV2_KNN_EXACT, &err) == 0, "%s", err.msg);
        CHECK(s.kmax == 20 && s.ks[0] == 1 && s.ks[2] == 20);
        for (size_t i0 = 0; i0 < NQ; i0 += cut[t]) {
            size_t n = NQ - i0 < cut[t] ? NQ - i0 : cut[t];
            CHECKF(dv2_probe_knn_block(&s, db, q + i0 * DIM, n, qlabels + i0, i0, "q", &err) == 0, "%s", err.msg);
        }
        CHECK(s.n == NQ);
        memcpy(top1[t], s.top1, sizeof top1[t]);
        memcpy(top5[t], s.top5, sizeof top5[t]);
        dv2_probe_knn_free(&s);
    }
    omp_set_num_threads(2);
    for (int t = 1; t < 4; t++)
        CHECK(!memcmp(top1[0], top1[t], sizeof top1[0]) && !memcmp(top5[0], top5[t], sizeof top5[0]));
    CHECK(top1[0][0] > NQ / NCLASS && top5[0][2] >= top1[0][2]);
    /* a GPU search the build lacks (or a machine without a GPU) is an error, not a fallback */
    dv2_probe_knn s;
    int rc = dv2_probe_knn_init(&s, db, ks, 3, 0.07, 0, DV2_KNN_CUDA, &err);
    if (rc) CHECKF(strstr(err.msg, "CUDA") || strstr(err.msg, "cuda"), "%s", err.msg);
    dv2_probe_knn_free(&s);
}

static int write_matrix(const char *path, const float *x, size_t ld, const uint64_t *id, const int32_t *lab, size_t n) {
    dv2_error err = {0};
    dv2_matrix_info info;
    dv2_matrix_info_init(&info, DV2_MATRIX_F32, DIM);
    dv2_matrix_writer *w = NULL;
    float *dense = malloc(sizeof(float) * n * DIM);
    for (size_t i = 0; i < n; i++) memcpy(dense + i * DIM, x + i * ld, sizeof(float) * DIM);
    int rc = dv2_matrix_writer_open(&w, path, &info, NULL, &err);
    if (!rc) rc = dv2_matrix_writer_write(w, id, lab, dense, n, &err);
    if (!rc) rc = dv2_matrix_writer_close(w, &err);
    free(dense);
    if (rc) fprintf(stderr, "%s: %s\n", path, err.msg);
    return rc;
}

/* dv2_probe_eval_run over files gives the counts of the pieces run by hand. */
static void test_eval(const dv2_probe_db *db) {
    if (write_matrix("train.emb", xs, LD, ids, labels, N) || write_matrix("test.emb", qs, DIM, qids, qlabels, NQ)) {
        CHECK(0);
        return;
    }
    dv2_error err = {0};
    dv2_probe_eval_opts o;
    dv2_probe_eval_opts_default(&o);
    o.knn = o.retrieval = 1;
    o.ks[0] = 5, o.ks[1] = 1, o.nk = 2;
    o.block = 10;
    dv2_probe_eval e;
    CHECKF(dv2_probe_eval_run(&e, "train.emb", "test.emb", &o, &err) == 0, "%s", err.msg);
    CHECK(e.test_rows == NQ && e.knn.n == NQ && e.train.rows == N && e.retr.n + e.retr.no_positive == NQ);
    dv2_probe_knn s;
    const int ks[2] = {5, 1};
    float *qn = malloc(sizeof qs);
    memcpy(qn, qs, sizeof qs);
    CHECK(dv2_probe_normalize(qn, NQ, DIM, 0, "q", &err) == 0);
    CHECK(dv2_probe_knn_init(&s, db, ks, 2, 0.07, 0, DV2_KNN_EXACT, &err) == 0);
    CHECK(dv2_probe_knn_block(&s, db, qn, NQ, qlabels, 0, "q", &err) == 0);
    CHECK(!memcmp(s.top1, e.knn.top1, sizeof s.top1) && !memcmp(s.top5, e.knn.top5, sizeof s.top5));
    dv2_probe_knn_free(&s);
    free(qn);
    dv2_probe_eval_free(&e);
    /* errors name the matrix */
    CHECK(dv2_probe_eval_run(&e, "train.emb", "missing.emb", &o, &err) != 0 && strstr(err.msg, "missing.emb"));
    dv2_probe_eval_free(&e);
}

int main(void) {
    make_data();
    dv2_error err = {0};
    dv2_probe_db db;
    CHECKF(dv2_probe_db_init(&db, xs, N, DIM, LD, labels, ids, "train", &err) == 0, "%s", err.msg);
    /* the source in place reads normalised rows */
    float r[2 * DIM];
    CHECK(dv2_vecsrc_read(&db.src, r, 5, 2, &err) == 0);
    double n5 = 0;
    for (int j = 0; j < DIM; j++) n5 += (double)r[j] * r[j];
    CHECK(fabs(n5 - 1) < 1e-5 && fabsf(r[0] - xs[5 * LD] * db.inv_norm[5]) < 1e-7f);
    float *q = malloc(sizeof qs);
    memcpy(q, qs, sizeof qs);
    CHECK(dv2_probe_normalize(q, NQ, DIM, 0, "q", &err) == 0);
    test_search(&db, q);
    test_ties();
    test_classifier(&db, q);
    test_eval(&db);
    free(q);
    dv2_probe_db_free(&db);
    return tu_finish("test_probe");
}
