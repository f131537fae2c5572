/* bench_knn_gpu.c — times kernels/cuda_knn.cu: exact cosine top-k of nq queries
 * against n database rows of dimension d, median of several runs after a
 * warm-up.  Writes the same random data to files (db.f32, q.f32) so the
 * PyTorch baseline in bench/b_knn_gpu.sh searches exactly the same vectors.
 * Usage: bench_knn_gpu N NQ D K [REPEATS] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/dv2.h"
#include "core/rng.h"

#ifndef DV2_HAVE_CUDA
int main(void) { printf("skip: built without CUDA\n"); return 77; }
#else
#include "cuda_knn.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: %s N NQ D K [REPEATS]\n", argv[0]); return 2; }
    long long n = atoll(argv[1]), nq = atoll(argv[2]);
    int d = atoi(argv[3]), k = atoi(argv[4]), reps = argc > 5 ? atoi(argv[5]) : 5;
    char desc[256];
    if (dv2_cuda_device_count(desc, sizeof desc) == 0) { printf("skip: no CUDA device\n"); return 77; }
    dv2_rng rng;
    dv2_rng_seed(&rng, 1, 0);
    float *db = malloc(sizeof(float) * n * d), *q = malloc(sizeof(float) * nq * d);
    for (long long i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) { db[i * d + j] = (float)dv2_rng_normal(&rng); s += db[i * d + j] * db[i * d + j]; }
        for (int j = 0; j < d; j++) db[i * d + j] = (float)(db[i * d + j] / sqrt(s));
    }
    for (long long i = 0; i < nq; i++) memcpy(q + i * d, db + (i * 7919 % n) * d, sizeof(float) * d);
    FILE *f = fopen("db.f32", "wb"); fwrite(db, sizeof(float), (size_t)n * d, f); fclose(f);
    f = fopen("q.f32", "wb"); fwrite(q, sizeof(float), (size_t)nq * d, f); fclose(f);
    dv2_error err;
    dv2_cuda_knn *s;
    if (dv2_cuda_knn_create(&s, d, n, &err) || dv2_cuda_knn_add(s, db, n, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    float *sim = malloc(sizeof(float) * nq * k);
    int64_t *row = malloc(sizeof(int64_t) * nq * k);
    double t[64];
    if (reps > 64) reps = 64;
    dv2_cuda_knn_search(s, sim, row, q, nq < 2048 ? nq : 2048, k, -INFINITY, -1, &err); /* warm-up */
    for (int r = 0; r < reps; r++) {
        double t0 = dv2_now();
        if (dv2_cuda_knn_search(s, sim, row, q, nq, k, -INFINITY, -1, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        t[r] = dv2_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_d);
    f = fopen("rows.i64", "wb"); fwrite(row, sizeof(int64_t), (size_t)nq * k, f); fclose(f);
    printf("dv2 cuda knn: %s: n=%lld nq=%lld d=%d k=%d: median %.4f s (%.0f queries/s)\n", desc, n, nq, d, k, t[reps / 2], nq / t[reps / 2]);
    printf("OURS %.6f\n", t[reps / 2]);
    dv2_cuda_knn_free(s);
    return 0;
}
#endif
