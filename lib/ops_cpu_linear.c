/* ops_cpu_linear.c — CPU backend: linear layers and the patch embedding
 * (im2col + one GEMM).  Matrix products go to OpenBLAS sgemm (row-major);
 * bias column sums are OpenMP loops. */
#include <cblas.h>
#include <string.h>
#include "ops_cpu.h"

/* out (N,Cout) = in (N,Cin) · W^T + b. */
void dv2_cpu_linear_forward(float *out, const float *in, const float *w, const float *b,
                            int N, int Cin, int Cout) {
    float beta = 0.0f;
    if (b) {
        #pragma omp parallel for schedule(static)
        for (long n = 0; n < N; n++) memcpy(out + n * Cout, b, sizeof(float) * (size_t)Cout);
        beta = 1.0f;
    }
    if (N == 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, Cout, Cin, 1.0f, in, Cin, w, Cin,
                beta, out, Cout);
}

/* db (O) += Σ_n dout[n]: columns split over threads, rows summed in double
 * per column block so the result does not depend on the thread count. */
static void colsum_add(float *db, const float *dout, int N, int O) {
    #pragma omp parallel for schedule(static)
    for (int o0 = 0; o0 < O; o0 += 64) {
        int o1 = o0 + 64 < O ? o0 + 64 : O;
        double acc[64] = {0};
        for (long n = 0; n < N; n++) {
            const float *r = dout + n * O;
            for (int o = o0; o < o1; o++) acc[o - o0] += r[o];
        }
        for (int o = o0; o < o1; o++) db[o] += (float)acc[o - o0];
    }
}

void dv2_cpu_linear_backward(float *din, float *dw, float *db, const float *dout,
                             const float *in, const float *w, int N, int Cin, int Cout) {
    if (N == 0) return;
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, Cin, Cout, 1.0f, dout, Cout, w,
                    Cin, 1.0f, din, Cin);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Cout, Cin, N, 1.0f, dout, Cout, in,
                    Cin, 1.0f, dw, Cin);
    if (db) colsum_add(db, dout, N, Cout);
}

/* col (B·gh·gw, 3·p·p): row = one patch, columns ordered (c, ky, kx) like the
 * convolution weight (D,3,p,p). */
static void im2col(float *col, const float *img, int B, int Hpx, int Wpx, int p) {
    int gh = Hpx / p, gw = Wpx / p, K = 3 * p * p;
    #pragma omp parallel for collapse(2) schedule(static)
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
    dv2_cpu_linear_forward(out, col, w, b, N, 3 * p * p, D);
}

void dv2_cpu_patch_embed_backward(float *dw, float *db, const float *dout, const float *col,
                                  int B, int Hpx, int Wpx, int p, int D) {
    int N = B * (Hpx / p) * (Wpx / p);
    dv2_cpu_linear_backward(NULL, dw, db, dout, col, NULL, N, 3 * p * p, D);
}
