/* cpu_linear.c — CPU backend: linear layers and the patch embedding
 * (im2col + one GEMM).  Matrix products go to OpenBLAS sgemm (row-major),
 * split over the OpenMP threads by dv2_cpu_sgemm; bias column sums are
 * column blocks over the threads, each summed by the vector colsum. */
#include <omp.h>
#include <string.h>
#include "ops/cpu/cpu.h"
#include "ops/cpu/cpu_vec.h"

int dv2_cpu_blas_single_begin(void) {
    int n = openblas_get_num_threads();
    if (n != 1) openblas_set_num_threads(1);
    return n;
}

void dv2_cpu_blas_single_end(int saved) {
    if (saved != 1) openblas_set_num_threads(saved);
}

/* Rows (or columns) per GEMM block.  The blocks do not depend on the thread
 * count, so every element of C is computed by the same call at the same
 * position whatever OMP_NUM_THREADS is: results are bitwise independent of
 * the number of threads (a resumed run may use another machine). */
#define GEMM_BLK 256

void dv2_cpu_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    enum CBLAS_TRANSPOSE ta = transA ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = transB ? CblasTrans : CblasNoTrans;
    double flops = 2.0 * M * N * (double)K;
    /* OpenBLAS's own pool stays at one thread, also for small products run
     * on this thread alone: its threads would compete with the OpenMP
     * workers that wait for the next parallel region */
    int saved = dv2_cpu_blas_single_begin();
    int by_rows = M >= N || M >= GEMM_BLK;
    int len = by_rows ? M : N, nb = (len + GEMM_BLK - 1) / GEMM_BLK;
    int par = nb > 1 && flops >= 4e6 && omp_get_max_threads() > 1 && !omp_in_parallel();
    #pragma omp parallel for schedule(dynamic, 1) if (par)
    for (int b = 0; b < nb; b++) {
        int s = b * GEMM_BLK, n = len - s < GEMM_BLK ? len - s : GEMM_BLK;
        if (by_rows) {
            const float *a = transA ? A + s : A + (size_t)s * lda;
            cblas_sgemm(CblasRowMajor, ta, tb, n, N, K, alpha, a, lda, B, ldb, beta,
                        C + (size_t)s * ldc, ldc);
        } else {
            const float *bb = transB ? B + (size_t)s * ldb : B + s;
            cblas_sgemm(CblasRowMajor, ta, tb, M, n, K, alpha, A, lda, bb, ldb, beta, C + s, ldc);
        }
    }
    dv2_cpu_blas_single_end(saved);
}

/* y (N,Cout) = in (N,Cin) · W^T + b, into pre with the GELU epilogue (out =
 * GELU(pre)), else into out. */
void dv2_cpu_linear_forward(float *out, float *pre, const float *in, const float *w,
                            const float *b, int N, int Cin, int Cout, int flags) {
    float *y = flags & DV2_LINEAR_GELU ? pre : out;
    float beta = 0.0f;
    if (b) {
        #pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)N * Cout))
        for (long n = 0; n < N; n++) memcpy(y + n * Cout, b, sizeof(float) * (size_t)Cout);
        beta = 1.0f;
    }
    if (N == 0) return;
    dv2_cpu_sgemm(0, 1, N, Cout, Cin, 1.0f, in, Cin, w, Cin, beta, y, Cout);
    if (flags & DV2_LINEAR_GELU) dv2_cpu_gelu_forward(out, pre, (size_t)N * Cout);
}

/* db (O) += Σ_n dout[n]: columns split over threads, rows summed in double
 * per column block so the result does not depend on the thread count. */
static void colsum_add(float *db, const float *dout, int N, int O) {
    const dv2_cpu_vec_ops *v = dv2_cpu_vec();
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR((size_t)N * O))
    for (int o0 = 0; o0 < O; o0 += 64) {
        int o1 = o0 + 64 < O ? o0 + 64 : O;
        double acc[64] = {0};
        v->colsum(acc, dout + o0, N, (size_t)O, o1 - o0);
        for (int o = o0; o < o1; o++) db[o] += (float)acc[o - o0];
    }
}

void dv2_cpu_linear_backward(float *din, float *dw, float *db, float *work, const float *dout,
                             const float *pre, const float *in, const float *w, int N, int Cin,
                             int Cout, int flags) {
    if (N == 0) return; /* no rows: din is empty, dw and db get nothing */
    if (flags & DV2_LINEAR_GELU) { /* dpre = dout ⊙ GELU'(pre) */
        dv2_cpu_gelu_backward(work, dout, pre, (size_t)N * Cout, 0);
        dout = work;
    }
    if (din)
        dv2_cpu_sgemm(0, 0, N, Cin, Cout, 1.0f, dout, Cout, w, Cin,
                      flags & DV2_LINEAR_ACCUMULATE ? 1.0f : 0.0f, din, Cin);
    if (dw)
        dv2_cpu_sgemm(1, 0, Cout, Cin, N, 1.0f, dout, Cout, in, Cin, 1.0f, dw, Cin);
    if (db) colsum_add(db, dout, N, Cout);
}

/* col (B·gh·gw, 3·p·p): row = one patch, columns ordered (c, ky, kx) like the
 * convolution weight (D,3,p,p). */
static void im2col(float *col, const float *img, int B, int Hpx, int Wpx, int p) {
    int gh = Hpx / p, gw = Wpx / p, K = 3 * p * p;
    #pragma omp parallel for collapse(2) schedule(static) if (DV2_CPU_PAR((size_t)B * gh * gw * 3 * p * p))
    for (int b = 0; b < B; b++)
        for (int ty = 0; ty < gh; ty++)
            for (int tx = 0; tx < gw; tx++) {
                float *dst = col + ((size_t)(b * gh + ty) * gw + tx) * K;
                for (int c = 0; c < 3; c++)
                    for (int ky = 0; ky < p; ky++) {
                        const float *src = img + (((size_t)b * 3 + c) * Hpx + ty * p + ky) * Wpx
                                           + (size_t)tx * p;
                        memcpy(dst + (c * p + ky) * p, src, sizeof(float) * (size_t)p);
                    }
            }
}

void dv2_cpu_patch_embed_forward(float *out, float *col, const float *img, const float *w,
                                 const float *b, int B, int Hpx, int Wpx, int p, int D) {
    im2col(col, img, B, Hpx, Wpx, p);
    int N = B * (Hpx / p) * (Wpx / p);
    dv2_cpu_linear_forward(out, NULL, col, w, b, N, 3 * p * p, D, 0);
}

void dv2_cpu_patch_embed_backward(float *dw, float *db, const float *dout, const float *col,
                                  int B, int Hpx, int Wpx, int p, int D) {
    int N = B * (Hpx / p) * (Wpx / p);
    dv2_cpu_linear_backward(NULL, dw, db, NULL, dout, NULL, col, NULL, N, 3 * p * p, D, 0);
}
