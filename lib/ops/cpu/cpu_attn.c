/* cpu_attn.c — CPU backend: multi-head attention over packed
 * variable-length sequences (block-diagonal attention, spec §13).
 *
 * The (sequence, head) pairs are independent and are spread over the OpenMP
 * threads; each pair computes its scores in blocks of query rows with
 * single-threaded OpenBLAS calls (Q, K, V are read in place from the
 * (T,3,H,dh) qkv buffer via leading dimensions), the softmax in float with
 * the row max subtracted, the vector exp of cpu_vec.c and the sum in 16
 * float lanes added in double, and saves the log-sum-exp so
 * backward recomputes the probabilities instead of storing (n×n) per head.
 * Different pairs write disjoint parts of out / dqkv, so there are no races.
 *
 * The score blocks live in the caller's work (the backend's workspace: one
 * block per OpenMP thread). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include "ops/cpu/cpu.h"
#include "ops/cpu/cpu_vec.h"

#define QBLOCK 128

static int max_seqlen(const int *cu, int nseq) {
    int m = 0;
    for (int s = 0; s < nseq; s++)
        if (cu[s + 1] - cu[s] > m) m = cu[s + 1] - cu[s];
    return m;
}

static void head_forward(float *out, float *lse, const float *qkv, float *P, int t0, int n,
                         int h, int T, int H, int dh) {
    int D = H * dh, ld = 3 * D;
    float scale = 1.0f / sqrtf((float)dh);
    const dv2_cpu_vec_ops *v = dv2_cpu_vec();
    const float *Q = qkv + (size_t)t0 * ld + h * dh;
    const float *K = Q + D, *V = Q + 2 * D;
    for (int q0 = 0; q0 < n; q0 += QBLOCK) {
        int bq = n - q0 < QBLOCK ? n - q0 : QBLOCK;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bq, n, dh, scale,
                    Q + (size_t)q0 * ld, ld, K, ld, 0.0f, P, n);
        for (int i = 0; i < bq; i++) {
            float *r = P + (size_t)i * n, mx = v->max(r, n);
            double sum = v->exp_sum(r, n, mx);
            float inv = (float)(1.0 / sum);
            for (int j = 0; j < n; j++) r[j] *= inv;
            lse[(size_t)h * T + t0 + q0 + i] = mx + (float)log(sum);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bq, dh, n, 1.0f, P, n, V, ld,
                    0.0f, out + (size_t)(t0 + q0) * D + h * dh, D);
    }
}

/* Floats of score scratch per thread: QBLOCK query rows by the longest
 * sequence (twice that in backward, for P and dP). */
static size_t block_floats(const dv2_seqpack *sp) {
    int nmax = max_seqlen(sp->cu, sp->nseq);
    return (size_t)QBLOCK * (nmax ? nmax : 1);
}

size_t dv2_cpu_attention_work(const dv2_seqpack *sp, int backward) {
    return block_floats(sp) * (backward ? 2 : 1) * (size_t)omp_get_max_threads();
}

void dv2_cpu_attention_forward(float *out, float *lse, const float *qkv, const dv2_seqpack *sp,
                               int H, int dh, float *work) {
    const int *cu_seqlens = sp->cu;
    int nseq = sp->nseq, T = sp->T, np = nseq * H;
    size_t blk = block_floats(sp);
    int saved = dv2_cpu_blas_single_begin();
    #pragma omp parallel if (np > 1)
    {
        float *P = work + blk * (size_t)omp_get_thread_num();
        #pragma omp for schedule(dynamic, 1)
        for (int k = 0; k < np; k++) {
            int s = k / H, h = k % H;
            head_forward(out, lse, qkv, P, cu_seqlens[s], cu_seqlens[s + 1] - cu_seqlens[s], h, T, H, dh);
        }
    }
    dv2_cpu_blas_single_end(saved);
}

static void head_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                          const float *lse, float *P, float *dP, int t0, int n, int h, int T,
                          int H, int dh) {
    int D = H * dh, ld = 3 * D;
    float scale = 1.0f / sqrtf((float)dh);
    const float *Q = qkv + (size_t)t0 * ld + h * dh;
    const float *K = Q + D, *V = Q + 2 * D;
    const dv2_cpu_vec_ops *v = dv2_cpu_vec();
    float *dQ = dqkv + (size_t)t0 * ld + h * dh, *dK = dQ + D, *dV = dQ + 2 * D;
    for (int q0 = 0; q0 < n; q0 += QBLOCK) {
        int bq = n - q0 < QBLOCK ? n - q0 : QBLOCK;
        const float *dO = dout + (size_t)(t0 + q0) * D + h * dh;
        const float *O = out + (size_t)(t0 + q0) * D + h * dh;
        const float *L = lse + (size_t)h * T + t0 + q0;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bq, n, dh, scale,
                    Q + (size_t)q0 * ld, ld, K, ld, 0.0f, P, n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bq, n, dh, 1.0f, dO, D, V, ld,
                    0.0f, dP, n);
        /* P = exp(S − lse); dS = P ⊙ (dP − rowsum(dO ⊙ O)) */
        for (int i = 0; i < bq; i++) {
            float *p = P + (size_t)i * n, *dp = dP + (size_t)i * n;
            double di = 0;
            for (int c = 0; c < dh; c++) di += (double)dO[(size_t)i * D + c] * O[(size_t)i * D + c];
            float l = L[i], fdi = (float)di;
            v->softmax_grad(p, dp, n, l, fdi);
        }
        /* dV += P^T dO; dQ += scale dS K; dK += scale dS^T Q */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, dh, bq, 1.0f, P, n, dO, D, 1.0f,
                    dV, ld);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bq, dh, n, scale, dP, n, K, ld,
                    1.0f, dQ + (size_t)q0 * ld, ld);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, dh, bq, scale, dP, n,
                    Q + (size_t)q0 * ld, ld, 1.0f, dK, ld);
    }
}

void dv2_cpu_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                const float *out, const float *lse, const dv2_seqpack *sp,
                                int H, int dh, float *work) {
    const int *cu_seqlens = sp->cu;
    int nseq = sp->nseq, T = sp->T, np = nseq * H;
    size_t blk = block_floats(sp);
    int saved = dv2_cpu_blas_single_begin();
    #pragma omp parallel if (np > 1)
    {
        float *P = work + 2 * blk * (size_t)omp_get_thread_num();
        #pragma omp for schedule(dynamic, 1)
        for (int k = 0; k < np; k++) {
            int s = k / H, h = k % H;
            head_backward(dqkv, dout, qkv, out, lse, P, P + blk, cu_seqlens[s],
                          cu_seqlens[s + 1] - cu_seqlens[s], h, T, H, dh);
        }
    }
    dv2_cpu_blas_single_end(saved);
}
