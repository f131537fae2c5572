/* cuda_loss.cu — CUDA teacher targets, centers and losses: softmax
 * centering, the center EMA, Sinkhorn-Knopp, DINO, iBOT and KoLeo, forward
 * and backward (formulas: ops/cpu/cpu_loss.h).
 *
 * How: one block of DV2_CUDA_THREADS per row for the row softmax /
 * log-sum-exp (max, then sums, each reduced over the block in a fixed tree
 * order), one thread per column looping over the rows in order for column
 * sums (center, Sinkhorn prototype sums), and losses written to device
 * scalars by a last one-block reduction of the per-row terms.  No atomics,
 * so every run gives the same bits.
 *
 * Numerics follow cpu_loss.c operation by operation: double for the per-row
 * log-sum-exp, cross entropies and KoLeo dot products, float where the CPU
 * stores float (Sinkhorn, center EMA).  The CPU is built without FMA
 * contraction, so products that feed a sum or difference go through the
 * _rn intrinsics (nvcc would fuse them otherwise).  Sums over a row differ
 * from the CPU's serial order only inside double accumulators; KoLeo, with
 * its small N, keeps the CPU's serial loops (same Gram values, same
 * argmax ties). */
#include <math.h>

#include "core/dist.h"
#include "ops/cuda/cuda.h"

#define NT DV2_CUDA_THREADS
#define KOLEO_EPS 1e-8

/* ---- block reductions (NT threads, fixed tree order) -------------------------- */


/* The max ignoring NaN, as the CPU's `if (v > m) m = v` from −inf. */
static __device__ double block_max(double v, double *sh) {
    int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int s = NT / 2; s > 0; s >>= 1) {
        if (t < s && sh[t + s] > sh[t]) sh[t] = sh[t + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

/* Sum of a[0..n) (times w[i] when w is given) by one block. */
static __device__ double block_sum_array(const double *a, const float *w, size_t n, double *sh) {
    double s = 0;
    for (size_t i = threadIdx.x; i < n; i += NT) s = __dadd_rn(s, w ? __dmul_rn((double)w[i], a[i]) : a[i]);
    return dv2_cuda_block_sum(s, sh);
}

/* ---- softmax centering ------------------------------------------------------- */

/* q (N,K) = softmax((t − center)·inv) per row, one block per row; q may alias t
 * (each element is read and written by the same thread, reads first). */
static __global__ void softmax_center_kernel(float *q, const float *t, const float *center, int K,
                                             double inv) {
    __shared__ double sh[NT];
    const float *ti = t + (size_t)blockIdx.x * K;
    float *qi = q + (size_t)blockIdx.x * K;
    double m = -INFINITY, acc = 0;
    for (int k = threadIdx.x; k < K; k += NT) {
        double v = __dmul_rn((double)ti[k] - center[k], inv);
        if (v > m) m = v;
    }
    m = block_max(m, sh);
    for (int k = threadIdx.x; k < K; k += NT) {
        double e = exp(__dmul_rn((double)ti[k] - center[k], inv) - m);
        acc += e;
        qi[k] = (float)e;
    }
    acc = dv2_cuda_block_sum(acc, sh);
    double r = 1.0 / acc;
    for (int k = threadIdx.x; k < K; k += NT) qi[k] = (float)((double)qi[k] * r);
}

int dv2_cuda_softmax_center_forward(const dv2_backend *be, float *q, const float *t,
                                    const float *center, int N, int K, float temp) {
    if (N > 0 && K > 0)
        softmax_center_kernel<<<N, NT, 0, dv2_cuda_stream(be)>>>(q, t, center, K, 1.0 / temp);
    return dv2_cuda_launched(be);
}

/* ---- centers ------------------------------------------------------------------ */

/* sum (K) = (float)(scale · Σ_i t[i,:]) in double, rows in order. */
static __global__ void center_sum_kernel(float *sum, const float *t, int N, int K, float scale) {
    for (size_t k = blockIdx.x * (size_t)NT + threadIdx.x; k < (size_t)K; k += (size_t)gridDim.x * NT) {
        double s = 0;
        for (int i = 0; i < N; i++) s += t[(size_t)i * K + k];
        sum[k] = (float)(s * scale);
    }
}

/* center ← center·momentum + sum·scale·(1 − momentum), in float. */
static __global__ void center_apply_kernel(float *center, const float *sum, int K, float scale,
                                           float momentum) {
    float a = 1.0f - momentum;
    for (size_t k = blockIdx.x * (size_t)NT + threadIdx.x; k < (size_t)K; k += (size_t)gridDim.x * NT)
        center[k] = __fadd_rn(__fmul_rn(center[k], momentum), __fmul_rn(__fmul_rn(sum[k], scale), a));
}

int dv2_cuda_center_update(const dv2_backend *be, float *center, const float *t, int N, int K,
                           float scale_sum, float scale_apply, float momentum,
                           const dv2_dist *comm, dv2_error *err) {
    cudaStream_t st = dv2_cuda_stream(be);
    if (K <= 0) return dv2_cuda_launched(be);
    float *sum = (float *)dv2_cuda_workspace(be, sizeof(float) * (size_t)K);
    if (!sum) return dv2_error_set(err, DV2_ENOMEM, "backend: out of workspace for the center");
    unsigned g = dv2_cuda_grid((size_t)K, NT);
    int rc;
    if (N > 0) center_sum_kernel<<<g, NT, 0, st>>>(sum, t, N, K, scale_sum);
    else if ((rc = dv2_cuda_check(be, cudaMemsetAsync(sum, 0, sizeof(float) * (size_t)K, st))))
        return dv2_error_set(err, rc, "backend: the center update failed on the device");
    if ((rc = dv2_cuda_launched(be)))
        return dv2_error_set(err, rc, "backend: the center update failed on the device");
    if (comm && comm->world > 1 && (rc = be->allreduce_sum(be, sum, (size_t)K, comm, err)))
        return dv2_cuda_fail(be, rc);
    center_apply_kernel<<<g, NT, 0, st>>>(center, sum, K, scale_apply, momentum);
    if ((rc = dv2_cuda_launched(be)))
        return dv2_error_set(err, rc, "backend: the center update failed on the device");
    return DV2_OK;
}

/* ---- Sinkhorn-Knopp ------------------------------------------------------------ */

#define SK_PARTS 1024 /* blocks of the global sum (fixed: the partition depends on n only) */

/* q = expf(t/temp) (as (float)exp in double, the correctly rounded value
 * glibc's expf gives), and part[block] = the block's double sum of q. */
static __global__ void sk_exp_kernel(float *q, double *part, const float *t, size_t n, float temp) {
    __shared__ double sh[NT];
    double s = 0;
    for (size_t i = blockIdx.x * (size_t)NT + threadIdx.x; i < n; i += (size_t)gridDim.x * NT) {
        float e = (float)exp((double)__fdiv_rn(t[i], temp));
        q[i] = e;
        s += e;
    }
    s = dv2_cuda_block_sum(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

/* dst[0] = (float)Σ part (one block). */
static __global__ void sk_total_kernel(float *dst, const double *part, int nparts) {
    __shared__ double sh[NT];
    double s = block_sum_array(part, NULL, (size_t)nparts, sh);
    if (threadIdx.x == 0) dst[0] = (float)s;
}

static __global__ void sk_div_kernel(float *q, const float *total, size_t n) {
    float d = total[0];
    for (size_t i = blockIdx.x * (size_t)NT + threadIdx.x; i < n; i += (size_t)gridDim.x * NT)
        q[i] = __fdiv_rn(q[i], d);
}

/* work (K) = Σ_j q[j,:] in float, rows in order (the CPU's loop). */
static __global__ void sk_colsum_kernel(float *work, const float *q, int N, int K) {
    for (size_t k = blockIdx.x * (size_t)NT + threadIdx.x; k < (size_t)K; k += (size_t)gridDim.x * NT) {
        float s = 0.0f;
        for (int j = 0; j < N; j++) s = __fadd_rn(s, q[(size_t)j * K + k]);
        work[k] = s;
    }
}

/* One row per block: q[j,k] = q[j,k]/work[k]/Kf, c = Σ_k q[j,k] (double),
 * then q[j,k] = q[j,k]/(float)c/B. */
static __global__ void sk_rows_kernel(float *q, const float *work, int K, float Kf, float B) {
    __shared__ double sh[NT];
    float *qj = q + (size_t)blockIdx.x * K;
    double c = 0;
    for (int k = threadIdx.x; k < K; k += NT) {
        float v = __fdiv_rn(__fdiv_rn(qj[k], work[k]), Kf);
        qj[k] = v;
        c += v;
    }
    float cf = (float)dv2_cuda_block_sum(c, sh);
    for (int k = threadIdx.x; k < K; k += NT) qj[k] = __fdiv_rn(__fdiv_rn(qj[k], cf), B);
}

static __global__ void sk_scale_kernel(float *q, size_t n, float B) {
    for (size_t i = blockIdx.x * (size_t)NT + threadIdx.x; i < n; i += (size_t)gridDim.x * NT)
        q[i] = __fmul_rn(q[i], B);
}

/* The all-reduces go through the backend's collective (float, in place, on
 * the workspace buffer), as the CPU adapter's; between them the kernels
 * queue on the stream. */
int dv2_cuda_sinkhorn_knopp_forward(const dv2_backend *be, float *q, const float *t, int N, int K,
                                    float temp, int n_iter, double n_total, const dv2_dist *comm,
                                    dv2_error *err) {
    cudaStream_t st = dv2_cuda_stream(be);
    size_t n = (size_t)N * (size_t)K;
    float B = (float)n_total, Kf = (float)K;
    int multi = comm && comm->world > 1, rc = DV2_OK, coll = 0; /* coll: a collective failed (err set) */
    /* part (SK_PARTS doubles), then work (K+1 floats): work[0] the total, work[0..K) the sums */
    void *ws = dv2_cuda_workspace(be, sizeof(double) * SK_PARTS + sizeof(float) * ((size_t)K + 1));
    if (!ws) {
        dv2_cuda_nan_fill(be, q, n);
        return dv2_error_set(err, DV2_ENOMEM, "backend: out of workspace for Sinkhorn-Knopp");
    }
    double *part = (double *)ws;
    float *work = (float *)(part + SK_PARTS);
    unsigned gn = dv2_cuda_grid(n, NT), gk = dv2_cuda_grid((size_t)K, NT);
    if (gn > SK_PARTS) gn = SK_PARTS;
    if (n > 0) {
        sk_exp_kernel<<<gn, NT, 0, st>>>(q, part, t, n, temp);
        sk_total_kernel<<<1, NT, 0, st>>>(work, part, (int)gn);
        rc = dv2_cuda_launched(be);
    } else {
        rc = dv2_cuda_check(be, cudaMemsetAsync(work, 0, sizeof(float), st));
    }
    if (!rc && multi && (rc = be->allreduce_sum(be, work, 1, comm, err))) dv2_cuda_fail(be, rc), coll = 1;
    if (!rc && n > 0) sk_div_kernel<<<gn, NT, 0, st>>>(q, work, n);
    for (int it = 0; !rc && it < n_iter; it++) {
        if (K > 0) sk_colsum_kernel<<<gk, NT, 0, st>>>(work, q, N, K);
        if ((rc = dv2_cuda_launched(be))) break;
        if (multi && (rc = be->allreduce_sum(be, work, (size_t)K, comm, err))) {
            dv2_cuda_fail(be, rc);
            coll = 1;
            break;
        }
        if (n > 0) sk_rows_kernel<<<N, NT, 0, st>>>(q, work, K, Kf, B);
    }
    if (!rc && n > 0) sk_scale_kernel<<<gn, NT, 0, st>>>(q, n, B);
    if (!rc) rc = dv2_cuda_launched(be);
    if (rc) {
        dv2_cuda_nan_fill(be, q, n);
        if (!coll) dv2_error_set(err, rc, "backend: Sinkhorn-Knopp failed on the device");
    }
    return rc;
}

/* ---- cross entropies (DINO, iBOT) ---------------------------------------------- */

/* The rows of one launch: r < nl are local student rows s_l[r] against
 * q1 = q[r % B] + q2 = q[B + r % B]; the others, g = r − nl, are s_g[g]
 * against q[g] alone (the DINO global term, and iBOT with nl = 0). */
static __device__ void ce_row(int r, int nl, int B, int K, const float *s_l, const float *s_g,
                              const float *q, const float **s, const float **q1, const float **q2) {
    if (r < nl) {
        size_t i = (size_t)(r % B);
        *s = s_l + (size_t)r * K;
        *q1 = q + i * K;
        *q2 = q + ((size_t)B + i) * K;
    } else {
        size_t g = (size_t)(r - nl);
        *s = s_g + g * K;
        *q1 = q + g * K;
        *q2 = NULL;
    }
}

/* ce[r] = lse·Σq − inv·Σ q_k s_k, lse = log Σ exp(s_k·inv) (row_ce of cpu_loss.c). */
static __global__ void ce_rows_kernel(double *ce, const float *s_l, const float *s_g, const float *q,
                                      int B, int nl, int K, double inv) {
    __shared__ double sh[NT];
    const float *s, *q1, *q2;
    ce_row((int)blockIdx.x, nl, B, K, s_l, s_g, q, &s, &q1, &q2);
    double m = -INFINITY, acc = 0, qs = 0, qx = 0;
    for (int k = threadIdx.x; k < K; k += NT) {
        double v = __dmul_rn((double)s[k], inv);
        if (v > m) m = v;
    }
    m = block_max(m, sh);
    for (int k = threadIdx.x; k < K; k += NT) {
        acc += exp(__dmul_rn((double)s[k], inv) - m);
        double qk = (double)q1[k] + (q2 ? (double)q2[k] : 0.0);
        qs += qk;
        qx = __dadd_rn(qx, __dmul_rn(qk, (double)s[k]));
    }
    acc = dv2_cuda_block_sum(acc, sh);
    qs = dv2_cuda_block_sum(qs, sh);
    qx = dv2_cuda_block_sum(qx, sh);
    if (threadIdx.x == 0) ce[blockIdx.x] = __dsub_rn(__dmul_rn(m + log(acc), qs), __dmul_rn(qx, inv));
}

/* ds[k] += (float)(wgt·inv·(softmax(s·inv)_k·Σq − q_k)) (row_ce_grad); the
 * weight is w_l for local rows, w_g for global ones, or dl·w[g]/ncr when w is
 * given (iBOT). */
static __global__ void ce_grad_kernel(float *ds_l, float *ds_g, const float *s_l, const float *s_g,
                                      const float *q, const float *w, int B, int nl, int K,
                                      double inv, double w_l, double w_g, double dl, double ncr) {
    __shared__ double sh[NT];
    int r = (int)blockIdx.x;
    const float *s, *q1, *q2;
    ce_row(r, nl, B, K, s_l, s_g, q, &s, &q1, &q2);
    float *ds = r < nl ? ds_l + (size_t)r * K : ds_g + (size_t)(r - nl) * K;
    double wgt = r < nl ? w_l : (w ? __dmul_rn(dl, (double)w[r - nl]) / ncr : w_g);
    double m = -INFINITY, acc = 0, qs = 0;
    for (int k = threadIdx.x; k < K; k += NT) {
        double v = __dmul_rn((double)s[k], inv);
        if (v > m) m = v;
    }
    m = block_max(m, sh);
    for (int k = threadIdx.x; k < K; k += NT) {
        acc += exp(__dmul_rn((double)s[k], inv) - m);
        qs += (double)q1[k] + (q2 ? (double)q2[k] : 0.0);
    }
    acc = dv2_cuda_block_sum(acc, sh);
    qs = dv2_cuda_block_sum(qs, sh);
    double lse = m + log(acc), c = __dmul_rn(wgt, inv);
    for (int k = threadIdx.x; k < K; k += NT) {
        double qk = (double)q1[k] + (q2 ? (double)q2[k] : 0.0);
        double p = exp(__dmul_rn((double)s[k], inv) - lse);
        ds[k] += (float)__dmul_rn(c, __dsub_rn(__dmul_rn(p, qs), qk));
    }
}

/* loss[0] = Σ_{r<nl} ce / B / Z, loss[1] = 2·Σ_{r<ng} ce[nl+r] / (2B) / Z. */
static __global__ void dino_loss_kernel(float *loss, const double *ce, int B, int nl, int ng, double Z) {
    __shared__ double sh[NT];
    double acc_l = block_sum_array(ce, NULL, (size_t)nl, sh);
    double acc_g = block_sum_array(ce + nl, NULL, (size_t)ng, sh);
    if (threadIdx.x == 0) {
        loss[0] = (float)(acc_l / B / Z);
        loss[1] = (float)(2.0 * acc_g / (2.0 * B) / Z);
    }
}

/* loss[0] = Σ_j w_j·ce_j / n_crops. */
static __global__ void ibot_loss_kernel(float *loss, const double *ce, const float *w, int M, int n_crops) {
    __shared__ double sh[NT];
    double acc = block_sum_array(ce, w, (size_t)M, sh);
    if (threadIdx.x == 0) loss[0] = (float)(acc / n_crops);
}

/* Z = max(2L, 1) + 2 (dino_terms of cpu_loss.c). */
static double dino_terms(int L) { return (2 * L > 1 ? 2.0 * L : 1.0) + 2.0; }

int dv2_cuda_dino_forward(const dv2_backend *be, float *loss, const float *s_l, const float *s_g,
                          const float *q, int B, int L, int K, float temp) {
    cudaStream_t st = dv2_cuda_stream(be);
    int nl = L * B, ng = 2 * B;
    double *ce = (double *)dv2_cuda_workspace(be, sizeof(double) * ((size_t)nl + ng + 1));
    if (!ce) {
        dv2_cuda_nan_fill(be, loss, 2);
        return dv2_cuda_fail(be, DV2_ENOMEM);
    }
    if (nl + ng > 0) ce_rows_kernel<<<nl + ng, NT, 0, st>>>(ce, s_l, s_g, q, B, nl, K, 1.0 / temp);
    dino_loss_kernel<<<1, NT, 0, st>>>(loss, ce, B, nl, ng, dino_terms(L));
    return dv2_cuda_launched(be);
}

int dv2_cuda_dino_backward(const dv2_backend *be, float *ds_l, float *ds_g, float dloss_local,
                           float dloss_global, const float *s_l, const float *s_g, const float *q,
                           int B, int L, int K, float temp) {
    double Z = dino_terms(L);
    int nl = ds_l ? L * B : 0, ng = ds_g ? 2 * B : 0;
    double w_l = dloss_local / (Z * B), w_g = dloss_global * 2.0 / (Z * 2.0 * B);
    if (nl + ng > 0 && K > 0)
        ce_grad_kernel<<<nl + ng, NT, 0, dv2_cuda_stream(be)>>>(ds_l, ds_g, s_l, s_g, q, NULL, B, nl, K,
                                                               1.0 / temp, w_l, w_g, 0.0, 1.0);
    return dv2_cuda_launched(be);
}

int dv2_cuda_ibot_forward(const dv2_backend *be, float *loss, const float *s_p, const float *q,
                          const float *w, int M, int K, int n_crops, float temp) {
    cudaStream_t st = dv2_cuda_stream(be);
    double *ce = (double *)dv2_cuda_workspace(be, sizeof(double) * ((size_t)M + 1));
    if (!ce) {
        dv2_cuda_nan_fill(be, loss, 1);
        return dv2_cuda_fail(be, DV2_ENOMEM);
    }
    if (M > 0) ce_rows_kernel<<<M, NT, 0, st>>>(ce, NULL, s_p, q, 1, 0, K, 1.0 / temp);
    ibot_loss_kernel<<<1, NT, 0, st>>>(loss, ce, w, M, n_crops);
    return dv2_cuda_launched(be);
}

int dv2_cuda_ibot_backward(const dv2_backend *be, float *ds_p, float dloss, const float *s_p,
                           const float *q, const float *w, int M, int K, int n_crops, float temp) {
    if (M > 0 && K > 0 && ds_p)
        ce_grad_kernel<<<M, NT, 0, dv2_cuda_stream(be)>>>(NULL, ds_p, NULL, s_p, q, w, 1, 0, K, 1.0 / temp,
                                                          0.0, 0.0, (double)dloss, (double)n_crops);
    return dv2_cuda_launched(be);
}

/* ---- KoLeo ------------------------------------------------------------------- */
/* N is small (one global-crop group), so each row's dot products, argmax and
 * distance run in the CPU's serial order, one thread per row or pair. */

/* nrm[i] = (float)max(||x_i||, eps); products of floats are exact in double,
 * so the (possibly fused) sum equals the CPU's. */
static __global__ void koleo_norms_kernel(float *nrm, const float *x, int N, int C) {
    int i = blockIdx.x * NT + threadIdx.x;
    if (i >= N) return;
    const float *xi = x + (size_t)i * C;
    double s = 0;
    for (int c = 0; c < C; c++) s += (double)xi[c] * xi[c];
    double n = sqrt(s);
    nrm[i] = (float)(n > KOLEO_EPS ? n : KOLEO_EPS);
}

/* ||x̂_i − x̂_j + eps|| in double, serial over c (koleo_dist). */
static __device__ double koleo_dist(const float *x, const float *nrm, int i, int j, int C) {
    const float *xi = x + (size_t)i * C, *xj = x + (size_t)j * C;
    double ni = nrm[i], nj = nrm[j], s = 0;
    for (int c = 0; c < C; c++) {
        double u = (double)xi[c] / ni - (double)xj[c] / nj + KOLEO_EPS;
        s = __dadd_rn(s, __dmul_rn(u, u));
    }
    return sqrt(s);
}

/* One block per row i: G[i,j] = x_i·x_j / (nrm_i nrm_j) (−1 on the diagonal),
 * then thread 0 takes the argmax (first index on ties), the distance and
 * rowv[i] = log(d + eps). */
static __global__ void koleo_nn_kernel(int *nn, double *rowv, double *G, const float *x,
                                       const float *nrm, int N, int C) {
    int i = (int)blockIdx.x;
    double *Gi = G + (size_t)i * N;
    const float *xi = x + (size_t)i * C;
    for (int j = threadIdx.x; j < N; j += NT) {
        double g = -1.0;
        if (j != i) {
            const float *xj = x + (size_t)j * C;
            g = 0;
            for (int c = 0; c < C; c++) g += (double)xi[c] * xj[c];
            g /= (double)nrm[i] * nrm[j];
        }
        Gi[j] = g;
    }
    __syncthreads();
    if (threadIdx.x != 0) return;
    double best = 0;
    int bj = 0;
    for (int j = 0; j < N; j++)
        if (j == 0 || Gi[j] > best) best = Gi[j], bj = j;
    nn[i] = bj;
    rowv[i] = log(koleo_dist(x, nrm, i, bj, C) + KOLEO_EPS);
}

static __global__ void koleo_loss_kernel(float *loss, const double *rowv, int N) {
    __shared__ double sh[NT];
    double acc = block_sum_array(rowv, NULL, (size_t)N, sh);
    if (threadIdx.x == 0) loss[0] = (float)(-acc / N);
}

int dv2_cuda_koleo_forward(const dv2_backend *be, float *loss, int *nn, const float *x, int N,
                           int C) {
    cudaStream_t st = dv2_cuda_stream(be);
    size_t n = N > 0 ? (size_t)N : 0;
    /* G (N·N doubles), rowv (N doubles), nrm (N floats) */
    void *ws = dv2_cuda_workspace(be, sizeof(double) * (n * n + n) + sizeof(float) * n + 16);
    if (!ws) {
        dv2_cuda_nan_fill(be, loss, 1);
        return dv2_cuda_fail(be, DV2_ENOMEM);
    }
    double *G = (double *)ws, *rowv = G + n * n;
    float *nrm = (float *)(rowv + n);
    if (N > 0) {
        koleo_norms_kernel<<<dv2_cuda_grid(n, NT), NT, 0, st>>>(nrm, x, N, C);
        koleo_nn_kernel<<<N, NT, 0, st>>>(nn, rowv, G, x, nrm, N, C);
    }
    koleo_loss_kernel<<<1, NT, 0, st>>>(loss, rowv, N);
    return dv2_cuda_launched(be);
}

/* coef[i] = −dloss/N/(d_i + eps)/d_i, ok[i] = d_i > 0 (pairs the CPU skips). */
static __global__ void koleo_coef_kernel(double *coef, int *ok, const float *x, const float *nrm,
                                         const int *nn, int N, int C, double dloss) {
    int i = blockIdx.x * NT + threadIdx.x;
    if (i >= N) return;
    double d = koleo_dist(x, nrm, i, nn[i], C);
    ok[i] = d > 0;
    coef[i] = -dloss / N / (d + KOLEO_EPS) / d;
}

/* One block per row r, threads over c: dxh[r,c] = the CPU's float
 * accumulation, replayed in its order i = 0..N−1: +coef_i·u_i when i = r,
 * then −coef_i·u_i when nn[i] = r (u_i = x̂_i − x̂_nn(i) + eps). */
static __global__ void koleo_dxh_kernel(float *dxh, const float *x, const float *nrm, const int *nn,
                                        const double *coef, const int *ok, int N, int C) {
    int r = (int)blockIdx.x;
    for (int c = threadIdx.x; c < C; c += NT) {
        float acc = 0.0f;
        for (int i = 0; i < N; i++) {
            int j = nn[i];
            if (!ok[i] || (i != r && j != r)) continue;
            double u = (double)x[(size_t)i * C + c] / nrm[i] - (double)x[(size_t)j * C + c] / nrm[j] + KOLEO_EPS;
            if (i == r) acc += (float)(coef[i] * u);
            if (j == r) acc -= (float)(coef[i] * u);
        }
        dxh[(size_t)r * C + c] = acc;
    }
}

/* One block per row: dx += the gradient through x̂ = x / max(||x||, eps);
 * thread 0 forms ||x|| and x̂·dxh serially, as the CPU. */
static __global__ void koleo_dx_kernel(float *dx, const float *dxh, const float *x, const float *nrm,
                                       int C) {
    __shared__ double s_dot;
    __shared__ int s_big;
    size_t i = blockIdx.x;
    const float *xi = x + i * C, *gi = dxh + i * C;
    double n = nrm[i];
    if (threadIdx.x == 0) {
        double raw = 0, dot = 0;
        for (int c = 0; c < C; c++) raw += (double)xi[c] * xi[c];
        s_big = sqrt(raw) > KOLEO_EPS;
        if (s_big)
            for (int c = 0; c < C; c++) dot = __dadd_rn(dot, __dmul_rn((double)xi[c] / n, (double)gi[c]));
        s_dot = dot;
    }
    __syncthreads();
    double dot = s_dot;
    for (int c = threadIdx.x; c < C; c += NT) {
        float *o = dx + i * C + c;
        if (s_big) *o += (float)(__dsub_rn((double)gi[c], __dmul_rn((double)xi[c] / n, dot)) / n);
        else *o += (float)((double)gi[c] / n);
    }
}

int dv2_cuda_koleo_backward(const dv2_backend *be, float *dx, float dloss, const float *x,
                            const int *nn, int N, int C) {
    cudaStream_t st = dv2_cuda_stream(be);
    if (N <= 0) return dv2_cuda_launched(be);
    size_t n = (size_t)N;
    /* coef (N doubles), nrm (N floats), ok (N ints), dxh (N·C floats) */
    void *ws = dv2_cuda_workspace(be, sizeof(double) * n + sizeof(float) * n * (2 + (size_t)C));
    if (!ws) {
        dv2_cuda_nan_fill(be, dx, n * (size_t)C);
        return dv2_cuda_fail(be, DV2_ENOMEM);
    }
    double *coef = (double *)ws;
    float *nrm = (float *)(coef + n);
    int *ok = (int *)(nrm + n);
    float *dxh = (float *)(ok + n);
    unsigned g = dv2_cuda_grid(n, NT);
    koleo_norms_kernel<<<g, NT, 0, st>>>(nrm, x, N, C);
    koleo_coef_kernel<<<g, NT, 0, st>>>(coef, ok, x, nrm, nn, N, C, (double)dloss);
    if (C > 0) {
        koleo_dxh_kernel<<<N, NT, 0, st>>>(dxh, x, nrm, nn, coef, ok, N, C);
        koleo_dx_kernel<<<N, NT, 0, st>>>(dx, dxh, x, nrm, C);
    }
    return dv2_cuda_launched(be);
}
