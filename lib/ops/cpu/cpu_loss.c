/* cpu_loss.c — CPU float32 DINOv2 losses and teacher targets (see cpu_loss.h).
 *
 * Numerics: per-row log-sum-exp and dot products are accumulated in double;
 * targets and gradients are stored in float.  The Sinkhorn-Knopp iteration
 * follows the reference operation by operation (exp in float of t/temp, then
 * divisions in the same order) so that it matches PyTorch to float rounding.
 * Rows are independent and split over OpenMP threads. */
#include "ops/cpu/cpu_loss.h"
#include "core/dv2.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* log Σ_k exp(s_k·inv) in double. */
static double row_lse(const float *s, int K, double inv) {
    double m = -INFINITY, acc = 0;
    for (int k = 0; k < K; k++) {
        double v = s[k] * inv;
        if (v > m) m = v;
    }
    for (int k = 0; k < K; k++) acc += exp(s[k] * inv - m);
    return m + log(acc);
}

/* CE(q1 (+ q2), s) = Σ_k q_k (lse − s_k·inv). */
static double row_ce(const float *s, const float *q1, const float *q2, int K, double inv) {
    double lse = row_lse(s, K, inv), qs = 0, qx = 0;
    for (int k = 0; k < K; k++) {
        double q = q1[k] + (q2 ? (double)q2[k] : 0.0);
        qs += q;
        qx += q * s[k];
    }
    return lse * qs - qx * inv;
}

/* ds += wgt · (softmax(s·inv)·Σq − q)·inv with q = q1 (+ q2). */
static void row_ce_grad(float *ds, const float *s, const float *q1, const float *q2, int K,
                        double inv, double wgt) {
    double lse = row_lse(s, K, inv), qs = 0;
    for (int k = 0; k < K; k++) qs += q1[k] + (q2 ? (double)q2[k] : 0.0);
    double c = wgt * inv;
    for (int k = 0; k < K; k++) {
        double q = q1[k] + (q2 ? (double)q2[k] : 0.0);
        ds[k] += (float)(c * (exp(s[k] * inv - lse) * qs - q));
    }
}

void dv2_cpu_softmax_center_forward(float *q, const float *t, const float *center, int N, int K,
                                     float temp) {
    double inv = 1.0 / temp;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float *ti = t + (size_t)i * K;
        float *qi = q + (size_t)i * K;
        double m = -INFINITY, acc = 0;
        for (int k = 0; k < K; k++) {
            double v = ((double)ti[k] - center[k]) * inv;
            if (v > m) m = v;
        }
        for (int k = 0; k < K; k++) {
            double e = exp(((double)ti[k] - center[k]) * inv - m);
            acc += e;
            qi[k] = (float)e;
        }
        double r = 1.0 / acc;
        for (int k = 0; k < K; k++) qi[k] = (float)(qi[k] * r);
    }
}

int dv2_cpu_sinkhorn_knopp_ws(float *q, float *work, const float *t, int N, int K, float temp,
                               int n_iter, double n_total, dv2_allreduce_fn allreduce,
                               void *allreduce_ctx) {
    size_t n = (size_t)N * (size_t)K;
    float B = (float)n_total, Kf = (float)K;
    int rc;
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        q[i] = expf(t[i] / temp);
        s += q[i];
    }
    work[0] = (float)s;
    if (allreduce && (rc = allreduce(work, 1, allreduce_ctx)) < 0) return rc;
    float total = work[0];
    for (size_t i = 0; i < n; i++) q[i] /= total;
    for (int it = 0; it < n_iter; it++) {
        /* per-prototype sums over the samples of every process */
        memset(work, 0, (size_t)K * sizeof *work);
        for (int j = 0; j < N; j++) {
            const float *qj = q + (size_t)j * K;
            for (int k = 0; k < K; k++) work[k] += qj[k];
        }
        if (allreduce && (rc = allreduce(work, (size_t)K, allreduce_ctx)) < 0) return rc;
#pragma omp parallel for schedule(static)
        for (int j = 0; j < N; j++) {
            float *qj = q + (size_t)j * K;
            double c = 0;
            for (int k = 0; k < K; k++) {
                qj[k] = qj[k] / work[k] / Kf;
                c += qj[k];
            }
            /* per-sample normalization: local, samples are not split */
            float cf = (float)c;
            for (int k = 0; k < K; k++) qj[k] = qj[k] / cf / B;
        }
    }
    for (size_t i = 0; i < n; i++) q[i] *= B;
    return 0;
}

void dv2_cpu_center_sum(float *sum, const float *t, int N, int K, float scale) {
    if (N == 0) { /* no tokens on this process: contribute zeros, not 0·inf */
        memset(sum, 0, (size_t)K * sizeof *sum);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int k = 0; k < K; k++) {
        double s = 0;
        for (int i = 0; i < N; i++) s += t[(size_t)i * K + k];
        sum[k] = (float)(s * scale);
    }
}

void dv2_cpu_center_apply(float *center, const float *sum, float scale, float momentum, int K) {
    for (int k = 0; k < K; k++)
        center[k] = center[k] * momentum + sum[k] * scale * (1.0f - momentum);
}

/* Z = n_local_terms + n_global_terms = max(2L, 1) + (2 - 1)·2. */
static double dino_terms(int L) { return (2 * L > 1 ? 2.0 * L : 1.0) + 2.0; }

void dv2_cpu_dino_forward(float *loss_local, float *loss_global, const float *s_l,
                           const float *s_g, const float *q, int B, int L, int K, float temp) {
    double inv = 1.0 / temp, Z = dino_terms(L), acc_l = 0, acc_g = 0;
    const float *q1 = q, *q2 = q + (size_t)B * K;
    if (loss_local) {
#pragma omp parallel for schedule(static) reduction(+ : acc_l)
        for (int r = 0; r < L * B; r++) {
            int i = r % B;
            acc_l += row_ce(s_l + (size_t)r * K, q1 + (size_t)i * K, q2 + (size_t)i * K, K, inv);
        }
        *loss_local = (float)(acc_l / B / Z);
    }
    if (loss_global) {
#pragma omp parallel for schedule(static) reduction(+ : acc_g)
        for (int r = 0; r < 2 * B; r++)
            acc_g += row_ce(s_g + (size_t)r * K, q + (size_t)r * K, NULL, K, inv);
        *loss_global = (float)(2.0 * acc_g / (2.0 * B) / Z);
    }
}

void dv2_cpu_dino_backward(float *ds_l, float *ds_g, float dloss_local, float dloss_global,
                            const float *s_l, const float *s_g, const float *q, int B, int L,
                            int K, float temp) {
    double inv = 1.0 / temp, Z = dino_terms(L);
    const float *q1 = q, *q2 = q + (size_t)B * K;
    if (ds_l) {
        double w = dloss_local / (Z * B);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < L * B; r++) {
            int i = r % B;
            row_ce_grad(ds_l + (size_t)r * K, s_l + (size_t)r * K, q1 + (size_t)i * K,
                        q2 + (size_t)i * K, K, inv, w);
        }
    }
    if (ds_g) {
        double w = dloss_global * 2.0 / (Z * 2.0 * B);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < 2 * B; r++)
            row_ce_grad(ds_g + (size_t)r * K, s_g + (size_t)r * K, q + (size_t)r * K, NULL, K, inv, w);
    }
}

void dv2_cpu_ibot_forward(float *loss, const float *s_p, const float *q, const float *w, int M,
                           int K, int n_crops, float temp) {
    double inv = 1.0 / temp, acc = 0;
#pragma omp parallel for schedule(static) reduction(+ : acc)
    for (int j = 0; j < M; j++) acc += w[j] * row_ce(s_p + (size_t)j * K, q + (size_t)j * K, NULL, K, inv);
    *loss = (float)(acc / n_crops);
}

void dv2_cpu_ibot_backward(float *ds_p, float dloss, const float *s_p, const float *q,
                            const float *w, int M, int K, int n_crops, float temp) {
    double inv = 1.0 / temp;
#pragma omp parallel for schedule(static)
    for (int j = 0; j < M; j++)
        row_ce_grad(ds_p + (size_t)j * K, s_p + (size_t)j * K, q + (size_t)j * K, NULL, K, inv,
                    (double)dloss * w[j] / n_crops);
}

#define KOLEO_EPS 1e-8

static void koleo_norms(float *nrm, const float *x, int N, int C) {
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int c = 0; c < C; c++) s += (double)x[(size_t)i * C + c] * x[(size_t)i * C + c];
        double n = sqrt(s);
        nrm[i] = (float)(n > KOLEO_EPS ? n : KOLEO_EPS);
    }
}

/* d_i = ||x̂_i − x̂_j + eps|| in double. */
static double koleo_dist(const float *x, const float *nrm, int i, int j, int C) {
    double s = 0;
    for (int c = 0; c < C; c++) {
        double u = (double)x[(size_t)i * C + c] / nrm[i] - (double)x[(size_t)j * C + c] / nrm[j] + KOLEO_EPS;
        s += u * u;
    }
    return sqrt(s);
}

void dv2_cpu_koleo_forward_ws(float *h_loss, int *nn, float *work, const float *x, int N, int C) {
    koleo_norms(work, x, N, C);
    double acc = 0;
#pragma omp parallel for schedule(static) reduction(+ : acc)
    for (int i = 0; i < N; i++) {
        double best = 0;
        int bj = 0;
        for (int j = 0; j < N; j++) {
            double g = -1.0; /* the diagonal is set to -1 before the argmax */
            if (j != i) {
                g = 0;
                for (int c = 0; c < C; c++) g += (double)x[(size_t)i * C + c] * x[(size_t)j * C + c];
                g /= (double)work[i] * work[j];
            }
            if (j == 0 || g > best) { best = g; bj = j; }
        }
        nn[i] = bj;
        acc += log(koleo_dist(x, work, i, bj, C) + KOLEO_EPS);
    }
    *h_loss = (float)(-acc / N);
}

void dv2_cpu_koleo_backward_ws(float *dx, float *work, float dloss, const float *x, const int *nn,
                                int N, int C) {
    float *nrm = work, *dxh = work + N; /* dxh (N,C): gradient w.r.t. the normalized rows */
    koleo_norms(nrm, x, N, C);
    memset(dxh, 0, (size_t)N * C * sizeof *dxh);
    for (int i = 0; i < N; i++) {
        int j = nn[i];
        double d = koleo_dist(x, nrm, i, j, C);
        if (!(d > 0)) continue;
        double coef = -(double)dloss / N / (d + KOLEO_EPS) / d;
        for (int c = 0; c < C; c++) {
            double u = (double)x[(size_t)i * C + c] / nrm[i] - (double)x[(size_t)j * C + c] / nrm[j] + KOLEO_EPS;
            dxh[(size_t)i * C + c] += (float)(coef * u);
            dxh[(size_t)j * C + c] -= (float)(coef * u);
        }
    }
    /* through x̂ = x / max(||x||, eps) */
    for (int i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * C;
        float *gi = dxh + (size_t)i * C;
        double n = nrm[i], raw = 0;
        for (int c = 0; c < C; c++) raw += (double)xi[c] * xi[c];
        raw = sqrt(raw);
        if (raw > KOLEO_EPS) {
            double dot = 0;
            for (int c = 0; c < C; c++) dot += (double)xi[c] / n * gi[c];
            for (int c = 0; c < C; c++) dx[(size_t)i * C + c] += (float)((gi[c] - xi[c] / n * dot) / n);
        } else {
            for (int c = 0; c < C; c++) dx[(size_t)i * C + c] += (float)(gi[c] / n);
        }
    }
}
