/* cuda_stats.cu — CUDA collapse diagnostics of the DINO objective (what
 * each value means: train/collapse.h; the CPU reference: cpu_stats.c),
 * into DV2_STATS_N doubles on the device.
 *
 * How: per-row terms (target entropy, argmax, inverse norms) by one block
 * or one thread per row, per-column terms (column means, standard
 * deviations, sums of unit rows) by one thread per column looping over the
 * rows in order, the prototypes' d × d Gram matrix by one thread per entry
 * looping over the K prototypes in order, and each slot by a last one-block
 * reduction in a fixed tree order.  Sums in double as the CPU; products
 * that feed a sum use the _rn intrinsics (no FMA contraction, as the CPU
 * build).  The inputs are only read; no atomics. */
#include <limits.h>
#include <math.h>

#include "ops/cuda/cuda.h"

#define NT DV2_CUDA_THREADS


static __device__ double block_sum_array(const double *a, size_t n, double *sh) {
    double s = 0;
    for (size_t i = threadIdx.x; i < n; i += NT) s = __dadd_rn(s, a[i]);
    return dv2_cuda_block_sum(s, sh);
}

static __device__ double block_count(const int *a, size_t n, double *sh) {
    double s = 0;
    for (size_t i = threadIdx.x; i < n; i += NT) s += a[i] != 0;
    return dv2_cuda_block_sum(s, sh);
}

static __global__ void fill_kernel(double *out, int n, double v) {
    if ((int)threadIdx.x < n) out[threadIdx.x] = v;
}

/* ---- targets: entropies, distinct argmax -------------------------------------- */

/* One block per row i: hrow[i] = Σ_{p>0} p·log p, am[i] = the CPU's argmax
 * (`if (r[k] > r[am]) am = k` from 0: the first index of the largest
 * non-NaN value, or 0 when r[0] is NaN). */
static __global__ void tgt_rows_kernel(double *hrow, int *am, const float *q, int K) {
    __shared__ double sh[NT];
    __shared__ float sv[NT];
    __shared__ int si[NT];
    const float *r = q + (size_t)blockIdx.x * K;
    int t = threadIdx.x;
    double h = 0;
    float bv = -INFINITY;
    int bk = INT_MAX;
    for (int k = t; k < K; k += NT) {
        float v = r[k];
        double p = v;
        if (p > 0) h = __dadd_rn(h, __dmul_rn(p, log(p)));
        if (v > bv || (v == bv && k < bk)) bv = v, bk = k;
    }
    h = dv2_cuda_block_sum(h, sh);
    sv[t] = bv, si[t] = bk;
    __syncthreads();
    for (int s = NT / 2; s > 0; s >>= 1) {
        if (t < s && (sv[t + s] > sv[t] || (sv[t + s] == sv[t] && si[t + s] < si[t])))
            sv[t] = sv[t + s], si[t] = si[t + s];
        __syncthreads();
    }
    if (t == 0) {
        hrow[blockIdx.x] = h;
        am[blockIdx.x] = si[0] == INT_MAX || isnan(r[0]) ? 0 : si[0];
    }
}

/* One thread per prototype k: p = Σ_i q[i,k] / N (rows in order), colterm[k] = p·log p (p > 0). */
static __global__ void tgt_cols_kernel(double *colterm, const float *q, int N, int K) {
    for (size_t k = blockIdx.x * (size_t)NT + threadIdx.x; k < (size_t)K; k += (size_t)gridDim.x * NT) {
        double s = 0;
        for (int i = 0; i < N; i++) s += q[(size_t)i * K + k];
        double p = N > 0 ? s / N : 0;
        colterm[k] = p > 0 ? __dmul_rn(p, log(p)) : 0.0;
    }
}

static __global__ void tgt_final_kernel(double *out, const double *hrow, const int *am,
                                        const double *colterm, int N, int K) {
    __shared__ double sh[NT];
    double h = block_sum_array(hrow, (size_t)N, sh);
    double hm = block_sum_array(colterm, (size_t)K, sh);
    double first = 0; /* rows whose argmax no earlier row has */
    for (int i = threadIdx.x; i < N; i += NT) {
        int f = 1;
        for (int j = 0; j < i && f; j++) f = am[j] != am[i];
        first += f;
    }
    first = dv2_cuda_block_sum(first, sh);
    if (threadIdx.x == 0) {
        out[DV2_STAT_TGT_ENTROPY] = N > 0 ? (0.0 - h) / N : 0;
        out[DV2_STAT_TGT_MEAN_ENTROPY] = 0.0 - hm;
        out[DV2_STAT_N_ARGMAX] = first;
    }
}

/* ---- spread: mean column std, mean pairwise cosine ---------------------------- */

/* One thread per column j: mean over rows, then colstd[j] = sqrt(Σ (x − mean)² / n). */
static __global__ void spread_std_kernel(double *colstd, const float *x, int n, int dim) {
    for (size_t j = blockIdx.x * (size_t)NT + threadIdx.x; j < (size_t)dim; j += (size_t)gridDim.x * NT) {
        double m = 0, v = 0;
        for (int i = 0; i < n; i++) m += x[(size_t)i * dim + j];
        m /= n;
        for (int i = 0; i < n; i++) {
            double e = x[(size_t)i * dim + j] - m;
            v = __dadd_rn(v, __dmul_rn(e, e));
        }
        colstd[j] = sqrt(v / n);
    }
}

/* One thread per row: rinv[i] = 1/||x_i|| (products of floats are exact in
 * double), valid[i] = ||x_i||² > 0 (the CPU skips the others). */
static __global__ void spread_norms_kernel(double *rinv, int *valid, const float *x, int n, int dim) {
    int i = blockIdx.x * NT + threadIdx.x;
    if (i >= n) return;
    const float *r = x + (size_t)i * dim;
    double nn = 0;
    for (int j = 0; j < dim; j++) nn += (double)r[j] * r[j];
    valid[i] = !(nn <= 0);
    rinv[i] = 1.0 / sqrt(nn);
}

/* One thread per column j: csum[j] = Σ_i x[i,j]/||x_i|| over the valid rows, in order. */
static __global__ void spread_colsum_kernel(double *csum, const float *x, const double *rinv,
                                            const int *valid, int n, int dim) {
    for (size_t j = blockIdx.x * (size_t)NT + threadIdx.x; j < (size_t)dim; j += (size_t)gridDim.x * NT) {
        double s = 0;
        for (int i = 0; i < n; i++)
            if (valid[i]) s = __dadd_rn(s, __dmul_rn((double)x[(size_t)i * dim + j], rinv[i]));
        csum[j] = s;
    }
}

/* std = mean of colstd; cos = (|Σ u_i|² − nz) / (n(n−1)) (out_cos may be NULL). */
static __global__ void spread_final_kernel(double *out_std, double *out_cos, const double *colstd,
                                           const double *csum, const int *valid, int n, int dim) {
    __shared__ double sh[NT];
    if (n < 1 || dim < 1) {
        if (threadIdx.x == 0) {
            *out_std = 0;
            if (out_cos) *out_cos = 1;
        }
        return;
    }
    double s = block_sum_array(colstd, (size_t)dim, sh);
    if (threadIdx.x == 0) *out_std = s / dim;
    if (!out_cos) return;
    if (n < 2) {
        if (threadIdx.x == 0) *out_cos = 1;
        return;
    }
    double ss = 0;
    for (int j = threadIdx.x; j < dim; j += NT) ss = __dadd_rn(ss, __dmul_rn(csum[j], csum[j]));
    ss = dv2_cuda_block_sum(ss, sh);
    double nz = block_count(valid, (size_t)n, sh);
    if (threadIdx.x == 0) *out_cos = (ss - nz) / ((double)n * (n - 1));
}

/* ws: colstd (dim doubles), rinv (n), csum (dim), valid (n ints) when out_cos. */
static void spread(const dv2_backend *be, double *out_std, double *out_cos, const float *x, int n,
                   int dim, double *wd, int *wi) {
    cudaStream_t st = dv2_cuda_stream(be);
    double *colstd = wd, *rinv = wd + dim, *csum = rinv + n;
    if (n >= 1 && dim >= 1) {
        spread_std_kernel<<<dv2_cuda_grid((size_t)dim, NT), NT, 0, st>>>(colstd, x, n, dim);
        if (out_cos && n >= 2) {
            spread_norms_kernel<<<dv2_cuda_grid((size_t)n, NT), NT, 0, st>>>(rinv, wi, x, n, dim);
            spread_colsum_kernel<<<dv2_cuda_grid((size_t)dim, NT), NT, 0, st>>>(csum, x, rinv, wi, n, dim);
        }
    }
    spread_final_kernel<<<1, NT, 0, st>>>(out_std, out_cos, colstd, csum, wi, n, dim);
}

/* ---- prototypes: norms of g, cosines of the directions v ----------------------- */

/* One thread per prototype: rn[k] = 1/||v_k||², valid[k] = ||v_k||² > 0. */
static __global__ void proto_norms_kernel(double *rn, int *valid, const float *v, int K, int d) {
    for (size_t k = blockIdx.x * (size_t)NT + threadIdx.x; k < (size_t)K; k += (size_t)gridDim.x * NT) {
        const float *r = v + k * d;
        double nn = 0;
        for (int j = 0; j < d; j++) nn += (double)r[j] * r[j];
        valid[k] = !(nn <= 0);
        rn[k] = 1.0 / nn;
    }
}

/* One thread per (a, b ≤ a): gram[a,b] = Σ_k v[k,a]·v[k,b]/||v_k||² over the
 * valid prototypes in order (entries above the diagonal: 0). */
static __global__ void proto_gram_kernel(double *gram, const float *v, const double *rn,
                                         const int *valid, int K, int d) {
    size_t dd = (size_t)d * d;
    for (size_t e = blockIdx.x * (size_t)NT + threadIdx.x; e < dd; e += (size_t)gridDim.x * NT) {
        size_t a = e / d, b = e % d;
        double s = 0;
        if (b <= a)
            for (int k = 0; k < K; k++)
                if (valid[k]) {
                    const float *r = v + (size_t)k * d;
                    s = __dadd_rn(s, __dmul_rn((double)r[a] * r[b], rn[k]));
                }
        gram[e] = s;
    }
}

/* One thread per dimension a: sum[a] = Σ_k v[k,a]·sqrt(rn[k]) over the valid prototypes. */
static __global__ void proto_sum_kernel(double *sum, const float *v, const double *rn,
                                        const int *valid, int K, int d) {
    int a = blockIdx.x * NT + threadIdx.x;
    if (a >= d) return;
    double s = 0;
    for (int k = 0; k < K; k++)
        if (valid[k]) s = __dadd_rn(s, __dmul_rn((double)v[(size_t)k * d + a], sqrt(rn[k])));
    sum[a] = s;
}

static __global__ void proto_final_kernel(double *out, const float *g, const double *gram,
                                          const double *sum, const int *valid, int K, int d) {
    __shared__ double sh[NT];
    double sg = 0, sg2 = 0, s1 = 0, f2 = 0;
    for (int k = threadIdx.x; k < K; k += NT) {
        sg = __dadd_rn(sg, fabs((double)g[k]));
        sg2 += (double)g[k] * g[k]; /* exact products */
    }
    sg = dv2_cuda_block_sum(sg, sh);
    sg2 = dv2_cuda_block_sum(sg2, sh);
    double nz = valid ? block_count(valid, (size_t)K, sh) : 0;
    if (gram) {
        for (int a = threadIdx.x; a < d; a += NT) s1 = __dadd_rn(s1, __dmul_rn(sum[a], sum[a]));
        size_t dd = (size_t)d * d;
        for (size_t e = threadIdx.x; e < dd; e += NT) {
            size_t a = e / d, b = e % d;
            if (b > a) continue;
            double x = gram[e];
            f2 = __dadd_rn(f2, __dmul_rn(__dmul_rn(a == b ? 1.0 : 2.0, x), x));
        }
    }
    s1 = dv2_cuda_block_sum(s1, sh);
    f2 = dv2_cuda_block_sum(f2, sh);
    if (threadIdx.x != 0) return;
    double mean = K > 0 ? sg / K : 0, var = K > 0 ? __dsub_rn(sg2 / K, __dmul_rn(mean, mean)) : 0;
    out[DV2_STAT_PROTO_NORM_MEAN] = mean;
    out[DV2_STAT_PROTO_NORM_CV] = mean > 0 ? sqrt(var > 0 ? var : 0) / mean : 0;
    double pairs = (double)K * (K - 1);
    out[DV2_STAT_PROTO_COS_MEAN] = K > 1 ? (s1 - nz) / pairs : 1;
    double ms = K > 1 ? (f2 - nz) / pairs : 1;
    out[DV2_STAT_PROTO_COS_RMS] = sqrt(ms > 0 ? ms : 0);
}

/* ---- the entry -------------------------------------------------------------------- */

int dv2_cuda_collapse_stats(const dv2_backend *be, double *out, const float *q, const float *t,
                            const float *cls, const float *g, const float *v, int N, int K, int D,
                            int d) {
    cudaStream_t st = dv2_cuda_stream(be);
    size_t n = N > 0 ? (size_t)N : 0, k = K > 0 ? (size_t)K : 0, dm = D > 0 ? (size_t)D : 0;
    size_t pd = d > 0 ? (size_t)d : 0;
    /* the groups run one after the other on the stream and share the scratch:
     * targets hrow (n) + colterm (k) doubles, am (n) ints; spread colstd
     * (max(k, D)) + rinv (n) + csum (D) doubles, valid (n) ints; prototypes
     * rn (k) + gram (d²) + sum (d) doubles, valid (k) ints */
    size_t nd = n + k, ni = n;
    size_t sd = (k > dm ? k : dm) + n + dm;
    if (sd > nd) nd = sd;
    if (g && v) {
        size_t pdd = k + pd * pd + pd;
        if (pdd > nd) nd = pdd;
        if (k > ni) ni = k;
    }
    void *ws = dv2_cuda_workspace(be, sizeof(double) * (nd + 1) + sizeof(int) * (ni + 1));
    if (!ws) {
        fill_kernel<<<1, 32, 0, st>>>(out, DV2_STATS_N, NAN);
        dv2_cuda_launched(be);
        return DV2_ENOMEM;
    }
    double *wd = (double *)ws;
    int *wi = (int *)(wd + nd + 1);
    fill_kernel<<<1, 32, 0, st>>>(out, DV2_STATS_N, 0.0);
    if (q) {
        if (n > 0) tgt_rows_kernel<<<N, NT, 0, st>>>(wd, wi, q, K);
        if (k > 0) tgt_cols_kernel<<<dv2_cuda_grid(k, NT), NT, 0, st>>>(wd + n, q, N, K);
        tgt_final_kernel<<<1, NT, 0, st>>>(out, wd, wi, wd + n, (int)n, (int)k);
    }
    if (t) spread(be, &out[DV2_STAT_LOGIT_STD], NULL, t, N, K, wd, wi);
    if (cls) spread(be, &out[DV2_STAT_CLS_STD], &out[DV2_STAT_CLS_COS], cls, N, D, wd, wi);
    if (g && v) {
        double *rn = wd, *gram = rn + k, *sum = gram + pd * pd;
        if (k > 0) proto_norms_kernel<<<dv2_cuda_grid(k, NT), NT, 0, st>>>(rn, wi, v, K, d);
        if (pd > 0) {
            proto_gram_kernel<<<dv2_cuda_grid(pd * pd, NT), NT, 0, st>>>(gram, v, rn, wi, K, d);
            proto_sum_kernel<<<dv2_cuda_grid(pd, NT), NT, 0, st>>>(sum, v, rn, wi, K, d);
        }
        proto_final_kernel<<<1, NT, 0, st>>>(out, g, pd > 0 ? gram : NULL, sum, wi, K, d);
    }
    return dv2_cuda_launched(be);
}
