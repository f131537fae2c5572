/* hkmeans.c — hierarchical k-means with resampling and hierarchical
 * balanced sampling (see hkmeans.h).
 *
 * Files of a tree directory (native little-endian, as every dv2 format):
 *   pool.ids      "DV2HKMI\n", n (i64), then n ids (u64)
 *   level-L.hkm   "DV2HKML\n", a header of the level's parameters and the
 *                 xxh64 of its input, then centroids (k × dim f32), assign
 *                 (n i32) and dist (n f32). */
#include "curate/hkmeans.h"

#include <cblas.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/afile.h"
#include "core/hash.h"
#include "core/rng.h"
#include "ops/cpu/cpu.h"

static const char k_ids_magic[8] = {'D', 'V', '2', 'H', 'K', 'M', 'I', '\n'};
static const char k_lvl_magic[8] = {'D', 'V', '2', 'H', 'K', 'M', 'L', '\n'};

typedef struct lvl_header {
    char magic[8];
    uint32_t version, level;
    int64_t n;
    int32_t k, dim, steps, sample, closest, niter;
    uint64_t seed, input_hash;
} lvl_header;

void dv2_hkm_params_default(dv2_hkm_params *p) {
    memset(p, 0, sizeof *p);
    p->resample_closest = 1;
    p->niter = 50;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void level_free(dv2_hkm_level *l) {
    free(l->centroids);
    free(l->assign);
    free(l->dist);
    memset(l, 0, sizeof *l);
}

void dv2_hkm_tree_free(dv2_hkm_tree *t) {
    if (!t) return;
    for (int i = 0; i < DV2_HKM_MAX_LEVELS; i++) level_free(&t->lv[i]);
    free(t->ids);
    memset(t, 0, sizeof *t);
}

/* ---- k-means pieces ------------------------------------------------------ */

/* Nearest centroid (squared L2) of each of the n rows of x: |x|^2 - 2 x.c +
 * |c|^2 with the cross term as one GEMM per block of rows, then the exact
 * distance in double to every centroid within the GEMM's rounding bound of
 * the best (eps (|c|^2 + 2 (dim + 2) |x| |c|), doubled twice): the nearest
 * by that exact distance (ties to the lower index) and its distance do not
 * depend on how the GEMM rounds, which changes with its number of threads
 * (and so between one process and several).  Returns the number of empty
 * clusters in *empty. */
static int assign_all(int32_t *assign, float *dist, int64_t *empty, const float *x, int64_t n, int dim,
                      const float *c, int k, const dv2_dist *dd, dv2_error *err) {
    int world = dd ? dd->world : 1, rank = dd ? dd->rank : 0;
    const int64_t B = 2048;
    float *g = malloc(sizeof(float) * (size_t)B * (size_t)k), *cn = malloc(sizeof(float) * (size_t)k);
    int64_t *cnt = calloc((size_t)k, sizeof *cnt);
    if (!g || !cn || !cnt) {
        free(g), free(cn), free(cnt);
        return dv2_error_set(err, DV2_ENOMEM, "k-means assignment: out of memory (%d clusters)", k);
    }
    double cmax = 0;
    for (int j = 0; j < k; j++) {
        double s = 0;
        for (int d = 0; d < dim; d++) s += (double)c[(size_t)j * dim + d] * c[(size_t)j * dim + d];
        cn[j] = (float)s;
        if (s > cmax) cmax = s;
    }
    cmax = sqrt(cmax);
    if (world > 1) {
        memset(assign, 0, sizeof(int32_t) * (size_t)n);
        memset(dist, 0, sizeof(float) * (size_t)n);
    }
    for (int64_t r0 = 0, blk = 0; r0 < n; r0 += B, blk++) {
        if (blk % world != rank) continue;
        int64_t m = n - r0 < B ? n - r0 : B;
        /* OpenMP blocks of single-threaded BLAS calls: OpenBLAS's own pool
         * would spin against the OpenMP threads of the scan below */
        dv2_cpu_sgemm(0, 1, (int)m, k, dim, 1.0f, x + (size_t)r0 * dim, dim, c, dim, 0.0f, g, k);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < m; i++) {
            const float *xi = x + (size_t)(r0 + i) * dim;
            double xn = 0;
            for (int d = 0; d < dim; d++) xn += (double)xi[d] * xi[d];
            const float *gi = g + (size_t)i * k;
            float bd = FLT_MAX, bd2 = FLT_MAX; /* the best and the second best */
            int first = 0;
            for (int j = 0; j < k; j++) {
                float v = cn[j] - 2.0f * gi[j];
                if (v < bd) bd2 = bd, bd = v, first = j;
                else if (v < bd2) bd2 = v;
            }
            double tol = 4.0 * FLT_EPSILON * (cmax * cmax + 2.0 * (dim + 2) * sqrt(xn) * cmax + fabs((double)bd));
            /* one candidate (the usual case) or a scan for all of them */
            int best = 0, j0 = 0, j1 = k;
            if ((double)bd2 > (double)bd + tol) j0 = first, j1 = first + 1;
            double be = DBL_MAX;
            for (int j = j0; j < j1; j++) {
                if ((double)(cn[j] - 2.0f * gi[j]) > (double)bd + tol) continue;
                const float *cj = c + (size_t)j * dim;
                double s = 0;
                for (int d = 0; d < dim; d++) {
                    double v = (double)xi[d] - cj[d];
                    s += v * v;
                }
                if (s < be) be = s, best = j;
            }
            assign[r0 + i] = best;
            dist[r0 + i] = (float)be;
        }
    }
    int rc = 0;
    if (world > 1) {
        /* each row was computed by exactly one rank, the others hold 0 there,
         * so the sums are exact copies */
        int64_t *tmp = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
        if (!tmp) rc = dv2_error_set(err, DV2_ENOMEM, "k-means assignment: out of memory");
        for (int64_t i = 0; !rc && i < n; i++) tmp[i] = assign[i];
        if (!rc) rc = dv2_dist_allreduce_sum_i64(dd, tmp, (size_t)n, err);
        if (!rc) rc = dv2_dist_allreduce_sum_f32(dd, dist, (size_t)n, err);
        for (int64_t i = 0; !rc && i < n; i++) assign[i] = (int32_t)tmp[i];
        free(tmp);
        if (rc) {
            free(g), free(cn), free(cnt);
            return rc;
        }
    }
    for (int64_t i = 0; i < n; i++) cnt[assign[i]]++;
    int64_t e = 0;
    for (int j = 0; j < k; j++) e += cnt[j] == 0;
    *empty = e;
    free(g), free(cn), free(cnt);
    return 0;
}

/* An orthonormal basis q (m rows of dim) of the m leading principal
 * directions of x: the covariance of at most 8192 evenly spaced rows, then
 * orthogonal iteration (30 products, modified Gram-Schmidt twice after
 * each).  The seeding below needs only that the rows are orthonormal (then
 * |q v| <= |v| for every v); the closer to the principal directions, the
 * tighter its bounds. */
static int principal_basis(double *q, const float *x, int64_t n, int dim, int m, dv2_error *err) {
    enum { CHUNK = 256 };
    int64_t s = n < 8192 ? n : 8192;
    double *xs = malloc(sizeof(double) * CHUNK * (size_t)dim), *cv = malloc(sizeof(double) * (size_t)dim * dim);
    double *z = malloc(sizeof(double) * (size_t)m * dim), *mu = calloc((size_t)dim, sizeof(double));
    if (!xs || !cv || !z || !mu) {
        free(xs), free(cv), free(z), free(mu);
        return dv2_error_set(err, DV2_ENOMEM, "k-means++ seeding: out of memory (%d dims)", dim);
    }
    for (int64_t r = 0; r < s; r++)
        for (int t = 0; t < dim; t++) mu[t] += x[(size_t)(r * n / s) * dim + t];
    for (int t = 0; t < dim; t++) mu[t] /= (double)s;
    /* the scatter of the sample around its mean, CHUNK rows at a time */
    for (int64_t r0 = 0; r0 < s; r0 += CHUNK) {
        int64_t c = s - r0 < CHUNK ? s - r0 : CHUNK;
        for (int64_t r = 0; r < c; r++) {
            const float *xr = x + (size_t)((r0 + r) * n / s) * dim;
            for (int t = 0; t < dim; t++) xs[(size_t)r * dim + t] = xr[t] - mu[t];
        }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, dim, (int)c, 1.0, xs, dim, r0 ? 1.0 : 0.0, cv, dim);
    }
    for (int i = 0; i < dim; i++)
        for (int j = 0; j < i; j++) cv[(size_t)i * dim + j] = cv[(size_t)j * dim + i];
    dv2_rng rng;
    dv2_rng_seed(&rng, 0x9e3779b97f4a7c15ull, 5);
    for (size_t i = 0; i < (size_t)m * dim; i++) q[i] = dv2_rng_normal(&rng);
    for (int it = 0; it <= 30; it++) {
        if (it) { /* z = q cv, then z back into q */
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, dim, dim, 1.0, q, dim, cv, dim, 0.0, z, dim);
            memcpy(q, z, sizeof(double) * (size_t)m * dim);
        }
        for (int pass = 0; pass < 2; pass++)
            for (int a = 0; a < m; a++) {
                double *qa = q + (size_t)a * dim;
                for (int b = 0; b < a; b++) {
                    const double *qb = q + (size_t)b * dim;
                    double d = 0;
                    for (int t = 0; t < dim; t++) d += qa[t] * qb[t];
                    for (int t = 0; t < dim; t++) qa[t] -= d * qb[t];
                }
                double nn = 0;
                for (int t = 0; t < dim; t++) nn += qa[t] * qa[t];
                if (nn < 1e-300) { /* a rank-deficient sample: any unit vector orthogonal to the rest */
                    for (int t = 0; t < dim; t++) qa[t] = dv2_rng_normal(&rng);
                    a--;
                    continue;
                }
                nn = 1.0 / sqrt(nn);
                for (int t = 0; t < dim; t++) qa[t] *= nn;
            }
    }
    free(xs), free(cv), free(z), free(mu);
    return 0;
}

/* y (m) = q x in double, rounded to float; *r its norm */
static void project(float *y, float *r, const double *q, const float *x, int dim, int m) {
    double nn = 0;
    for (int a = 0; a < m; a++) {
        const double *qa = q + (size_t)a * dim;
        double v = 0;
        for (int t = 0; t < dim; t++) v += qa[t] * x[t];
        y[a] = (float)v;
        nn += (double)y[a] * y[a];
    }
    *r = (float)sqrt(nn);
}

/* What a level's k-means runs report as they go: the seeding statistics and
 * the progress, to the caller's callback (rank 0's; fn NULL elsewhere), in
 * units of one point-to-centroid distance in the assignment GEMM: a Lloyd
 * iteration or an assignment of m rows to k centroids is m k, a seed's pass
 * over m rows SEED_COST m (a scalar pass in double runs at about a 28th of
 * the GEMM's rate per distance, docs/SCALING.md), so that the share done
 * follows the time. */
#define SEED_COST 28
typedef struct hkm_work {
    dv2_hkm_seed_stats *seed;
    dv2_hkm_progress_fn fn;
    void *ctx;
    int level;
    uint64_t done, total;
} hkm_work;

static void work_add(hkm_work *w, uint64_t rows) {
    w->done += rows;
    if (w->fn) w->fn(w->ctx, w->level, w->done < w->total ? w->done : w->total, w->total);
}

/* k-means++ seeding (Arthur and Vassilvitskii 2007) of k centroids c from
 * the n rows of x.  d2[i] is the squared distance of row i to its nearest
 * seed so far.  A pass over the pool per seed is bound by memory, not
 * arithmetic, so when dim is large each row also keeps its projection y on
 * SEED_PROJ principal directions (8% of the bytes at 384 dims): |y_i - y_j|
 * is a lower bound of |x_i - c_j|, and a row whose bound already exceeds
 * sqrt(d2[i]) cannot come closer to the new seed, so its full distance is
 * not computed.  The bound is taken down by 1e-6 (|y_i| + |y_j|), far more
 * than the float rounding of the stored projections (6e-8 of their norm),
 * so the pruned and the plain computation keep the same d2: the seeds are
 * those of the plain algorithm.  The draw sums d2 per block of SEED_BLOCK
 * rows and the blocks in order, so the seeds do not depend on the number of
 * threads; with MPI each process updates the blocks b with b % world ==
 * rank, the block sums are all-reduced (one process holds each, the rest 0:
 * exact) and the process holding the drawn row names it to the others.  w
 * gathers the seconds and the distances computed against those a plain
 * pass would compute (this process's rows), and counts a pass per seed. */
#define SEED_BLOCK 4096
#define SEED_PROJ 32
static int kmeanspp(float *c, const float *x, int64_t n, int dim, int k, dv2_rng *rng, const dv2_dist *dd,
                    hkm_work *w, dv2_error *err) {
    int world = dd ? dd->world : 1, rank = dd ? dd->rank : 0;
    const char *pe = getenv("DV2_HKM_SEED_PRUNE"); /* 0: every distance (tests) */
    int m = dim >= 4 * SEED_PROJ && n > SEED_BLOCK && !(pe && !strcmp(pe, "0")) ? SEED_PROJ : 0;
    int64_t nb = (n + SEED_BLOCK - 1) / SEED_BLOCK, computed = 0, owned = 0;
    double t0 = now_s();
    double *d2 = malloc(sizeof(double) * (size_t)n), *part = malloc(sizeof(double) * (size_t)nb);
    double *q = m ? malloc(sizeof(double) * (size_t)m * dim) : NULL;
    float *y = m ? malloc(sizeof(float) * (size_t)n * m) : NULL, *yr = m ? malloc(sizeof(float) * (size_t)n) : NULL;
    float yc[SEED_PROJ], rc_ = 0;
    int rc = 0;
    if (!d2 || !part || (m && (!q || !y || !yr))) {
        rc = dv2_error_set(err, DV2_ENOMEM, "k-means++ seeding: out of memory (%lld points)", (long long)n);
        goto out;
    }
    if (m && (rc = principal_basis(q, x, n, dim, m, err))) goto out;
    int64_t first = (int64_t)dv2_rng_below(rng, (uint64_t)n);
    memcpy(c, x + (size_t)first * dim, sizeof(float) * dim);
    for (int j = 1; j <= k; j++) {
        const float *cj = c + (size_t)(j - 1) * dim;
        if (m) project(yc, &rc_, q, cj, dim, m);
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : computed, owned)
        for (int64_t b = 0; b < nb; b++) {
            double sb = 0;
            if (b % world == rank)
                for (int64_t i = b * SEED_BLOCK, e = i + SEED_BLOCK < n ? i + SEED_BLOCK : n; i < e; i++) {
                    if (j == 1) {
                        owned++;
                        if (m) project(y + (size_t)i * m, yr + i, q, x + (size_t)i * dim, dim, m);
                    } else if (m) {
                        const float *yi = y + (size_t)i * m;
                        double lb = 0;
                        for (int a = 0; a < m; a++) {
                            double v = (double)yi[a] - yc[a];
                            lb += v * v;
                        }
                        double tt = sqrt(d2[i]) + 1e-6 * ((double)yr[i] + rc_);
                        if (lb > tt * tt) {
                            sb += d2[i];
                            continue;
                        }
                    }
                    const float *xi = x + (size_t)i * dim;
                    double s = 0;
                    for (int t = 0; t < dim; t++) {
                        double v = (double)xi[t] - cj[t];
                        s += v * v;
                    }
                    computed++;
                    if (j == 1 || s < d2[i]) d2[i] = s;
                    sb += d2[i];
                }
            part[b] = sb;
        }
        work_add(w, SEED_COST * (uint64_t)n);
        if (j == k) break;
        if (world > 1 && (rc = dv2_dist_allreduce_sum_f64(dd, part, (size_t)nb, err))) goto out;
        double total = 0;
        for (int64_t b = 0; b < nb; b++) total += part[b];
        int64_t pick = (int64_t)dv2_rng_below(rng, (uint64_t)n);
        if (total > 0) {
            double u = dv2_rng_uniform(rng) * total, acc = 0;
            int64_t b = 0;
            while (b < nb - 1 && !(acc + part[b] > u && part[b] > 0)) acc += part[b++];
            pick = 0;
            if (b % world == rank) {
                int64_t i = b * SEED_BLOCK, e = i + SEED_BLOCK < n ? i + SEED_BLOCK : n;
                for (pick = e - 1; i < e; i++) {
                    acc += d2[i];
                    if (acc > u) {
                        pick = i;
                        break;
                    }
                }
            }
            if (world > 1 && (rc = dv2_dist_allreduce_sum_i64(dd, &pick, 1, err))) goto out;
        }
        memcpy(c + (size_t)j * dim, x + (size_t)pick * dim, sizeof(float) * dim);
    }
    w->seed->seconds += now_s() - t0;
    w->seed->computed += computed;
    w->seed->full += owned * (int64_t)k;
out:
    free(d2), free(part), free(q), free(y), free(yr);
    return rc;
}

/* k-means of x into k centroids: k-means++ seeding (Arthur and Vassilvitskii
 * 2007), then Lloyd iterations (sums in double; an empty cluster keeps its
 * centroid) until no assignment changes or niter.  Not FAISS's Clustering:
 * it seeds with random points, which keeps the centroids where the points
 * are dense, and the resampling steps then reproduce that allocation instead
 * of flattening it (measured on the ring data of tests/t_hkmeans.sh). */
static int kmeans(float *c, const float *x, int64_t n, int dim, int k, int niter, uint64_t seed, const dv2_dist *dd,
                  hkm_work *w, dv2_error *err) {
    double *sum = malloc(sizeof(double) * (size_t)k * dim);
    int32_t *a = malloc(sizeof(int32_t) * (size_t)n), *prev = malloc(sizeof(int32_t) * (size_t)n);
    float *dist = malloc(sizeof(float) * (size_t)n);
    int64_t *cnt = malloc(sizeof(int64_t) * (size_t)k);
    int rc = 0;
    if (!sum || !a || !prev || !dist || !cnt) {
        rc = dv2_error_set(err, DV2_ENOMEM, "k-means: out of memory (%lld points, %d clusters)", (long long)n, k);
        goto out;
    }
    dv2_rng rng;
    dv2_rng_seed(&rng, seed, 31);
    if ((rc = kmeanspp(c, x, n, dim, k, &rng, dd, w, err))) goto out;
    int64_t empty;
    for (int it = 0; it < niter; it++) {
        if ((rc = assign_all(a, dist, &empty, x, n, dim, c, k, dd, err))) goto out;
        work_add(w, (uint64_t)n * (uint64_t)k);
        if (it > 0 && !memcmp(a, prev, sizeof(int32_t) * (size_t)n)) {
            work_add(w, (uint64_t)n * (uint64_t)k * (uint64_t)(niter - 1 - it)); /* converged: the rest is skipped */
            break;
        }
        memcpy(prev, a, sizeof(int32_t) * (size_t)n);
        memset(sum, 0, sizeof(double) * (size_t)k * dim);
        memset(cnt, 0, sizeof(int64_t) * (size_t)k);
        for (int64_t i = 0; i < n; i++) {
            double *sj = sum + (size_t)a[i] * dim;
            const float *xi = x + (size_t)i * dim;
            for (int t = 0; t < dim; t++) sj[t] += xi[t];
            cnt[a[i]]++;
        }
        for (int j = 0; j < k; j++)
            if (cnt[j])
                for (int t = 0; t < dim; t++) c[(size_t)j * dim + t] = (float)(sum[(size_t)j * dim + t] / cnt[j]);
    }
out:
    free(sum), free(a), free(prev), free(dist), free(cnt);
    return rc;
}

/* Members of each cluster as CSR (off: k+1, idx: n), each cluster's members
 * sorted by distance to the centroid (ties by index). */
typedef struct csr {
    int64_t *off;
    int64_t *idx;
} csr;

typedef struct member {
    float d;
    int64_t i;
} member;

static int cmp_member(const void *a, const void *b) {
    const member *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static int csr_build(csr *s, const int32_t *assign, const float *dist, int64_t n, int k, dv2_error *err) {
    s->off = calloc((size_t)k + 1, sizeof *s->off);
    s->idx = malloc(sizeof *s->idx * (size_t)(n ? n : 1));
    int64_t *pos = malloc(sizeof *pos * ((size_t)k + 1));
    if (!s->off || !s->idx || !pos) {
        free(s->off), free(s->idx), free(pos);
        return dv2_error_set(err, DV2_ENOMEM, "cluster lists: out of memory");
    }
    for (int64_t i = 0; i < n; i++) s->off[assign[i] + 1]++;
    for (int j = 0; j < k; j++) s->off[j + 1] += s->off[j];
    memcpy(pos, s->off, sizeof *pos * ((size_t)k + 1));
    for (int64_t i = 0; i < n; i++) s->idx[pos[assign[i]]++] = i;
    free(pos);
    member *m = malloc(sizeof *m * (size_t)(n ? n : 1));
    if (!m) {
        free(s->off), free(s->idx);
        return dv2_error_set(err, DV2_ENOMEM, "cluster lists: out of memory");
    }
    for (int64_t t = 0; t < n; t++) m[t] = (member){dist[s->idx[t]], s->idx[t]};
    for (int j = 0; j < k; j++) qsort(m + s->off[j], (size_t)(s->off[j + 1] - s->off[j]), sizeof *m, cmp_member);
    for (int64_t t = 0; t < n; t++) s->idx[t] = m[t].i;
    free(m);
    return 0;
}

static void csr_free(csr *s) {
    free(s->off);
    free(s->idx);
}

/* One level: k-means of x (n × dim), then the resampling steps. */
static int run_level(dv2_hkm_level *L, const float *x, int64_t n, int dim, int k, int steps, int sample,
                     int closest, int niter, uint64_t seed, int64_t *empty, hkm_work *w, const dv2_dist *dd,
                     dv2_error *err) {
    if (n < k) return dv2_error_set(err, DV2_EINVAL, "%lld inputs cannot make %d clusters", (long long)n, k);
    L->n = n, L->k = k, L->dim = dim;
    L->centroids = malloc(sizeof(float) * (size_t)k * dim);
    L->assign = malloc(sizeof(int32_t) * (size_t)n);
    L->dist = malloc(sizeof(float) * (size_t)n);
    if (!L->centroids || !L->assign || !L->dist) return dv2_error_set(err, DV2_ENOMEM, "level: out of memory");
    int rc = kmeans(L->centroids, x, n, dim, k, niter, seed, dd, w, err);
    if (!rc) rc = assign_all(L->assign, L->dist, empty, x, n, dim, L->centroids, k, dd, err);
    if (!rc) work_add(w, (uint64_t)n * (uint64_t)k);
    float *sub = NULL, *nc = NULL;
    if (!rc && steps > 0) {
        sub = malloc(sizeof(float) * (size_t)k * (size_t)sample * dim);
        nc = malloc(sizeof(float) * (size_t)k * dim);
        if (!sub || !nc) rc = dv2_error_set(err, DV2_ENOMEM, "resampling: out of memory");
    }
    for (int s = 0; !rc && s < steps; s++) {
        csr m;
        if ((rc = csr_build(&m, L->assign, L->dist, n, k, err))) break;
        dv2_rng rng;
        dv2_rng_seed(&rng, seed, 1000u + (uint64_t)s);
        int64_t ns = 0;
        for (int j = 0; j < k; j++) {
            int64_t *mem = m.idx + m.off[j], cnt = m.off[j + 1] - m.off[j];
            int64_t take = cnt < sample ? cnt : sample;
            if (!closest) /* a partial Fisher-Yates: the first take are a random subset */
                for (int64_t i = 0; i < take; i++) {
                    int64_t r = i + (int64_t)dv2_rng_below(&rng, (uint64_t)(cnt - i));
                    int64_t t = mem[i];
                    mem[i] = mem[r], mem[r] = t;
                }
            for (int64_t i = 0; i < take; i++) memcpy(sub + (size_t)ns++ * dim, x + (size_t)mem[i] * dim, sizeof(float) * dim);
        }
        csr_free(&m);
        if (ns < k) break; /* too few points left to re-cluster: keep the current centroids */
        if ((rc = kmeans(nc, sub, ns, dim, k, niter, seed + 1 + (uint64_t)s, dd, w, err))) break;
        memcpy(L->centroids, nc, sizeof(float) * (size_t)k * dim);
        rc = assign_all(L->assign, L->dist, empty, x, n, dim, L->centroids, k, dd, err);
        work_add(w, (uint64_t)n * (uint64_t)k);
    }
    free(sub);
    free(nc);
    return rc;
}

/* ---- files --------------------------------------------------------------- */

static char *path_of(const char *dir, const char *name) {
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s/%s", dir, name);
    return p;
}

static int level_save(const char *path, const dv2_hkm_level *L, const lvl_header *h, dv2_error *err) {
    size_t nc = (size_t)L->k * L->dim, n = (size_t)L->n;
    size_t bytes = sizeof *h + sizeof(float) * nc + (sizeof(int32_t) + sizeof(float)) * n;
    uint8_t *buf = malloc(bytes), *p = buf;
    if (!buf) return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", path);
    memcpy(p, h, sizeof *h), p += sizeof *h;
    memcpy(p, L->centroids, sizeof(float) * nc), p += sizeof(float) * nc;
    memcpy(p, L->assign, sizeof(int32_t) * n), p += sizeof(int32_t) * n;
    memcpy(p, L->dist, sizeof(float) * n);
    int rc = dv2_write_file_atomic(path, buf, bytes, err);
    free(buf);
    return rc;
}

/* Loads path into L; h receives its header.  DV2_ENOTFOUND when absent. */
static int level_load(const char *path, dv2_hkm_level *L, lvl_header *h, dv2_error *err) {
    char *data = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? DV2_ENOTFOUND : dv2_error_set(err, DV2_EIO, "%s: cannot open", path);
    fclose(f);
    int rc = dv2_read_file(path, (size_t)1 << 40, &data, &len, err);
    if (rc) return rc;
    if (len < sizeof *h || memcmp(data, k_lvl_magic, 8)) {
        free(data);
        return dv2_error_set(err, DV2_ECORRUPT, "%s: not a dv2-hkmeans level file", path);
    }
    memcpy(h, data, sizeof *h);
    size_t nc = (size_t)h->k * (size_t)h->dim, n = (size_t)h->n;
    if (h->version != 1 || h->k <= 0 || h->dim <= 0 || h->n < h->k ||
        len != sizeof *h + sizeof(float) * nc + (sizeof(int32_t) + sizeof(float)) * n) {
        free(data);
        return dv2_error_set(err, DV2_ECORRUPT, "%s: bad header or size (%zu bytes)", path, len);
    }
    L->n = h->n, L->k = h->k, L->dim = h->dim;
    L->centroids = malloc(sizeof(float) * nc);
    L->assign = malloc(sizeof(int32_t) * n);
    L->dist = malloc(sizeof(float) * n);
    if (!L->centroids || !L->assign || !L->dist) {
        free(data);
        level_free(L);
        return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", path);
    }
    const char *p = data + sizeof *h;
    memcpy(L->centroids, p, sizeof(float) * nc), p += sizeof(float) * nc;
    memcpy(L->assign, p, sizeof(int32_t) * n), p += sizeof(int32_t) * n;
    memcpy(L->dist, p, sizeof(float) * n);
    free(data);
    for (size_t i = 0; i < n; i++)
        if (L->assign[i] < 0 || L->assign[i] >= L->k) {
            level_free(L);
            return dv2_error_set(err, DV2_ECORRUPT, "%s: cluster %d of input %zu out of range", path,
                                 (int)L->assign[i], i);
        }
    return 0;
}

static int ids_save(const char *dir, const uint64_t *ids, int64_t n, dv2_error *err) {
    char *path = path_of(dir, "pool.ids");
    size_t bytes = 16 + sizeof(uint64_t) * (size_t)n;
    uint8_t *buf = malloc(bytes);
    int rc;
    if (!path || !buf) {
        rc = dv2_error_set(err, DV2_ENOMEM, "out of memory");
    } else {
        memcpy(buf, k_ids_magic, 8);
        memcpy(buf + 8, &n, 8);
        memcpy(buf + 16, ids, sizeof(uint64_t) * (size_t)n);
        rc = dv2_write_file_atomic(path, buf, bytes, err);
    }
    free(buf);
    free(path);
    return rc;
}

/* Every rank learns whether any rank failed; returns the local or a stand-in
 * error, so all ranks leave together. */
static int agree(const dv2_dist *d, int rc, dv2_error *err) {
    if (!d || d->world <= 1) return rc;
    double v = rc ? 1 : 0;
    dv2_error e2 = {0};
    if (dv2_dist_allreduce_max_f64(d, &v, 1, &e2)) return rc ? rc : (*err = e2, DV2_EIO);
    if (v > 0 && !rc) rc = dv2_error_set(err, DV2_EIO, "another process failed");
    return rc;
}

int dv2_hkm_build(const char *dir, const float *x, const uint64_t *ids, int64_t n, int dim,
                  const dv2_hkm_params *p, const dv2_dist *dist, dv2_hkm_level_fn cb, void *ctx,
                  dv2_error *err) {
    if (p->levels < 1 || p->levels > DV2_HKM_MAX_LEVELS)
        return dv2_error_set(err, DV2_EINVAL, "levels: expected 1..%d, got %d", DV2_HKM_MAX_LEVELS, p->levels);
    for (int l = 0; l < p->levels; l++)
        if (p->k[l] < 1 || p->steps[l] < 0 || (p->steps[l] > 0 && p->sample[l] < 1))
            return dv2_error_set(err, DV2_EINVAL, "level %d: bad clusters, steps or sample size", l + 1);
    int root = !dist || dist->rank == 0;
    int rc = root ? dv2_mkdir_p(dir, err) : 0;
    if (!rc && root) rc = ids_save(dir, ids, n, err);
    if ((rc = agree(dist, rc, err))) return rc;
    dv2_hkm_level lv[DV2_HKM_MAX_LEVELS];
    memset(lv, 0, sizeof lv);
    const float *in = x;
    int64_t nin = n;
    int recompute = p->force;
    for (int l = 0; l < p->levels && !rc; l++) {
        char name[32];
        snprintf(name, sizeof name, "level-%d.hkm", l + 1);
        char *path = path_of(dir, name);
        if (!path) rc = dv2_error_set(err, DV2_ENOMEM, "out of memory");
        if ((rc = agree(dist, rc, err))) break;
        lvl_header want;
        memset(&want, 0, sizeof want);
        memcpy(want.magic, k_lvl_magic, 8);
        want.version = 1, want.level = (uint32_t)(l + 1), want.n = nin;
        want.k = p->k[l], want.dim = dim, want.steps = p->steps[l], want.sample = p->steps[l] ? p->sample[l] : 0;
        want.closest = p->steps[l] ? p->resample_closest : 0, want.niter = p->niter, want.seed = p->seed;
        want.input_hash = dv2_xxh64(in, sizeof(float) * (size_t)nin * dim, 0);
        double t0 = now_s();
        int32_t reused = 0;
        dv2_hkm_level_info info = {.level = l + 1};
        /* rank 0 decides whether the saved level is reused, the others follow */
        if (!recompute && root) {
            lvl_header have;
            dv2_error e2 = {0};
            int lr = level_load(path, &lv[l], &have, &e2);
            if (lr == 0 && !memcmp(&have, &want, sizeof want)) {
                reused = 1;
            } else if (lr == 0) {
                level_free(&lv[l]); /* other parameters or input: recompute this level and those above */
            } else if (lr != DV2_ENOTFOUND) {
                rc = lr;
                *err = e2;
            }
        }
        rc = agree(dist, rc, err);
        if (!rc && dist && dist->world > 1) rc = dv2_dist_broadcast(dist, &reused, sizeof reused, 0, err);
        if (!rc && reused && !root) {
            lvl_header have;
            rc = level_load(path, &lv[l], &have, err);
        }
        if (!rc && !reused) {
            recompute = 1;
            /* the work of a level at most: seeding, iterations and the
             * assignment on the inputs, then per step seeding and
             * iterations on the resampled subset and a reassignment */
            uint64_t ns = (uint64_t)p->k[l] * (uint64_t)(p->steps[l] ? p->sample[l] : 0), k = (uint64_t)p->k[l];
            if (ns > (uint64_t)nin) ns = (uint64_t)nin;
            hkm_work w = {&info.seeding, root ? p->progress : NULL, p->progress_ctx, l + 1, 0,
                          (uint64_t)nin * k * (SEED_COST + (uint64_t)p->niter + 1) +
                              (uint64_t)p->steps[l] * (ns * k * (SEED_COST + (uint64_t)p->niter) + (uint64_t)nin * k)};
            rc = run_level(&lv[l], in, nin, dim, p->k[l], p->steps[l], p->sample[l], p->resample_closest,
                           p->niter, p->seed + (uint64_t)l * 7919u, &info.empty, &w, dist, err);
            if (!rc && w.fn) w.fn(w.ctx, w.level, w.total, w.total);
            if (!rc && root) rc = level_save(path, &lv[l], &want, err);
        }
        free(path);
        if ((rc = agree(dist, rc, err))) break;
        info.reused = reused, info.seconds = now_s() - t0;
        if (cb && root) cb(ctx, &info);
        in = lv[l].centroids;
        nin = lv[l].k;
    }
    for (int l = 0; l < p->levels; l++) level_free(&lv[l]);
    /* levels above this tree, left by an earlier build with more levels,
     * would be read back as its top */
    for (int l = p->levels; !rc && root && l < DV2_HKM_MAX_LEVELS; l++) {
        char name[32];
        snprintf(name, sizeof name, "level-%d.hkm", l + 1);
        char *path = path_of(dir, name);
        if (!path) {
            rc = dv2_error_set(err, DV2_ENOMEM, "out of memory");
        } else if (unlink(path) != 0 && errno != ENOENT) {
            rc = dv2_error_set(err, DV2_EIO, "%s: cannot remove the stale level: %s", path, strerror(errno));
        }
        free(path);
    }
    return agree(dist, rc, err);
}

int dv2_hkm_load(dv2_hkm_tree *t, const char *dir, dv2_error *err) {
    memset(t, 0, sizeof *t);
    char *path = path_of(dir, "pool.ids");
    char *data = NULL;
    size_t len = 0;
    int rc = path ? dv2_read_file(path, (size_t)1 << 40, &data, &len, err) : dv2_error_set(err, DV2_ENOMEM, "out of memory");
    if (!rc) {
        int64_t n = 0;
        if (len >= 16) memcpy(&n, data + 8, 8);
        if (len < 16 || memcmp(data, k_ids_magic, 8) || n < 0 || len != 16 + sizeof(uint64_t) * (size_t)n) {
            rc = dv2_error_set(err, DV2_ECORRUPT, "%s: not a dv2-hkmeans id file", path);
        } else if (!(t->ids = malloc(sizeof(uint64_t) * (size_t)(n ? n : 1)))) {
            rc = dv2_error_set(err, DV2_ENOMEM, "out of memory");
        } else {
            memcpy(t->ids, data + 16, sizeof(uint64_t) * (size_t)n);
            t->n = n;
        }
    }
    free(data);
    free(path);
    for (int l = 0; !rc && l < DV2_HKM_MAX_LEVELS; l++) {
        char name[32];
        snprintf(name, sizeof name, "level-%d.hkm", l + 1);
        if (!(path = path_of(dir, name))) {
            rc = dv2_error_set(err, DV2_ENOMEM, "out of memory");
            break;
        }
        lvl_header h;
        int lr = level_load(path, &t->lv[l], &h, err);
        int64_t want_n = l ? t->lv[l - 1].k : t->n;
        if (lr == DV2_ENOTFOUND) {
            free(path);
            break;
        }
        if (lr) rc = lr;
        else if (t->lv[l].n != want_n)
            rc = dv2_error_set(err, DV2_ECORRUPT, "%s: %lld inputs, but the level below has %lld", path,
                               (long long)t->lv[l].n, (long long)want_n);
        free(path);
        if (!rc) t->levels = l + 1;
    }
    if (!rc && t->levels == 0) rc = dv2_error_set(err, DV2_ENOTFOUND, "%s: no level-1.hkm (build the tree first)", dir);
    if (rc) dv2_hkm_tree_free(t);
    return rc;
}

/* ---- sampling ------------------------------------------------------------ */

typedef struct sampler {
    const dv2_hkm_tree *t;
    csr m[DV2_HKM_MAX_LEVELS]; /* members of each cluster of each level */
    int64_t *size[DV2_HKM_MAX_LEVELS]; /* pool rows under each cluster */
    int closest;
    int64_t mult;                      /* times a pool row may be taken */
    dv2_rng rng;
    uint64_t *out;
    int64_t nout;
} sampler;

/* Splits budget over children (their capacities in sz, m of them) into
 * alloc. */
static void split_budget(int64_t *alloc, const int64_t *sz, int64_t m, int64_t budget, dv2_rng *rng) {
    int64_t lo = 0, hi = 0;
    for (int64_t i = 0; i < m; i++) hi = sz[i] > hi ? sz[i] : hi;
    /* the largest cap x with sum(min(x, sz)) <= budget */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2, s = 0;
        for (int64_t i = 0; i < m && s <= budget; i++) s += sz[i] < mid ? sz[i] : mid;
        if (s <= budget) lo = mid;
        else hi = mid - 1;
    }
    int64_t used = 0, above = 0;
    for (int64_t i = 0; i < m; i++) {
        alloc[i] = sz[i] < lo ? sz[i] : lo;
        used += alloc[i];
        above += sz[i] > lo;
    }
    /* the remainder (fewer than the children above the cap): one each to
     * random children above the cap (reservoir choice, in child order) */
    int64_t rem = budget - used;
    for (int64_t i = 0; i < m && rem > 0; i++) {
        if (sz[i] <= lo) continue;
        if ((int64_t)dv2_rng_below(rng, (uint64_t)above) < rem) {
            alloc[i]++;
            rem--;
        }
        above--;
    }
}

static int sample_node(sampler *s, int level, int64_t cluster, int64_t budget, dv2_error *err) {
    const csr *m = &s->m[level];
    int64_t *mem = m->idx + m->off[cluster], cnt = m->off[cluster + 1] - m->off[cluster];
    if (budget <= 0 || cnt == 0) return 0;
    if (level == 0) {
        /* with a multiplier above 1, whole copies of the cluster while the
         * budget allows; then the rest, random or closest first (a budget of
         * the whole cluster still draws, as it always did, so that a seed
         * gives the samples of earlier versions) */
        if (budget > cnt * s->mult) budget = cnt * s->mult;
        for (; s->mult > 1 && budget >= cnt; budget -= cnt)
            for (int64_t i = 0; i < cnt; i++) s->out[s->nout++] = s->t->ids[mem[i]];
        if (!s->closest)
            for (int64_t i = 0; i < budget; i++) {
                int64_t r = i + (int64_t)dv2_rng_below(&s->rng, (uint64_t)(cnt - i));
                int64_t t = mem[i];
                mem[i] = mem[r], mem[r] = t;
            }
        for (int64_t i = 0; i < budget; i++) s->out[s->nout++] = s->t->ids[mem[i]];
        return 0;
    }
    int64_t *sz = calloc((size_t)cnt * 2, sizeof *sz);
    if (!sz) return dv2_error_set(err, DV2_ENOMEM, "sampling: out of memory");
    int64_t *alloc = sz + cnt;
    for (int64_t i = 0; i < cnt; i++) sz[i] = s->size[level - 1][mem[i]] * s->mult;
    split_budget(alloc, sz, cnt, budget, &s->rng);
    int rc = 0;
    for (int64_t i = 0; i < cnt && !rc; i++) rc = sample_node(s, level - 1, mem[i], alloc[i], err);
    free(sz);
    return rc;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int dv2_hkm_sample(uint64_t **out, int64_t *nout, const dv2_hkm_tree *t, int64_t target, int closest,
                   int multiplier, uint64_t seed, dv2_error *err) {
    *out = NULL, *nout = 0;
    if (target < 0) return dv2_error_set(err, DV2_EINVAL, "target: expected >= 0");
    if (multiplier < 1) return dv2_error_set(err, DV2_EINVAL, "multiplier: expected >= 1");
    if (target > t->n * multiplier) target = t->n * multiplier;
    sampler s;
    memset(&s, 0, sizeof s);
    s.t = t, s.closest = closest, s.mult = multiplier;
    dv2_rng_seed(&s.rng, seed, 77);
    int rc = 0;
    int L = t->levels;
    for (int l = 0; l < L && !rc; l++) {
        const dv2_hkm_level *lv = &t->lv[l];
        rc = csr_build(&s.m[l], lv->assign, lv->dist, lv->n, lv->k, err);
        if (!rc && !(s.size[l] = calloc((size_t)lv->k, sizeof(int64_t))))
            rc = dv2_error_set(err, DV2_ENOMEM, "sampling: out of memory");
        for (int64_t i = 0; !rc && i < lv->n; i++) s.size[l][lv->assign[i]] += l ? s.size[l - 1][i] : 1;
    }
    int64_t *top = NULL; /* capacities of the top-level clusters */
    if (!rc && !(s.out = malloc(sizeof(uint64_t) * (size_t)(target ? target : 1))))
        rc = dv2_error_set(err, DV2_ENOMEM, "sampling: out of memory");
    if (!rc) {
        /* the root: its children are the top-level clusters */
        int kt = t->lv[L - 1].k;
        int64_t *alloc = malloc(sizeof(int64_t) * (size_t)kt);
        top = calloc((size_t)kt, sizeof(int64_t));
        if (!alloc || !top) rc = dv2_error_set(err, DV2_ENOMEM, "sampling: out of memory");
        else {
            for (int j = 0; j < kt; j++) top[j] = s.size[L - 1][j] * s.mult;
            split_budget(alloc, top, kt, target, &s.rng);
            for (int j = 0; j < kt && !rc; j++) rc = sample_node(&s, L - 1, j, alloc[j], err);
        }
        free(alloc);
    }
    free(top);
    for (int l = 0; l < L; l++) {
        csr_free(&s.m[l]);
        free(s.size[l]);
    }
    if (rc) {
        free(s.out);
        return rc;
    }
    qsort(s.out, (size_t)s.nout, sizeof *s.out, cmp_u64);
    *out = s.out;
    *nout = s.nout;
    return 0;
}
