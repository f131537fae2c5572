/* cuda_attn.cu — CUDA backends: fused multi-head attention over packed
 * variable-length sequences (block-diagonal attention, spec §13), the GPU
 * twin of ops/cpu/cpu_attn.c.  qkv is (T,3,H,dh), out (T,H*dh), lse (H,T),
 * scale = 1/sqrt(dh); the sequences are the offsets sp->d_cu.
 *
 * FlashAttention-style: no (n×n) score matrix ever exists in memory.  Each
 * thread block owns ROWS rows of one (sequence, head) pair — grid (sequence,
 * row tile, head); row tiles past a sequence's end exit at once — and streams
 * the other side of the product through shared memory in tiles of TILE rows.
 * A row is held by a group of G consecutive lanes, each with NV = DH/G of
 * the row's dimensions in registers, four at a time: lane g holds the float4s
 * number c·G + g of the row (c = 0..NV/4-1), so a group reads G consecutive
 * float4s of a shared row with one 128-bit load per four FMAs, and the
 * groups of a warp read the same words (broadcast, no bank conflicts).  A dot
 * product is NV FMAs per lane and a butterfly of log2 G shuffles.  DH is 32, 64 or 128
 * (templates); a head dimension dh < DH runs in the next larger template with
 * the dimensions past dh zero in registers and shared memory, so it adds
 * nothing to any dot product and is never stored.  dh = 32 and 64 are the
 * exact fits; dh > 128 is refused (DV2_EUNSUPPORTED, outputs NaN).
 *
 *   forward_kernel   rows = queries, tiles = keys and values: online softmax
 *                    (running max m and sum l in f32, the accumulator
 *                    rescaled once per chunk of CH keys), then
 *                    out = acc / l and lse = m + log l.
 *   dvec_kernel      Dv (H,T) = rowsum(dout ⊙ out), one warp per (token, head),
 *                    in double as the CPU does.
 *   dkv_kernel       rows = keys, tiles = the queries of the sequence with
 *                    their dout, lse and Dv: P = exp(scale q·k − lse),
 *                    dS = P (dout·v − Dv); dV += Σ P dout, dK += scale Σ dS q.
 *   dq_kernel        rows = queries, tiles = keys and values: dQ += scale Σ dS k.
 *
 * Deterministic: every output element is owned by one lane group that sums
 * over keys (or queries) in index order; the butterfly gives every lane of a
 * group the same bits (IEEE addition commutes); no atomics.  dQ and dK/dV come
 * from two kernels, so nothing needs a cross-block reduction.
 *
 * bf16 backend (cpu_bf16.c): q, k, v — and in backward dout and out — are
 * rounded to bf16 on load; out is stored rounded (lse stays f32).  cpu_bf16.c
 * rounds the whole dqkv buffer after the += of the f32 op; every element of
 * dqkv belongs to exactly one (token, head, dim) that one lane updates once
 * (cu covers 0..T), so rounding at that store gives the same result as a pass
 * over the 3·T·H·dh floats. */
#include <math.h>

#include "ops/cuda/cuda.h"

#define ROWS 64 /* rows (queries or keys) per thread block */
#define CH 16   /* forward: keys per online-softmax rescale */

/* Rows per shared-memory tile: two tiles of TILE×DH floats stay at 32 KiB
 * (plus 2·TILE floats in dkv_kernel), under the 48 KiB of static shared memory. */
template <int DH> struct attn_tile {
    static constexpr int n = DH <= 64 ? 64 : 32;
    static_assert((2 * n * DH + 2 * n) * sizeof(float) <= 48 * 1024, "shared memory");
    static_assert(DH % 4 == 0 && n % CH == 0, "float4 runs, whole chunks");
};

static __device__ __forceinline__ float ld_val(float x, int bf16) { return bf16 ? dv2_bf16r(x) : x; }

/* Sum over the G lanes of a group; every lane gets the same bits. */
template <int G> static __device__ __forceinline__ float group_sum(float x) {
#pragma unroll
    for (int o = 1; o < G; o <<= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

/* s (TILE,DH) ← rows 0..nrows-1 of src (row stride ld), dims 0..dh-1; zero elsewhere. */
template <int DH, int TILE>
static __device__ __forceinline__ void load_tile(float *s, const float *src, size_t ld, int nrows,
                                                 int dh, int bf16) {
    for (int idx = threadIdx.x; idx < TILE * DH; idx += blockDim.x) {
        int r = idx / DH, d = idx % DH;
        s[idx] = r < nrows && d < dh ? ld_val(src[(size_t)r * ld + d], bf16) : 0.0f;
    }
}

/* The dimension lane g of a group of G holds in its register e. */
template <int G> static __device__ __forceinline__ int dim_of(int e, int g) {
    return ((e / 4) * G + g) * 4 + e % 4;
}

/* Lane g's part of one row: v[e] = row[dim_of(e, g)] (0 past dh or for an invalid row). */
template <int NV, int G>
static __device__ __forceinline__ void load_row(float *v, const float *row, int valid, int dh,
                                                int g, int bf16) {
#pragma unroll
    for (int e = 0; e < NV; e++) {
        int d = dim_of<G>(e, g);
        v[e] = valid && d < dh ? ld_val(row[d], bf16) : 0.0f;
    }
}

/* Σ_e a[e]·row[dim_of(e, g)] for a shared row (16-byte aligned). */
template <int NV, int G>
static __device__ __forceinline__ float dot_row(const float *a, const float *row, int g) {
    const float4 *r4 = (const float4 *)row + g;
    float x = 0.0f;
#pragma unroll
    for (int c = 0; c < NV / 4; c++) {
        float4 w = r4[c * G];
        x += a[4 * c] * w.x + a[4 * c + 1] * w.y + a[4 * c + 2] * w.z + a[4 * c + 3] * w.w;
    }
    return x;
}

/* acc[e] += p·row[dim_of(e, g)] for a shared row. */
template <int NV, int G>
static __device__ __forceinline__ void axpy_row(float *acc, float p, const float *row, int g) {
    const float4 *r4 = (const float4 *)row + g;
#pragma unroll
    for (int c = 0; c < NV / 4; c++) {
        float4 w = r4[c * G];
        acc[4 * c] += p * w.x;
        acc[4 * c + 1] += p * w.y;
        acc[4 * c + 2] += p * w.z;
        acc[4 * c + 3] += p * w.w;
    }
}

/* One query row per group of G lanes; K and V tiles through shared memory. */
template <int DH, int G>
static __global__ void __launch_bounds__(ROWS * G)
forward_kernel(float *out, float *lse, const float *qkv, const int *cu, int T, int H, int dh,
               float scale, int bf16) {
    constexpr int NV = DH / G, BK = attn_tile<DH>::n;
    __shared__ __align__(16) float sK[BK * DH], sV[BK * DH];
    int s = blockIdx.x, h = blockIdx.z;
    int t0 = cu[s], n = cu[s + 1] - t0, q0 = blockIdx.y * ROWS;
    if (q0 >= n) return; /* the whole block: no barrier is skipped */
    int r = threadIdx.x / G, g = threadIdx.x % G, i = q0 + r, valid = i < n;
    size_t D = (size_t)H * dh, ld = 3 * D;
    const float *Q = qkv + (size_t)t0 * ld + (size_t)h * dh, *K = Q + D, *V = Q + 2 * D;

    float q[NV], acc[NV], m = -INFINITY, l = 0.0f;
    load_row<NV, G>(q, Q + (size_t)(valid ? i : 0) * ld, valid, dh, g, bf16);
#pragma unroll
    for (int c = 0; c < NV; c++) acc[c] = 0.0f;

    for (int k0 = 0; k0 < n; k0 += BK) {
        int nk = n - k0 < BK ? n - k0 : BK;
        __syncthreads(); /* the previous tile is consumed */
        load_tile<DH, BK>(sK, K + (size_t)k0 * ld, ld, nk, dh, bf16);
        load_tile<DH, BK>(sV, V + (size_t)k0 * ld, ld, nk, dh, bf16);
        __syncthreads();
        for (int j0 = 0; j0 < nk; j0 += CH) { /* key j0 is valid: mx is finite */
            float sc[CH], mx = m;
#pragma unroll
            for (int c = 0; c < CH; c++) {
                float dot = group_sum<G>(dot_row<NV, G>(q, sK + (j0 + c) * DH, g)) * scale;
                sc[c] = j0 + c < nk ? dot : -INFINITY;
                mx = fmaxf(mx, sc[c]);
            }
            float corr = expf(m - mx); /* 0 on the first chunk (m = −inf) */
            l *= corr;
#pragma unroll
            for (int e = 0; e < NV; e++) acc[e] *= corr;
#pragma unroll
            for (int c = 0; c < CH; c++) {
                float p = expf(sc[c] - mx); /* 0 past the sequence */
                l += p;
                axpy_row<NV, G>(acc, p, sV + (j0 + c) * DH, g);
            }
            m = mx;
        }
    }
    if (!valid) return;
    float inv = 1.0f / l;
    float *o = out + (size_t)(t0 + i) * D + (size_t)h * dh;
#pragma unroll
    for (int e = 0; e < NV; e++) {
        int d = dim_of<G>(e, g);
        if (d < dh) o[d] = ld_val(acc[e] * inv, bf16);
    }
    if (g == 0) lse[(size_t)h * T + t0 + i] = m + logf(l);
}

/* Dv (H,T) = Σ_d dout·out per (token, head): one warp per row, double sums. */
static __global__ void dvec_kernel(float *Dv, const float *dout, const float *out, int T, int H,
                                   int dh, int bf16) {
    int lane = threadIdx.x % 32;
    size_t rows = (size_t)T * H, D = (size_t)H * dh;
    size_t w0 = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    size_t nw = (size_t)gridDim.x * blockDim.x / 32;
    for (size_t w = w0; w < rows; w += nw) {
        size_t t = w / H, h = w % H;
        const float *a = dout + t * D + h * dh, *b = out + t * D + h * dh;
        double acc = 0.0;
        for (int d = lane; d < dh; d += 32) acc += (double)ld_val(a[d], bf16) * ld_val(b[d], bf16);
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        if (lane == 0) Dv[h * T + t] = (float)acc;
    }
}

/* One key row per group of G lanes (k, v, dk, dv in registers); the queries
 * of the sequence (q, dout, lse, Dv) through shared memory. */
template <int DH, int G>
static __global__ void __launch_bounds__(ROWS * G)
dkv_kernel(float *dqkv, const float *dout, const float *qkv, const float *lse, const float *Dv,
           const int *cu, int T, int H, int dh, float scale, int bf16) {
    constexpr int NV = DH / G, BQ = attn_tile<DH>::n;
    __shared__ __align__(16) float sQ[BQ * DH], sO[BQ * DH];
    __shared__ float sL[BQ], sD[BQ];
    int s = blockIdx.x, h = blockIdx.z;
    int t0 = cu[s], n = cu[s + 1] - t0, k0 = blockIdx.y * ROWS;
    if (k0 >= n) return;
    int r = threadIdx.x / G, g = threadIdx.x % G, j = k0 + r, valid = j < n;
    size_t D = (size_t)H * dh, ld = 3 * D;
    const float *Q = qkv + (size_t)t0 * ld + (size_t)h * dh, *K = Q + D, *V = Q + 2 * D;
    const float *dO = dout + (size_t)t0 * D + (size_t)h * dh;
    const float *L = lse + (size_t)h * T + t0, *Dd = Dv + (size_t)h * T + t0;

    float k[NV], v[NV], dk[NV], dv[NV];
    load_row<NV, G>(k, K + (size_t)(valid ? j : 0) * ld, valid, dh, g, bf16);
    load_row<NV, G>(v, V + (size_t)(valid ? j : 0) * ld, valid, dh, g, bf16);
#pragma unroll
    for (int e = 0; e < NV; e++) dk[e] = dv[e] = 0.0f;

    for (int q0 = 0; q0 < n; q0 += BQ) {
        int nq = n - q0 < BQ ? n - q0 : BQ;
        __syncthreads();
        load_tile<DH, BQ>(sQ, Q + (size_t)q0 * ld, ld, nq, dh, bf16);
        load_tile<DH, BQ>(sO, dO + (size_t)q0 * D, D, nq, dh, bf16);
        for (int x = threadIdx.x; x < BQ; x += blockDim.x) {
            sL[x] = x < nq ? L[q0 + x] : 0.0f;
            sD[x] = x < nq ? Dd[q0 + x] : 0.0f;
        }
        __syncthreads();
        for (int i = 0; i < nq; i++) {
            const float *qr = sQ + i * DH, *orow = sO + i * DH;
            float sqk = group_sum<G>(dot_row<NV, G>(k, qr, g));
            float sov = group_sum<G>(dot_row<NV, G>(v, orow, g));
            float p = expf(sqk * scale - sL[i]);
            float ds = p * (sov - sD[i]);
            axpy_row<NV, G>(dv, p, orow, g);
            axpy_row<NV, G>(dk, ds, qr, g);
        }
    }
    if (!valid) return;
    float *dK = dqkv + (size_t)(t0 + j) * ld + D + (size_t)h * dh, *dV = dK + D;
#pragma unroll
    for (int e = 0; e < NV; e++) {
        int d = dim_of<G>(e, g);
        if (d < dh) {
            dK[d] = ld_val(dK[d] + scale * dk[e], bf16);
            dV[d] = ld_val(dV[d] + dv[e], bf16);
        }
    }
}

/* One query row per group of G lanes (q, dout, dq in registers); K and V
 * tiles through shared memory. */
template <int DH, int G>
static __global__ void __launch_bounds__(ROWS * G)
dq_kernel(float *dqkv, const float *dout, const float *qkv, const float *lse, const float *Dv,
          const int *cu, int T, int H, int dh, float scale, int bf16) {
    constexpr int NV = DH / G, BK = attn_tile<DH>::n;
    __shared__ __align__(16) float sK[BK * DH], sV[BK * DH];
    int s = blockIdx.x, h = blockIdx.z;
    int t0 = cu[s], n = cu[s + 1] - t0, q0 = blockIdx.y * ROWS;
    if (q0 >= n) return;
    int r = threadIdx.x / G, g = threadIdx.x % G, i = q0 + r, valid = i < n;
    size_t D = (size_t)H * dh, ld = 3 * D;
    const float *Q = qkv + (size_t)t0 * ld + (size_t)h * dh, *K = Q + D, *V = Q + 2 * D;
    const float *dO = dout + (size_t)t0 * D + (size_t)h * dh;

    float q[NV], o[NV], dq[NV];
    load_row<NV, G>(q, Q + (size_t)(valid ? i : 0) * ld, valid, dh, g, bf16);
    load_row<NV, G>(o, dO + (size_t)(valid ? i : 0) * D, valid, dh, g, bf16);
    float l = valid ? lse[(size_t)h * T + t0 + i] : 0.0f;
    float di = valid ? Dv[(size_t)h * T + t0 + i] : 0.0f;
#pragma unroll
    for (int e = 0; e < NV; e++) dq[e] = 0.0f;

    for (int k0 = 0; k0 < n; k0 += BK) {
        int nk = n - k0 < BK ? n - k0 : BK;
        __syncthreads();
        load_tile<DH, BK>(sK, K + (size_t)k0 * ld, ld, nk, dh, bf16);
        load_tile<DH, BK>(sV, V + (size_t)k0 * ld, ld, nk, dh, bf16);
        __syncthreads();
        for (int j = 0; j < nk; j++) {
            const float *kr = sK + j * DH;
            float sqk = group_sum<G>(dot_row<NV, G>(q, kr, g));
            float sov = group_sum<G>(dot_row<NV, G>(o, sV + j * DH, g));
            float p = expf(sqk * scale - l);
            float ds = p * (sov - di);
            axpy_row<NV, G>(dq, ds, kr, g);
        }
    }
    if (!valid) return;
    float *dQ = dqkv + (size_t)(t0 + i) * ld + (size_t)h * dh;
#pragma unroll
    for (int e = 0; e < NV; e++) {
        int d = dim_of<G>(e, g);
        if (d < dh) dQ[d] = ld_val(dQ[d] + scale * dq[e], bf16);
    }
}

/* The launch grid (sequence, row tile, head), or 0 when a dimension is
 * beyond the hardware's limits. */
static int attn_grid(dim3 *grid, const dv2_seqpack *sp, int H) {
    int nmax = 0;
    for (int s = 0; s < sp->nseq; s++)
        if (sp->cu[s + 1] - sp->cu[s] > nmax) nmax = sp->cu[s + 1] - sp->cu[s];
    int tiles = (nmax + ROWS - 1) / ROWS;
    if (tiles > 65535 || H > 65535) return 0;
    *grid = dim3((unsigned)sp->nseq, (unsigned)(tiles ? tiles : 1), (unsigned)H);
    return 1;
}

/* No token in any sequence: nothing to launch. */
static int attn_empty(const dv2_seqpack *sp) {
    for (int s = 0; s < sp->nseq; s++)
        if (sp->cu[s + 1] > sp->cu[s]) return 0;
    return 1;
}

template <int DH>
static void forward_launch(const dv2_backend *be, float *out, float *lse, const float *qkv,
                           const dv2_seqpack *sp, dim3 grid, int H, int dh) {
    constexpr int G = DH / 32; /* 32 dims per lane */
    forward_kernel<DH, G><<<grid, ROWS * G, 0, dv2_cuda_stream(be)>>>(
        out, lse, qkv, sp->d_cu, sp->T, H, dh, 1.0f / sqrtf((float)dh), dv2_cuda_bf16(be));
}

int dv2_cuda_attention_forward(const dv2_backend *be, float *out, float *lse, const float *qkv,
                               const dv2_seqpack *sp, int H, int dh) {
    size_t n = (size_t)sp->T * H * dh;
    dim3 grid;
    if (dh < 1 || dh > 128 || !attn_grid(&grid, sp, H)) {
        dv2_cuda_nan_fill(be, out, n);
        dv2_cuda_nan_fill(be, lse, (size_t)sp->T * H);
        return dv2_cuda_fail(be, DV2_EUNSUPPORTED);
    }
    if (attn_empty(sp)) return dv2_cuda_launched(be);
    if (dh <= 32) forward_launch<32>(be, out, lse, qkv, sp, grid, H, dh);
    else if (dh <= 64) forward_launch<64>(be, out, lse, qkv, sp, grid, H, dh);
    else forward_launch<128>(be, out, lse, qkv, sp, grid, H, dh);
    return dv2_cuda_launched(be);
}

template <int DH>
static void backward_launch(const dv2_backend *be, float *dqkv, const float *dout,
                            const float *qkv, const float *lse, const float *Dv,
                            const dv2_seqpack *sp, dim3 grid, int H, int dh) {
    constexpr int G = DH / 16; /* 16 dims per lane: four register rows */
    cudaStream_t st = dv2_cuda_stream(be);
    float scale = 1.0f / sqrtf((float)dh);
    int bf16 = dv2_cuda_bf16(be);
    dkv_kernel<DH, G><<<grid, ROWS * G, 0, st>>>(dqkv, dout, qkv, lse, Dv, sp->d_cu, sp->T, H, dh,
                                                 scale, bf16);
    dq_kernel<DH, G><<<grid, ROWS * G, 0, st>>>(dqkv, dout, qkv, lse, Dv, sp->d_cu, sp->T, H, dh,
                                                scale, bf16);
}

int dv2_cuda_attention_backward(const dv2_backend *be, float *dqkv, const float *dout,
                                const float *qkv, const float *out, const float *lse,
                                const dv2_seqpack *sp, int H, int dh) {
    size_t n = (size_t)sp->T * H * dh, rows = (size_t)sp->T * H;
    dim3 grid;
    if (dh < 1 || dh > 128 || !attn_grid(&grid, sp, H)) {
        dv2_cuda_nan_fill(be, dqkv, 3 * n);
        return dv2_cuda_fail(be, DV2_EUNSUPPORTED);
    }
    if (attn_empty(sp)) return dv2_cuda_launched(be);
    float *Dv = (float *)dv2_cuda_workspace(be, sizeof(float) * rows);
    if (!Dv) {
        dv2_cuda_nan_fill(be, dqkv, 3 * n);
        return dv2_cuda_fail(be, DV2_ENOMEM);
    }
    dvec_kernel<<<dv2_cuda_grid(rows * 32, DV2_CUDA_THREADS), DV2_CUDA_THREADS, 0,
                  dv2_cuda_stream(be)>>>(Dv, dout, out, sp->T, H, dh, dv2_cuda_bf16(be));
    if (dh <= 32) backward_launch<32>(be, dqkv, dout, qkv, lse, Dv, sp, grid, H, dh);
    else if (dh <= 64) backward_launch<64>(be, dqkv, dout, qkv, lse, Dv, sp, grid, H, dh);
    else backward_launch<128>(be, dqkv, dout, qkv, lse, Dv, sp, grid, H, dh);
    return dv2_cuda_launched(be);
}
