/* cpu_stats.c — CPU backend: the collapse diagnostics of the DINO
 * objective (what each value means: train/collapse.h), sums in double;
 * the inputs are only read. */
#include <math.h>
#include <string.h>
#include "ops/cpu/cpu.h"

void dv2_cpu_stats_targets(double *out, const float *q, int n, int K, double *work, int *seen) {
    double h = 0;
    memset(work, 0, sizeof(double) * (size_t)K);
    memset(seen, 0, sizeof(int) * (size_t)K);
    int distinct = 0;
    for (int i = 0; i < n; i++) {
        const float *r = q + (size_t)i * K;
        int am = 0;
        for (int k = 0; k < K; k++) {
            double p = r[k];
            if (p > 0) h -= p * log(p);
            work[k] += p;
            if (r[k] > r[am]) am = k;
        }
        if (!seen[am]) seen[am] = 1, distinct++;
    }
    double hm = 0;
    for (int k = 0; k < K; k++) {
        double p = n > 0 ? work[k] / n : 0;
        if (p > 0) hm -= p * log(p);
    }
    out[DV2_STAT_TGT_ENTROPY] = n > 0 ? h / n : 0;
    out[DV2_STAT_TGT_MEAN_ENTROPY] = hm;
    out[DV2_STAT_N_ARGMAX] = distinct;
}

void dv2_cpu_stats_spread(double *std, double *cos, const float *x, int n, int dim, double *work) {
    *std = 0, *cos = 1;
    if (n < 1 || dim < 1) return;
    /* column means, then the mean of the column standard deviations */
    memset(work, 0, sizeof(double) * (size_t)dim);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < dim; j++) work[j] += x[(size_t)i * dim + j];
    for (int j = 0; j < dim; j++) work[j] /= n;
    double s = 0;
    for (int j = 0; j < dim; j++) {
        double v = 0;
        for (int i = 0; i < n; i++) {
            double e = x[(size_t)i * dim + j] - work[j];
            v += e * e;
        }
        s += sqrt(v / n);
    }
    *std = s / dim;
    if (n < 2) return;
    /* mean pairwise cosine = (|sum u_i|² - sum |u_i|²) / (n(n-1)), u_i = x_i/|x_i| */
    memset(work, 0, sizeof(double) * (size_t)dim);
    int nz = 0;
    for (int i = 0; i < n; i++) {
        const float *r = x + (size_t)i * dim;
        double nn = 0;
        for (int j = 0; j < dim; j++) nn += (double)r[j] * r[j];
        if (nn <= 0) continue;
        nn = 1.0 / sqrt(nn);
        for (int j = 0; j < dim; j++) work[j] += r[j] * nn;
        nz++;
    }
    double ss = 0;
    for (int j = 0; j < dim; j++) ss += work[j] * work[j];
    *cos = (ss - nz) / ((double)n * (n - 1));
}

void dv2_cpu_stats_prototypes(double *out, const float *g, const float *v, int K, int d,
                              double *work) {
    double sg = 0, sg2 = 0;
    for (int k = 0; k < K; k++) sg += fabs(g[k]), sg2 += (double)g[k] * g[k];
    double mean = K > 0 ? sg / K : 0, var = K > 0 ? sg2 / K - mean * mean : 0;
    out[DV2_STAT_PROTO_NORM_MEAN] = mean;
    out[DV2_STAT_PROTO_NORM_CV] = mean > 0 ? sqrt(var > 0 ? var : 0) / mean : 0;
    /* with u_k = v_k/|v_k|: sum_{k≠l} cos = |sum u|² - K and
     * sum_{k≠l} cos² = |U^T U|_F² - K, U^T U the d × d Gram matrix */
    double *gram = work, *sum = work + (size_t)d * d;
    memset(work, 0, sizeof(double) * ((size_t)d * d + d));
    int nz = 0;
    for (int k = 0; k < K; k++) {
        const float *r = v + (size_t)k * d;
        double nn = 0;
        for (int j = 0; j < d; j++) nn += (double)r[j] * r[j];
        if (nn <= 0) continue;
        nn = 1.0 / nn;
        for (int a = 0; a < d; a++) {
            sum[a] += r[a] * sqrt(nn);
            for (int b = 0; b <= a; b++) gram[(size_t)a * d + b] += (double)r[a] * r[b] * nn;
        }
        nz++;
    }
    double s1 = 0, f2 = 0;
    for (int a = 0; a < d; a++) {
        s1 += sum[a] * sum[a];
        for (int b = 0; b <= a; b++) f2 += (a == b ? 1.0 : 2.0) * gram[(size_t)a * d + b] * gram[(size_t)a * d + b];
    }
    double pairs = (double)K * (K - 1);
    out[DV2_STAT_PROTO_COS_MEAN] = K > 1 ? (s1 - nz) / pairs : 1;
    double ms = K > 1 ? (f2 - nz) / pairs : 1;
    out[DV2_STAT_PROTO_COS_RMS] = sqrt(ms > 0 ? ms : 0);
}
