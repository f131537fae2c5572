/* cuda_act.cu — CUDA backend: activations (exact GELU, SwiGLU), the
 * LayerScale residual with stochastic-depth subsets, row gather/scatter,
 * elementwise helpers, the reductions for clipping and overflow checks, the
 * AdamW step and the teacher EMA.
 *
 * Bits.  The elementwise ops repeat the float operation sequence of
 * cpu_act.c / cpu_optim.c with __f*_rn intrinsics (nvcc would otherwise
 * contract a·b + c into an FMA), so they give the CPU's bits:
 *   - GELU is the CPU's own erfc evaluation (Numerical Recipes erfcc, an exp
 *     by Cody-Waite reduction and a degree-6 polynomial), not CUDA's erff:
 *     the same operations give the same floats, and the bf16 backend rounds
 *     the same values;
 *   - SwiGLU's exp(−x) is exp in double rounded to float, the correctly
 *     rounded expf in all but vanishingly rare cases (CUDA's expf is not),
 *     which is what glibc's expf returns almost always;
 *   - AdamW's bias corrections are computed on the host in double, as on
 *     the CPU.
 *
 * Determinism without atomics.  dgamma: blocks of 32 columns x 8 row lanes
 * sum chunks of 128 rows in double into workspace partials, a second kernel
 * adds them per column in chunk order.  scatter_add_rows: a stable radix
 * sort of (rows[i], i) (cub), then one thread per (distinct row, column)
 * adds its sources in increasing i, the CPU's order, so repeated rows give
 * the CPU's bits.  sumsq / all_finite: 1024 fixed chunks, a fixed block
 * tree each, the partials added in order by a second kernel, the scalar
 * copied to the pinned buffer and the stream synchronised. */
#include <math.h>

#include <cub/device/device_radix_sort.cuh>

#include "ops/cuda/cuda.h"
#include "ops/cuda/cuda_gelu.cuh"

#define GRID_STRIDE(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (size_t)gridDim.x * blockDim.x)

#define LAUNCH(n) dv2_cuda_grid((n), DV2_CUDA_THREADS), DV2_CUDA_THREADS, 0, dv2_cuda_stream(be)

/* ---- GELU ------------------------------------------------------------------ */

static __global__ void gelu_forward_kernel(float *out, const float *in, size_t n, int bf16) {
    GRID_STRIDE(i, n) {
        float y = dv2_cuda_gelu(in[i]);
        out[i] = bf16 ? dv2_bf16r(y) : y;
    }
}

/* din += dout · (Φ(x) + x·φ(x)),  φ(x) = exp(−x²/2)/√(2π). */
static __global__ void gelu_backward_kernel(float *din, const float *dout, const float *in,
                                            size_t n) {
    GRID_STRIDE(i, n) {
        din[i] = __fadd_rn(din[i], __fmul_rn(dout[i], dv2_cuda_gelu_grad(in[i])));
    }
}

int dv2_cuda_gelu_forward(const dv2_backend *be, float *out, const float *in, size_t n) {
    gelu_forward_kernel<<<LAUNCH(n)>>>(out, in, n, dv2_cuda_bf16(be));
    return dv2_cuda_launched(be);
}

int dv2_cuda_gelu_backward(const dv2_backend *be, float *din, const float *dout, const float *in,
                           size_t n) {
    gelu_backward_kernel<<<LAUNCH(n)>>>(din, dout, in, n);
    return dv2_cuda_launched(be);
}

/* ---- SwiGLU: in (N, 2h) = [x1 | x2] → out (N,h) = SiLU(x1) ⊙ x2 ------------ */

static __device__ __forceinline__ float exp_f(float x) { return (float)exp((double)x); }

static __global__ void swiglu_forward_kernel(float *out, const float *in, int N, int h, int bf16) {
    GRID_STRIDE(i, (size_t)N * h) {
        size_t n = i / h, j = i % h;
        float x1 = in[n * 2 * h + j], x2 = in[n * 2 * h + h + j];
        float y = __fmul_rn(__fdiv_rn(x1, __fadd_rn(1.0f, exp_f(-x1))), x2);
        out[i] = bf16 ? dv2_bf16r(y) : y;
    }
}

static __global__ void swiglu_backward_kernel(float *din, const float *dout, const float *in, int N,
                                              int h) {
    GRID_STRIDE(i, (size_t)N * h) {
        size_t n = i / h, j = i % h;
        size_t i1 = n * 2 * h + j, i2 = i1 + h;
        float x1 = in[i1], x2 = in[i2], g = dout[i];
        float s = __fdiv_rn(1.0f, __fadd_rn(1.0f, exp_f(-x1)));
        float silu = __fmul_rn(x1, s);
        float ds = __fadd_rn(s, __fmul_rn(__fmul_rn(x1, s), __fsub_rn(1.0f, s)));
        din[i1] = __fadd_rn(din[i1], __fmul_rn(__fmul_rn(g, x2), ds));
        din[i2] = __fadd_rn(din[i2], __fmul_rn(g, silu));
    }
}

int dv2_cuda_swiglu_forward(const dv2_backend *be, float *out, const float *in, int N, int h) {
    swiglu_forward_kernel<<<LAUNCH((size_t)N * h)>>>(out, in, N, h, dv2_cuda_bf16(be));
    return dv2_cuda_launched(be);
}

int dv2_cuda_swiglu_backward(const dv2_backend *be, float *din, const float *dout, const float *in,
                             int N, int h) {
    swiglu_backward_kernel<<<LAUNCH((size_t)N * h)>>>(din, dout, in, N, h);
    return dv2_cuda_launched(be);
}

/* ---- residual + LayerScale ------------------------------------------------- */

/* x[row_i] += scale_i · gamma ⊙ y[i]; the rows of a subset are distinct. */
static __global__ void residual_forward_kernel(float *x, const float *y, const float *gamma,
                                               const int *rows, const float *scale, int n, int C) {
    GRID_STRIDE(k, (size_t)n * C) {
        size_t i = k / C, c = k % C;
        size_t r = rows ? (size_t)rows[i] : i;
        float s = scale ? scale[i] : 1.0f;
        x[r * C + c] = __fadd_rn(x[r * C + c], __fmul_rn(__fmul_rn(s, gamma[c]), y[k]));
    }
}

static __global__ void residual_dy_kernel(float *dy, const float *dx, const float *gamma,
                                          const int *rows, const float *scale, int n, int C) {
    GRID_STRIDE(k, (size_t)n * C) {
        size_t i = k / C, c = k % C;
        size_t r = rows ? (size_t)rows[i] : i;
        float s = scale ? scale[i] : 1.0f;
        dy[k] = __fadd_rn(dy[k], __fmul_rn(__fmul_rn(s, gamma[c]), dx[r * C + c]));
    }
}

#define CS_TILE 32   /* columns per block: one warp reads a row segment */
#define CS_LANES 8   /* row lanes per block */
#define CS_CHUNK 128 /* rows per partial sum */

/* part (P, C) = Σ over the rows of chunk p of scale_i·y[i]·dx[row_i], in double. */
static __global__ void dgamma_part_kernel(double *part, const float *dx, const float *y,
                                          const int *rows, const float *scale, int n, int C) {
    __shared__ double sh[CS_LANES][CS_TILE];
    int tx = threadIdx.x, ty = threadIdx.y;
    int c = blockIdx.x * CS_TILE + tx;
    size_t P = ((size_t)n + CS_CHUNK - 1) / CS_CHUNK;
    for (size_t p = blockIdx.y; p < P; p += gridDim.y) {
        double a = 0;
        if (c < C) {
            size_t i1 = (p + 1) * CS_CHUNK < (size_t)n ? (p + 1) * CS_CHUNK : (size_t)n;
            for (size_t i = p * CS_CHUNK + ty; i < i1; i += CS_LANES) {
                size_t r = rows ? (size_t)rows[i] : i;
                double s = scale ? (double)scale[i] : 1.0;
                a = __dadd_rn(a, __dmul_rn(s * y[i * C + c], dx[r * C + c]));
            }
        }
        sh[ty][tx] = a;
        __syncthreads();
        if (ty == 0 && c < C) {
            double s = 0;
            for (int l = 0; l < CS_LANES; l++) s += sh[l][tx];
            part[p * C + c] = s;
        }
        __syncthreads();
    }
}

static __global__ void dgamma_finish_kernel(float *dgamma, const double *part, size_t P, int C) {
    GRID_STRIDE(c, (size_t)C) {
        double s = 0;
        for (size_t p = 0; p < P; p++) s += part[p * C + c];
        dgamma[c] += (float)s;
    }
}

int dv2_cuda_residual_forward(const dv2_backend *be, float *x, const float *y, const float *gamma,
                              const int *rows, const float *scale, int n, int C) {
    residual_forward_kernel<<<LAUNCH((size_t)n * C)>>>(x, y, gamma, rows, scale, n, C);
    return dv2_cuda_launched(be);
}

int dv2_cuda_residual_backward(const dv2_backend *be, float *dy, float *dgamma, const float *dx,
                               const float *y, const float *gamma, const int *rows,
                               const float *scale, int n, int C) {
    if (dy) residual_dy_kernel<<<LAUNCH((size_t)n * C)>>>(dy, dx, gamma, rows, scale, n, C);
    if (dgamma && n > 0 && C > 0) {
        size_t P = ((size_t)n + CS_CHUNK - 1) / CS_CHUNK;
        double *part = (double *)dv2_cuda_workspace(be, sizeof(double) * P * (size_t)C);
        if (!part) {
            dv2_cuda_nan_fill(be, dgamma, (size_t)C);
            return DV2_ENOMEM;
        }
        dim3 grid((unsigned)((C + CS_TILE - 1) / CS_TILE), (unsigned)(P < 65535 ? P : 65535));
        dgamma_part_kernel<<<grid, dim3(CS_TILE, CS_LANES), 0, dv2_cuda_stream(be)>>>(
            part, dx, y, rows, scale, n, C);
        dgamma_finish_kernel<<<LAUNCH((size_t)C)>>>(dgamma, part, P, C);
    }
    return dv2_cuda_launched(be);
}

/* ---- row movement ------------------------------------------------------------ */

static __global__ void gather_rows_kernel(float *out, const float *in, const int *rows, int n,
                                          int C) {
    GRID_STRIDE(k, (size_t)n * C) out[k] = in[(size_t)rows[k / C] * C + k % C];
}

int dv2_cuda_gather_rows(const dv2_backend *be, float *out, const float *in, const int *rows, int n,
                         int C) {
    gather_rows_kernel<<<LAUNCH((size_t)n * C)>>>(out, in, rows, n, C);
    return dv2_cuda_launched(be);
}

static __global__ void iota_kernel(int *v, int n) {
    GRID_STRIDE(i, (size_t)n) v[i] = (int)i;
}

/* key (n) sorted rows, src (n) their i (stable: increasing within a row).
 * The first entry of each run of equal keys adds the whole run in order. */
static __global__ void scatter_runs_kernel(float *out, const float *in, const int *key,
                                           const int *src, int n, int C) {
    GRID_STRIDE(q, (size_t)n * C) {
        size_t k = q / C, c = q % C;
        int r = key[k];
        if (k > 0 && key[k - 1] == r) continue;
        float o = out[(size_t)r * C + c];
        for (size_t e = k; e < (size_t)n && key[e] == r; e++)
            o = __fadd_rn(o, in[(size_t)src[e] * C + c]);
        out[(size_t)r * C + c] = o;
    }
}

/* The output of a scatter that could not run: NaN in every target row. */
static __global__ void nan_rows_kernel(float *out, const int *rows, int n, int C) {
    GRID_STRIDE(k, (size_t)n * C) out[(size_t)rows[k / C] * C + k % C] = __int_as_float(0x7fc00000);
}

static size_t align256(size_t b) { return (b + 255) & ~(size_t)255; }

int dv2_cuda_scatter_add_rows(const dv2_backend *be, float *out, const float *in, const int *rows,
                              int n, int C) {
    if (n <= 0 || C <= 0) return dv2_cuda_launched(be);
    cudaStream_t st = dv2_cuda_stream(be);
    size_t temp = 0, ib = align256(sizeof(int) * (size_t)n);
    int rc = dv2_cuda_check(be, cub::DeviceRadixSort::SortPairs(NULL, temp, (const int *)NULL,
                                                                (int *)NULL, (const int *)NULL,
                                                                (int *)NULL, n, 0, 32, st));
    char *ws = rc == DV2_OK ? (char *)dv2_cuda_workspace(be, 3 * ib + temp) : NULL;
    if (!ws) {
        nan_rows_kernel<<<LAUNCH((size_t)n * C)>>>(out, rows, n, C);
        dv2_cuda_launched(be);
        return rc != DV2_OK ? rc : DV2_ENOMEM;
    }
    int *key = (int *)ws, *idx = (int *)(ws + ib), *src = (int *)(ws + 2 * ib);
    iota_kernel<<<LAUNCH((size_t)n)>>>(idx, n);
    rc = dv2_cuda_check(be, cub::DeviceRadixSort::SortPairs(ws + 3 * ib, temp, rows, key, idx, src,
                                                            n, 0, 32, st));
    if (rc != DV2_OK) {
        nan_rows_kernel<<<LAUNCH((size_t)n * C)>>>(out, rows, n, C);
        dv2_cuda_launched(be);
        return rc;
    }
    scatter_runs_kernel<<<LAUNCH((size_t)n * C)>>>(out, in, key, src, n, C);
    return dv2_cuda_launched(be);
}

/* ---- elementwise ---------------------------------------------------------------- */

static __global__ void add_kernel(float *y, const float *x, size_t n) {
    GRID_STRIDE(i, n) y[i] = __fadd_rn(y[i], x[i]);
}

static __global__ void scale_kernel(float *x, float a, size_t n) {
    GRID_STRIDE(i, n) x[i] = __fmul_rn(x[i], a);
}

int dv2_cuda_add(const dv2_backend *be, float *y, const float *x, size_t n) {
    add_kernel<<<LAUNCH(n)>>>(y, x, n);
    return dv2_cuda_launched(be);
}

int dv2_cuda_scale(const dv2_backend *be, float *x, float a, size_t n) {
    scale_kernel<<<LAUNCH(n)>>>(x, a, n);
    return dv2_cuda_launched(be);
}

/* ---- reductions to the host ------------------------------------------------------ */

#define RED_CHUNKS 1024 /* fixed, so the value does not depend on the device */

/* Block b of RED_CHUNKS: part[b] = Σ x² over chunk b (double), a fixed tree. */
static __global__ void sumsq_part_kernel(double *part, const float *x, size_t n) {
    __shared__ double sh[DV2_CUDA_THREADS];
    size_t per = (n + RED_CHUNKS - 1) / RED_CHUNKS, s0 = (size_t)blockIdx.x * per;
    size_t e = s0 + per < n ? s0 + per : n;
    double s = 0;
    for (size_t i = s0 + threadIdx.x; i < e; i += blockDim.x) s += (double)x[i] * x[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int h = DV2_CUDA_THREADS / 2; h > 0; h >>= 1) {
        if ((int)threadIdx.x < h) sh[threadIdx.x] += sh[threadIdx.x + h];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

/* One thread adds the partials in order. */
static __global__ void sumsq_finish_kernel(double *total, const double *part) {
    double s = 0;
    for (int b = 0; b < RED_CHUNKS; b++) s += part[b];
    *total = s;
}

static __global__ void finite_part_kernel(int *part, const float *x, size_t n) {
    size_t per = (n + RED_CHUNKS - 1) / RED_CHUNKS, s0 = (size_t)blockIdx.x * per;
    size_t e = s0 + per < n ? s0 + per : n;
    int ok = 1;
    for (size_t i = s0 + threadIdx.x; i < e; i += blockDim.x)
        ok &= (__float_as_uint(x[i]) & 0x7f800000u) != 0x7f800000u;
    ok = __syncthreads_and(ok);
    if (threadIdx.x == 0) part[blockIdx.x] = ok;
}

static __global__ void finite_finish_kernel(int *total, const int *part) {
    int ok = 1;
    for (int b = 0; b < RED_CHUNKS; b++) ok &= part[b];
    *total = ok;
}

/* Copies `bytes` of the device result d to the pinned buffer and waits. */
static int fetch_scalar(const dv2_backend *be, const void *d, size_t bytes) {
    cudaStream_t st = dv2_cuda_stream(be);
    int rc = dv2_cuda_launched(be);
    if (rc == DV2_OK)
        rc = dv2_cuda_check(be, cudaMemcpyAsync(dv2_cuda_pinned(be), d, bytes,
                                                cudaMemcpyDeviceToHost, st));
    if (rc == DV2_OK) rc = dv2_cuda_check(be, cudaStreamSynchronize(st));
    dv2_cuda_ctx_of(be)->to_host += bytes; /* as the CPU backend counts it */
    return rc;
}

int dv2_cuda_sumsq(const dv2_backend *be, double *h_out, const float *x, size_t n) {
    double *part = (double *)dv2_cuda_small(be), *total = part + RED_CHUNKS;
    sumsq_part_kernel<<<RED_CHUNKS, DV2_CUDA_THREADS, 0, dv2_cuda_stream(be)>>>(part, x, n);
    sumsq_finish_kernel<<<1, 1, 0, dv2_cuda_stream(be)>>>(total, part);
    int rc = fetch_scalar(be, total, sizeof(double));
    *h_out = rc == DV2_OK ? *(const double *)dv2_cuda_pinned(be) : (double)NAN;
    return rc;
}

int dv2_cuda_all_finite(const dv2_backend *be, int *h_out, const float *x, size_t n) {
    int *part = (int *)dv2_cuda_small(be), *total = part + RED_CHUNKS;
    finite_part_kernel<<<RED_CHUNKS, DV2_CUDA_THREADS, 0, dv2_cuda_stream(be)>>>(part, x, n);
    finite_finish_kernel<<<1, 1, 0, dv2_cuda_stream(be)>>>(total, part);
    int rc = fetch_scalar(be, total, sizeof(int));
    *h_out = rc == DV2_OK ? *(const int *)dv2_cuda_pinned(be) : 0;
    return rc;
}

/* ---- optimizer ------------------------------------------------------------------ */

/* step = lr/(1−β1^t) and rbc2 = 1/sqrt(1−β2^t) come from the host (double,
 * as the CPU); p16 (may be NULL) gets the bf16 compute copy of the new p. */
static __global__ void adamw_kernel(float *p, __nv_bfloat16 *p16, float *m, float *v, const float *g,
                                    size_t n, float beta1, float beta2, float omb1, float omb2,
                                    float eps, float step, float rbc2, float decay) {
    GRID_STRIDE(i, n) {
        float gi = g[i];
        float mi = __fadd_rn(__fmul_rn(beta1, m[i]), __fmul_rn(omb1, gi));
        float vi = __fadd_rn(__fmul_rn(beta2, v[i]), __fmul_rn(__fmul_rn(omb2, gi), gi));
        float pi = __fmul_rn(p[i], decay);
        float den = __fadd_rn(__fmul_rn(__fsqrt_rn(vi), rbc2), eps);
        m[i] = mi;
        v[i] = vi;
        float np = __fsub_rn(pi, __fdiv_rn(__fmul_rn(step, mi), den));
        p[i] = np;
        if (p16) p16[i] = dv2_bf16s(np);
    }
}

int dv2_cuda_adamw_step(const dv2_backend *be, float *p, dv2_bf16 *p16, float *m, float *v,
                        const float *g, size_t n, float lr, float wd, float beta1, float beta2,
                        float eps, int t) {
    double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
    float step = (float)(lr / bc1), rbc2 = (float)(1.0 / sqrt(bc2)), decay = 1.0f - lr * wd;
    adamw_kernel<<<LAUNCH(n)>>>(p, (__nv_bfloat16 *)p16, m, v, g, n, beta1, beta2, 1.0f - beta1,
                                1.0f - beta2, eps, step, rbc2, decay);
    return dv2_cuda_launched(be);
}

static __global__ void ema_kernel(float *teacher, __nv_bfloat16 *t16, const float *student, size_t n,
                                  float mom, float omm) {
    GRID_STRIDE(i, n) {
        float t = __fadd_rn(__fmul_rn(mom, teacher[i]), __fmul_rn(omm, student[i]));
        teacher[i] = t;
        if (t16) t16[i] = dv2_bf16s(t);
    }
}

int dv2_cuda_ema_update(const dv2_backend *be, float *teacher, dv2_bf16 *teacher16,
                        const float *student, size_t n, float mom) {
    ema_kernel<<<LAUNCH(n)>>>(teacher, (__nv_bfloat16 *)teacher16, student, n, mom, 1.0f - mom);
    return dv2_cuda_launched(be);
}
