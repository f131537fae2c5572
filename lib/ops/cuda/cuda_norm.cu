/* cuda_norm.cu — CUDA backend: token assembly (CLS, registers, mask token,
 * positional embedding), LayerNorm, row L2 normalisation and the weight
 * normalisation of the heads' last layer.
 *
 * Row statistics: one warp per row, double accumulators per lane, a
 * butterfly shuffle sum (IEEE addition is commutative, so every lane ends
 * with the same bits).  The float arithmetic that follows the statistics is
 * written with __f*_rn intrinsics in the operation order of cpu_norm.c and
 * cpu_act.c, so nvcc cannot contract it into FMAs: given equal statistics
 * the outputs have the CPU's bits.
 *
 * Column sums over rows (LayerNorm dw/db, the mask token's gradient) are
 * deterministic without atomics: blocks of 32 columns x 8 row lanes sum
 * chunks of 128 rows in double into workspace partials, and a second kernel
 * adds the partials of each column in chunk order.  Sums over the batch of
 * one token position (dcls, dreg, dpos) are short: one thread per output
 * element walks b in order, as the CPU does. */
#include "ops/cuda/cuda.h"

#define WARPS_PER_BLOCK (DV2_CUDA_THREADS / 32)

static __device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* ---- deterministic column sums ------------------------------------------- */

#define CS_TILE 32   /* columns per block: one warp reads a row segment */
#define CS_LANES 8   /* row lanes per block */
#define CS_CHUNK 128 /* rows per partial sum */

/* part (P, NOUT, C): f(r, c, a) adds row r's terms of column c into a[0..NOUT). */
template <int NOUT, class F>
static __global__ void colsum_part_kernel(double *part, F f, size_t rows, int C) {
    __shared__ double sh[NOUT][CS_LANES][CS_TILE];
    int tx = threadIdx.x, ty = threadIdx.y;
    int c = blockIdx.x * CS_TILE + tx;
    size_t P = (rows + CS_CHUNK - 1) / CS_CHUNK;
    for (size_t p = blockIdx.y; p < P; p += gridDim.y) {
        double a[NOUT];
        for (int k = 0; k < NOUT; k++) a[k] = 0;
        if (c < C) {
            size_t r1 = (p + 1) * CS_CHUNK < rows ? (p + 1) * CS_CHUNK : rows;
            for (size_t r = p * CS_CHUNK + ty; r < r1; r += CS_LANES) f(r, c, a);
        }
        for (int k = 0; k < NOUT; k++) sh[k][ty][tx] = a[k];
        __syncthreads();
        if (ty == 0 && c < C)
            for (int k = 0; k < NOUT; k++) {
                double s = 0;
                for (int l = 0; l < CS_LANES; l++) s += sh[k][l][tx];
                part[(p * NOUT + k) * C + c] = s;
            }
        __syncthreads();
    }
}

/* o_k[c] += (float)Σ_p part[p,k,c], p in order; o_k may be NULL. */
template <int NOUT>
static __global__ void colsum_finish_kernel(float *o0, float *o1, const double *part, size_t P,
                                            int C) {
    for (size_t c = (size_t)blockIdx.x * blockDim.x + threadIdx.x; c < (size_t)C;
         c += (size_t)gridDim.x * blockDim.x)
        for (int k = 0; k < NOUT; k++) {
            float *o = k == 0 ? o0 : o1;
            if (!o) continue;
            double s = 0;
            for (size_t p = 0; p < P; p++) s += part[(p * NOUT + k) * C + c];
            o[c] += (float)s;
        }
}

/* Queues both kernels; DV2_ENOMEM (outputs NaN) when the workspace cannot grow. */
template <int NOUT, class F>
static int colsum(const dv2_backend *be, float *o0, float *o1, F f, size_t rows, int C) {
    if (rows == 0 || C <= 0) return DV2_OK;
    size_t P = (rows + CS_CHUNK - 1) / CS_CHUNK;
    double *part = (double *)dv2_cuda_workspace(be, sizeof(double) * P * NOUT * (size_t)C);
    if (!part) {
        dv2_cuda_nan_fill(be, o0, (size_t)C);
        dv2_cuda_nan_fill(be, o1, (size_t)C);
        return DV2_ENOMEM;
    }
    cudaStream_t st = dv2_cuda_stream(be);
    dim3 grid((unsigned)((C + CS_TILE - 1) / CS_TILE), (unsigned)(P < 65535 ? P : 65535));
    colsum_part_kernel<NOUT><<<grid, dim3(CS_TILE, CS_LANES), 0, st>>>(part, f, rows, C);
    colsum_finish_kernel<NOUT><<<dv2_cuda_grid((size_t)C, DV2_CUDA_THREADS), DV2_CUDA_THREADS, 0,
                                 st>>>(o0, o1, part, P, C);
    return DV2_OK;
}

/* ---- token assembly ----------------------------------------------------- */

/* x (B, S, D), S = 1+R+N. */
static __global__ void embed_tokens_forward_kernel(float *x, const float *patch, const float *cls,
                                                   const float *reg, const float *pos,
                                                   const uint8_t *mask, const float *mask_token,
                                                   int B, int N, int R, int D) {
    size_t S = (size_t)1 + R + N, total = (size_t)B * S * D;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t c = i % D, t = (i / D) % S, b = i / ((size_t)D * S);
        float v;
        if (t == 0) {
            v = __fadd_rn(cls[c], pos[c]);
        } else if (t <= (size_t)R) {
            v = reg[(t - 1) * D + c];
        } else {
            size_t j = t - 1 - R;
            float s = (mask && mask[b * N + j]) ? mask_token[c] : patch[(b * N + j) * D + c];
            v = __fadd_rn(s, pos[(1 + j) * D + c]);
        }
        x[i] = v;
    }
}

int dv2_cuda_embed_tokens_forward(const dv2_backend *be, float *x, const float *patch,
                                  const float *cls, const float *reg, const float *pos,
                                  const uint8_t *mask, const float *mask_token, int B, int N, int R,
                                  int D) {
    size_t total = (size_t)B * (1 + R + N) * D;
    embed_tokens_forward_kernel<<<dv2_cuda_grid(total, DV2_CUDA_THREADS), DV2_CUDA_THREADS, 0,
                                  dv2_cuda_stream(be)>>>(x, patch, cls, reg, pos, mask,
                                                         mask_token, B, N, R, D);
    return dv2_cuda_launched(be);
}

/* dpatch (B,N,D) += dx of the unmasked patch tokens. */
static __global__ void embed_dpatch_kernel(float *dpatch, const float *dx, const uint8_t *mask,
                                           int B, int N, int R, int D) {
    size_t S = (size_t)1 + R + N, total = (size_t)B * N * D;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t c = i % D, bj = i / D, b = bj / N, j = bj % N;
        if (mask && mask[bj]) continue;
        dpatch[i] = __fadd_rn(dpatch[i], dx[(b * S + 1 + R + j) * D + c]);
    }
}

/* One thread per (token position t, column c), b in order: t = 0 gives dcls
 * and dpos[0] (double, as the CPU), 1..R dreg (float, as the CPU), the
 * patch positions dpos[1+j] (double). */
static __global__ void embed_dtok_kernel(float *dcls, float *dreg, float *dpos, const float *dx,
                                         int B, int N, int R, int D) {
    size_t S = (size_t)1 + R + N, total = S * D;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t c = i % D, t = i / D;
        if (t >= 1 && t <= (size_t)R) {
            if (!dreg) continue;
            float d = dreg[(t - 1) * D + c];
            for (int b = 0; b < B; b++) d = __fadd_rn(d, dx[((size_t)b * S + t) * D + c]);
            dreg[(t - 1) * D + c] = d;
            continue;
        }
        if (!dpos && (t != 0 || !dcls)) continue;
        double acc = 0;
        for (int b = 0; b < B; b++) acc += dx[((size_t)b * S + t) * D + c];
        if (t == 0) {
            if (dcls) dcls[c] += (float)acc;
            if (dpos) dpos[c] += (float)acc;
        } else {
            dpos[(t - R) * D + c] += (float)acc; /* position 1+j, j = t-1-R */
        }
    }
}

/* Terms of dmask_token: virtual row r = b·N + j, the token 1+R+j of image b. */
struct embed_dmask_terms {
    const float *dx;
    const uint8_t *mask;
    int N, R, D;
    __device__ void operator()(size_t r, int c, double *a) const {
        if (!mask[r]) return;
        size_t b = r / N, j = r % N, S = (size_t)1 + R + N;
        a[0] += dx[(b * S + 1 + R + j) * D + c];
    }
};

int dv2_cuda_embed_tokens_backward(const dv2_backend *be, float *dpatch, float *dcls, float *dreg,
                                   float *dpos, float *dmask_token, const float *dx,
                                   const uint8_t *mask, int B, int N, int R, int D) {
    cudaStream_t st = dv2_cuda_stream(be);
    if (dpatch) {
        size_t total = (size_t)B * N * D;
        embed_dpatch_kernel<<<dv2_cuda_grid(total, DV2_CUDA_THREADS), DV2_CUDA_THREADS, 0, st>>>(
            dpatch, dx, mask, B, N, R, D);
    }
    if (dcls || dpos || (dreg && R > 0)) {
        size_t total = (size_t)(1 + R + N) * D;
        embed_dtok_kernel<<<dv2_cuda_grid(total, DV2_CUDA_THREADS), DV2_CUDA_THREADS, 0, st>>>(
            dcls, R > 0 ? dreg : NULL, dpos, dx, B, N, R, D);
    }
    if (dmask_token && mask) {
        embed_dmask_terms f = {dx, mask, N, R, D};
        int rc = colsum<1>(be, dmask_token, NULL, f, (size_t)B * N, D);
        if (rc != DV2_OK) return rc;
    }
    return dv2_cuda_launched(be);
}

/* ---- LayerNorm ------------------------------------------------------------ */

/* One warp per row: mean and variance in double (two passes over the row),
 * then y = (x − m)·r·w + b in float. */
static __global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd,
                                                const float *in, const float *w, const float *b,
                                                int N, int C, float eps) {
    int lane = threadIdx.x & 31;
    size_t stride = (size_t)gridDim.x * WARPS_PER_BLOCK;
    for (size_t n = (size_t)blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / 32; n < (size_t)N;
         n += stride) {
        const float *x = in + n * C;
        float *y = out + n * C;
        double s = 0;
        for (int c = lane; c < C; c += 32) s += x[c];
        s = warp_sum(s);
        double mu = s / C, v = 0;
        for (int c = lane; c < C; c += 32) {
            double d = x[c] - mu;
            v += d * d;
        }
        v = warp_sum(v);
        float r = (float)(1.0 / sqrt(v / C + (double)eps));
        float m = (float)mu;
        for (int c = lane; c < C; c += 32)
            y[c] = __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(x[c], m), r), w[c]), b[c]);
        if (lane == 0) {
            mean[n] = m;
            rstd[n] = r;
        }
    }
}

int dv2_cuda_layernorm_forward(const dv2_backend *be, float *out, float *mean, float *rstd,
                               const float *in, const float *w, const float *b, int N, int C,
                               float eps) {
    layernorm_forward_kernel<<<dv2_cuda_grid((size_t)N, WARPS_PER_BLOCK), DV2_CUDA_THREADS, 0,
                               dv2_cuda_stream(be)>>>(out, mean, rstd, in, w, b, N, C, eps);
    return dv2_cuda_launched(be);
}

/* din += r·(g·w − mean(g·w) − x̂·mean(g·w·x̂)), one warp per row. */
static __global__ void layernorm_din_kernel(float *din, const float *dout, const float *in,
                                            const float *w, const float *mean, const float *rstd,
                                            int N, int C) {
    int lane = threadIdx.x & 31;
    size_t stride = (size_t)gridDim.x * WARPS_PER_BLOCK;
    for (size_t n = (size_t)blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / 32; n < (size_t)N;
         n += stride) {
        const float *x = in + n * C, *g = dout + n * C;
        float *d = din + n * C;
        float m = mean[n], r = rstd[n];
        double s1 = 0, s2 = 0;
        for (int c = lane; c < C; c += 32) {
            double gx = (double)g[c] * w[c];
            s1 += gx;
            s2 += gx * __fmul_rn(__fsub_rn(x[c], m), r);
        }
        s1 = warp_sum(s1);
        s2 = warp_sum(s2);
        float a1 = (float)(s1 / C), a2 = (float)(s2 / C);
        for (int c = lane; c < C; c += 32) {
            float xh = __fmul_rn(__fsub_rn(x[c], m), r);
            float t = __fsub_rn(__fsub_rn(__fmul_rn(g[c], w[c]), a1), __fmul_rn(xh, a2));
            d[c] = __fadd_rn(d[c], __fmul_rn(r, t));
        }
    }
}

/* dw terms g·x̂, db terms g (products of two floats: exact in double). */
struct layernorm_dwdb_terms {
    const float *dout, *in, *mean, *rstd;
    int C;
    __device__ void operator()(size_t n, int c, double *a) const {
        float g = dout[n * C + c];
        float xh = __fmul_rn(__fsub_rn(in[n * C + c], mean[n]), rstd[n]);
        a[0] += (double)g * xh;
        a[1] += g;
    }
};

int dv2_cuda_layernorm_backward(const dv2_backend *be, float *din, float *dw, float *db,
                                const float *dout, const float *in, const float *w,
                                const float *mean, const float *rstd, int N, int C) {
    if (din)
        layernorm_din_kernel<<<dv2_cuda_grid((size_t)N, WARPS_PER_BLOCK), DV2_CUDA_THREADS, 0,
                               dv2_cuda_stream(be)>>>(din, dout, in, w, mean, rstd, N, C);
    if (dw || db) {
        layernorm_dwdb_terms f = {dout, in, mean, rstd, C};
        int rc = colsum<2>(be, dw, db, f, (size_t)N, C);
        if (rc != DV2_OK) return rc;
    }
    return dv2_cuda_launched(be);
}

/* ---- L2 normalisation ---------------------------------------------------- */

/* ||x|| of one row of C floats (squares summed in double), by one warp;
 * every lane gets the same value. */
static __device__ __forceinline__ float warp_row_norm(const float *x, int C, int lane) {
    double s = 0;
    for (int c = lane; c < C; c += 32) s += (double)x[c] * x[c];
    return (float)sqrt(warp_sum(s));
}

static __global__ void l2norm_forward_kernel(float *out, float *norm, const float *in, int N,
                                             int C, float eps) {
    int lane = threadIdx.x & 31;
    size_t stride = (size_t)gridDim.x * WARPS_PER_BLOCK;
    for (size_t n = (size_t)blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / 32; n < (size_t)N;
         n += stride) {
        const float *x = in + n * C;
        float nr = warp_row_norm(x, C, lane);
        float inv = __fdiv_rn(1.0f, nr > eps ? nr : eps);
        for (int c = lane; c < C; c += 32) out[n * C + c] = __fmul_rn(x[c], inv);
        if (lane == 0) norm[n] = nr;
    }
}

int dv2_cuda_l2norm_forward(const dv2_backend *be, float *out, float *norm, const float *in, int N,
                            int C, float eps) {
    l2norm_forward_kernel<<<dv2_cuda_grid((size_t)N, WARPS_PER_BLOCK), DV2_CUDA_THREADS, 0,
                            dv2_cuda_stream(be)>>>(out, norm, in, N, C, eps);
    return dv2_cuda_launched(be);
}

/* For ||x|| > eps: din += (g − x̂ (x̂·g)) / ||x||; below eps the map is x/eps. */
static __global__ void l2norm_backward_kernel(float *din, const float *dout, const float *in,
                                              const float *norm, int N, int C, float eps) {
    int lane = threadIdx.x & 31;
    size_t stride = (size_t)gridDim.x * WARPS_PER_BLOCK;
    for (size_t n = (size_t)blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / 32; n < (size_t)N;
         n += stride) {
        const float *x = in + n * C, *g = dout + n * C;
        float *d = din + n * C;
        float nr = norm[n];
        if (nr > eps) {
            double s = 0;
            for (int c = lane; c < C; c += 32) s += (double)x[c] * g[c];
            s = warp_sum(s);
            float inv = __fdiv_rn(1.0f, nr), k = (float)(s / ((double)nr * nr * nr));
            for (int c = lane; c < C; c += 32)
                d[c] = __fadd_rn(d[c], __fsub_rn(__fmul_rn(g[c], inv), __fmul_rn(x[c], k)));
        } else {
            for (int c = lane; c < C; c += 32) d[c] = __fadd_rn(d[c], __fdiv_rn(g[c], eps));
        }
    }
}

int dv2_cuda_l2norm_backward(const dv2_backend *be, float *din, const float *dout, const float *in,
                             const float *norm, int N, int C, float eps) {
    l2norm_backward_kernel<<<dv2_cuda_grid((size_t)N, WARPS_PER_BLOCK), DV2_CUDA_THREADS, 0,
                             dv2_cuda_stream(be)>>>(din, dout, in, norm, N, C, eps);
    return dv2_cuda_launched(be);
}

/* ---- weight normalisation --------------------------------------------------- */

/* w (K,C) = g_k v_k / ||v_k||, one warp per prototype. */
static __global__ void weightnorm_forward_kernel(float *w, float *vnorm, const float *v,
                                                 const float *g, int K, int C) {
    int lane = threadIdx.x & 31;
    size_t stride = (size_t)gridDim.x * WARPS_PER_BLOCK;
    for (size_t k = (size_t)blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / 32; k < (size_t)K;
         k += stride) {
        const float *vr = v + k * C;
        float nr = warp_row_norm(vr, C, lane);
        float a = __fdiv_rn(g[k], nr);
        for (int c = lane; c < C; c += 32) w[k * C + c] = __fmul_rn(vr[c], a);
        if (lane == 0) vnorm[k] = nr;
    }
}

int dv2_cuda_weightnorm_forward(const dv2_backend *be, float *w, float *vnorm, const float *v,
                                const float *g, int K, int C) {
    weightnorm_forward_kernel<<<dv2_cuda_grid((size_t)K, WARPS_PER_BLOCK), DV2_CUDA_THREADS, 0,
                                dv2_cuda_stream(be)>>>(w, vnorm, v, g, K, C);
    return dv2_cuda_launched(be);
}

/* dg += (dw·v)/||v||;  dv += (g/||v||)(dw − v (dw·v)/||v||²). */
static __global__ void weightnorm_backward_kernel(float *dv, float *dg, const float *dw,
                                                  const float *v, const float *g,
                                                  const float *vnorm, int K, int C) {
    int lane = threadIdx.x & 31;
    size_t stride = (size_t)gridDim.x * WARPS_PER_BLOCK;
    for (size_t k = (size_t)blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / 32; k < (size_t)K;
         k += stride) {
        const float *vr = v + k * C, *gr = dw + k * C;
        double s = 0;
        for (int c = lane; c < C; c += 32) s += (double)gr[c] * vr[c];
        s = warp_sum(s);
        float nr = vnorm[k];
        if (dg && lane == 0) dg[k] += (float)(s / nr);
        if (dv) {
            float a = __fdiv_rn(g[k], nr), b = (float)(s / ((double)nr * nr));
            for (int c = lane; c < C; c += 32)
                dv[k * C + c] = __fadd_rn(dv[k * C + c],
                                          __fmul_rn(a, __fsub_rn(gr[c], __fmul_rn(vr[c], b))));
        }
    }
}

int dv2_cuda_weightnorm_backward(const dv2_backend *be, float *dv, float *dg, const float *dw,
                                 const float *v, const float *g, const float *vnorm, int K, int C) {
    if (!dv && !dg) return dv2_cuda_launched(be);
    weightnorm_backward_kernel<<<dv2_cuda_grid((size_t)K, WARPS_PER_BLOCK), DV2_CUDA_THREADS, 0,
                                 dv2_cuda_stream(be)>>>(dv, dg, dw, v, g, vnorm, K, C);
    return dv2_cuda_launched(be);
}
