/* test_knn_cuda.c — the GPU brute-force k-NN (kernels/cuda_knn.cu) against an
 * independent double-precision brute force computed here: similarities within
 * 2e-5 (FP32 SGEMM vs double: dim·2^-24 relative rounding), the same rows
 * except between candidates whose reference similarities are within that
 * tolerance of each other (their order is rounding), exact tie order (lower
 * row first) for duplicated database rows, self-exclusion, min_sim, k larger
 * than the database, and more than one database block (70001 rows).
 * Skips where the build has no CUDA or the machine no GPU. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dv2.h"
#include "core/rng.h"
#include "testutil.h"

#ifndef DV2_HAVE_CUDA
int main(void) { TU_SKIP("built without CUDA"); }
#else
#include "cuda_knn.h"

static void normalize(float *x, int64_t n, int d) {
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)x[i * d + j] * x[i * d + j];
        s = s > 0 ? 1 / sqrt(s) : 0;
        for (int j = 0; j < d; j++) x[i * d + j] = (float)(x[i * d + j] * s);
    }
}

typedef struct { double s; int64_t r; } cand;
static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->r < y->r ? -1 : x->r > y->r;
}

/* One case: n database rows (dup: every row duplicated once), nq queries. */
static void run_case(int64_t n, int64_t nq, int d, int k, float min_sim, int self, int dup, uint64_t seed) {
    dv2_rng rng;
    dv2_rng_seed(&rng, seed, 0);
    float *db = malloc(sizeof(float) * n * d), *q = malloc(sizeof(float) * nq * d);
    for (int64_t i = 0; i < n * d; i++) db[i] = (float)dv2_rng_normal(&rng);
    if (dup) for (int64_t i = 1; i < n; i += 2) memcpy(db + i * d, db + (i - 1) * d, sizeof(float) * d);
    normalize(db, n, d);
    if (self) memcpy(q, db, sizeof(float) * nq * d);
    else for (int64_t i = 0; i < nq * d; i++) q[i] = (float)dv2_rng_normal(&rng);
    normalize(q, nq, d);

    dv2_error err = {0};
    dv2_cuda_knn *s;
    float *sim = malloc(sizeof(float) * nq * k);
    int64_t *row = malloc(sizeof(int64_t) * nq * k);
    CHECKF(dv2_cuda_knn_create(&s, d, n, &err) == 0, "%s", err.msg);
    CHECKF(dv2_cuda_knn_add(s, db, n, &err) == 0, "%s", err.msg);
    for (int64_t i = 0; i < nq * k; i++) { sim[i] = NAN; row[i] = -7; } /* poison */
    CHECKF(dv2_cuda_knn_search(s, sim, row, q, nq, k, min_sim, self ? 0 : -1, &err) == 0, "%s", err.msg);
    dv2_cuda_knn_free(s);

    cand *c = malloc(sizeof(cand) * n);
    int bad = 0;
    const double tol = 2e-5;
    for (int64_t i = 0; i < nq && bad < 5; i++) {
        int64_t m = 0;
        for (int64_t r = 0; r < n; r++) {
            if (self && r == i) continue;
            double acc = 0;
            for (int j = 0; j < d; j++) acc += (double)q[i * d + j] * db[r * d + j];
            if (acc > min_sim + tol) c[m++] = (cand){acc, r};
            else if (acc > min_sim - tol) c[m++] = (cand){acc, r}; /* borderline: allowed either way */
        }
        qsort(c, (size_t)m, sizeof(cand), cand_cmp);
        for (int t = 0; t < k; t++) {
            float gs = sim[i * k + t];
            int64_t gr = row[i * k + t];
            if (t >= m || (c[t].s <= min_sim + tol && gr < 0)) {
                if (t >= m && gr != -1) { bad++; fprintf(stderr, "q%lld t%d: expected no result, got row %lld\n", (long long)i, t, (long long)gr); }
                continue;
            }
            if (gr < 0 || fabs(gs - c[t].s) > tol) {
                bad++;
                fprintf(stderr, "q%lld t%d: got (%g, %lld) want (%g, %lld)\n", (long long)i, t, gs, (long long)gr, c[t].s, (long long)c[t].r);
                continue;
            }
            if (gr != c[t].r) {
                /* acceptable only if the reference similarity of gr is within tol of c[t].s */
                double acc = 0;
                for (int j = 0; j < d; j++) acc += (double)q[i * d + j] * db[gr * d + j];
                if (fabs(acc - c[t].s) > tol) {
                    bad++;
                    fprintf(stderr, "q%lld t%d: row %lld (ref sim %g) instead of %lld (%g)\n", (long long)i, t, (long long)gr, acc, (long long)c[t].r, c[t].s);
                }
            }
            if (t > 0 && (sim[i * k + t] > sim[i * k + t - 1] ||
                          (sim[i * k + t] == sim[i * k + t - 1] && row[i * k + t] < row[i * k + t - 1]))) {
                bad++;
                fprintf(stderr, "q%lld: results out of order at %d\n", (long long)i, t);
            }
        }
    }
    CHECKF(bad == 0, "n=%lld nq=%lld d=%d k=%d min_sim=%g self=%d dup=%d", (long long)n, (long long)nq, d, k, min_sim, self, dup);
    if (dup) { /* duplicates of the query's own row pair up: each query's best is its twin */
        int twin_ok = 1;
        for (int64_t i = 0; i < nq && self; i++) twin_ok &= row[i * k] == (i ^ 1) && sim[i * k] > 0.9999f;
        CHECK(twin_ok);
    }
    free(c); free(sim); free(row); free(db); free(q);
}

int main(void) {
    char desc[256];
    int ndev = dv2_cuda_device_count(desc, sizeof desc);
    if (ndev == 0) TU_SKIP("no CUDA device");
    fprintf(stderr, "device: %s\n", desc);
    run_case(1000, 300, 384, 64, -INFINITY, 0, 0, 1);
    run_case(997, 129, 37, 10, -INFINITY, 0, 0, 2);
    run_case(50, 7, 1, 64, -INFINITY, 0, 0, 3);       /* k > n: padded with row -1 */
    run_case(3001, 2049, 64, 5, -INFINITY, 1, 1, 4);  /* self-search with duplicates, 2 query blocks */
    run_case(2000, 100, 48, 200, 0.2f, 0, 0, 5);      /* min_sim cuts the list */
    run_case(70001, 40, 16, 100, -INFINITY, 0, 0, 6); /* two database blocks */
    run_case(500, 20, 8, 1024, -INFINITY, 0, 0, 7);   /* the largest k */
    dv2_error err;
    dv2_cuda_knn *s;
    CHECK(dv2_cuda_knn_create(&s, 0, 10, &err) == DV2_EINVAL);
    CHECK(dv2_cuda_knn_create(&s, 4, 10, &err) == 0);
    float x[4 * 11] = {0};
    CHECK(dv2_cuda_knn_add(s, x, 11, &err) == DV2_EINVAL); /* over capacity */
    float o; int64_t r;
    CHECK(dv2_cuda_knn_search(s, &o, &r, x, 1, 0, -INFINITY, -1, &err) == DV2_EINVAL);
    dv2_cuda_knn_free(s);
    return tu_finish("test_knn_cuda");
}
#endif
