/* cuda_linear.cu — CUDA backend: linear layers (GEMM + bias / bias+GELU
 * epilogue, dGELU, bias-gradient column sums), the patch embedding (im2col +
 * the linear entries), input-pixel normalisation and the positional-embedding
 * resampling.
 *
 * GEMMs go through dv2_cuda_sgemm (f32, row-major); the bf16 backend reads
 * the weight from its bf16 compute copy (w16, written by the optimizer step;
 * converted into the workspace only when the caller has none, as for the
 * weight-normalised last layer), converts the activations to bf16 arrays in
 * the workspace, calls dv2_cuda_gemm_bf16, and rounds out, pre and din where
 * cpu_bf16.c rounds them.  GELU, dGELU,
 * the pixel normalisation and the resampling sums use the CPU operation
 * sequence with explicitly rounded operations (no FMA contraction), so given
 * the same inputs they give the CPU's bits.  Column sums accumulate in double
 * in two fixed-order stages (row chunks, then chunks), no atomics. */
#include "ops/cuda/cuda.h"
#include "ops/cuda/cuda_gelu.cuh"

#define T DV2_CUDA_THREADS
#define FOR_N(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* ---- exact GELU, the operation sequence of cpu_act.c --------------------- */

/* ---- kernels --------------------------------------------------------------- */

/* y (N,C) is the GEMM result (y == pre with GELU): adds b (may be NULL);
 * with GELU pre = y, out = GELU(y); bf rounds what is stored. */
static __global__ void epilogue_kernel(float *out, float *pre, const float *y, const float *b,
                                       size_t n, int C, int gelu_on, int bf) {
    FOR_N(i, n) {
        float v = y[i];
        if (b) v = __fadd_rn(v, b[i % C]);
        if (gelu_on) {
            float g = dv2_cuda_gelu(v);
            pre[i] = bf ? dv2_bf16r(v) : v;
            out[i] = bf ? dv2_bf16r(g) : g;
        } else {
            out[i] = bf ? dv2_bf16r(v) : v;
        }
    }
}

/* work = 0 + dout ⊙ GELU'(pre), dout read as bf16 when bf */
static __global__ void dgelu_kernel(float *work, const float *dout, const float *pre, size_t n, int bf) {
    FOR_N(i, n) {
        float g = bf ? dv2_bf16r(dout[i]) : dout[i];
        work[i] = __fadd_rn(0.0f, __fmul_rn(g, dv2_cuda_gelu_grad(pre[i])));
    }
}

static __device__ __forceinline__ double ld(const float *x, size_t i) { return x[i]; }
static __device__ __forceinline__ double ld(const __nv_bfloat16 *x, size_t i) { return __bfloat162float(x[i]); }

#define CS_COLS 32
#define CS_ROWS 8
#define CS_CHUNK_ROWS 128
#define CS_MAX_CHUNKS 64

/* Stage 1: part (R, O) = the double sums of x (N, O) over row chunk r of rc
 * rows; a block of CS_COLS×CS_ROWS threads per (column chunk, row chunk). */
template <typename X>
static __global__ void colsum_part_kernel(double *part, const X *x, int N, int O, int rc) {
    __shared__ double s[CS_ROWS][CS_COLS];
    int tx = threadIdx.x, ty = threadIdx.y, r = blockIdx.y;
    int n0 = r * rc, n1 = n0 + rc < N ? n0 + rc : N;
    for (int cb = blockIdx.x; cb * CS_COLS < O; cb += gridDim.x) {
        int o = cb * CS_COLS + tx;
        double acc = 0;
        if (o < O)
            for (int n = n0 + ty; n < n1; n += CS_ROWS) acc += ld(x, (size_t)n * O + o);
        s[ty][tx] = acc;
        __syncthreads();
        if (ty == 0 && o < O) {
            double t = 0;
            for (int k = 0; k < CS_ROWS; k++) t += s[k][tx];
            part[(size_t)r * O + o] = t;
        }
        __syncthreads();
    }
}

/* Stage 2: db (O) += Σ_r part[r] in chunk order */
static __global__ void colsum_add_kernel(float *db, const double *part, int R, int O) {
    FOR_N(o, (size_t)O) {
        double t = 0;
        for (int r = 0; r < R; r++) t += part[(size_t)r * O + o];
        db[o] += (float)t;
    }
}

/* col (B·gh·gw, 3·p·p), columns ordered (c, ky, kx) like w (D,3,p,p);
 * values rounded to bf16 when bf (cpu_bf16.c rounds img before im2col). */
static __global__ void im2col_kernel(float *col, const float *img, int Hpx, int Wpx, int p, size_t n,
                                     int bf) {
    int gw = Wpx / p, gh = Hpx / p, K = 3 * p * p;
    FOR_N(i, n) {
        size_t row = i / K;
        int e = (int)(i % K), c = e / (p * p), ky = (e / p) % p, kx = e % p;
        size_t b = row / ((size_t)gh * gw);
        int t = (int)(row % ((size_t)gh * gw)), ty = t / gw, tx = t % gw;
        float v = img[((b * 3 + c) * Hpx + (size_t)ty * p + ky) * Wpx + (size_t)tx * p + kx];
        col[i] = bf ? dv2_bf16r(v) : v;
    }
}

/* out (n,3,H,W) = (px/255 − mean_c)/std_c, px (n,H,W,3): image/resize.c's
 * dv2_resize_to_tensor, the same float operations */
static __global__ void pixels_kernel(float *out, const uint8_t *px, size_t np, size_t n) {
    const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
    FOR_N(i, n) {
        size_t img = i / (3 * np), j = i % np;
        int c = (int)(i / np % 3);
        float v = (float)px[(img * np + j) * 3 + c];
        out[i] = __fdiv_rn(__fsub_rn(__fdiv_rn(v, 255.0f), mean[c]), sd[c]);
    }
}

/* forward, rows: s (oh, M·D) = Σ_iy wy[oy, iy] g[iy] (zero weights skipped,
 * as the CPU does) */
static __global__ void pe_rows_kernel(float *s, const float *g, const float *wy, int M, size_t MD,
                                      size_t n) {
    FOR_N(i, n) {
        size_t oy = i / MD, k = i % MD;
        float t = 0.0f;
        for (int iy = 0; iy < M; iy++) {
            float w = wy[oy * M + iy];
            if (w != 0) t = __fadd_rn(t, __fmul_rn(w, g[(size_t)iy * MD + k]));
        }
        s[i] = t;
    }
}

/* out (1+oh·ow, D): row 0 = pos[0]; grid (oy, ox) = Σ_ix wx[ox, ix] s[oy, ix] */
static __global__ void pe_cols_kernel(float *out, const float *pos, const float *s, const float *wx,
                                      int M, int ow, int D, size_t n) {
    FOR_N(i, n) {
        if (i < (size_t)D) { out[i] = pos[i]; continue; }
        size_t j = i - D, r = j / D, d = j % D, oy = r / ow, ox = r % ow;
        float o = 0.0f;
        for (int ix = 0; ix < M; ix++) {
            float w = wx[ox * M + ix];
            if (w != 0) o = __fadd_rn(o, __fmul_rn(w, s[(oy * M + ix) * D + d]));
        }
        out[i] = o;
    }
}

/* backward, columns: s (oh, M, D) = Σ_ox wx[ox, ix] go[oy, ox] */
static __global__ void pe_cols_t_kernel(float *s, const float *go, const float *wx, int M, int ow,
                                        int D, size_t n) {
    FOR_N(i, n) {
        size_t r = i / D, d = i % D, oy = r / M, ix = r % M;
        float t = 0.0f;
        for (int ox = 0; ox < ow; ox++) {
            float w = wx[(size_t)ox * M + ix];
            if (w != 0) t = __fadd_rn(t, __fmul_rn(w, go[(oy * ow + ox) * D + d]));
        }
        s[i] = t;
    }
}

/* backward, rows: dpos row 0 += dout[0]; grid iy += Σ_oy wy[oy, iy] s[oy],
 * added into dpos term by term as the CPU does */
static __global__ void pe_rows_t_kernel(float *dpos, const float *dout, const float *s,
                                        const float *wy, int M, int oh, int D, size_t n) {
    size_t MD = (size_t)M * D;
    FOR_N(i, n) {
        if (i < (size_t)D) { dpos[i] = __fadd_rn(dpos[i], dout[i]); continue; }
        size_t j = i - D, iy = j / MD, k = j % MD;
        float acc = dpos[i];
        for (int oy = 0; oy < oh; oy++) {
            float w = wy[(size_t)oy * M + iy];
            if (w != 0) acc = __fadd_rn(acc, __fmul_rn(w, s[oy * MD + k]));
        }
        dpos[i] = acc;
    }
}

static __global__ void add_kernel(float *y, const float *x, size_t n) {
    FOR_N(i, n) y[i] = __fadd_rn(y[i], x[i]);
}

/* ---- entries ---------------------------------------------------------------- */

static size_t al(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

/* The row chunks of the column sums over N rows: R chunks of rc rows (a
 * function of N only, so the sums do not depend on the device). */
static void colsum_plan(int N, int *R, int *rc) {
    int r = (N + CS_CHUNK_ROWS - 1) / CS_CHUNK_ROWS;
    if (r > CS_MAX_CHUNKS) r = CS_MAX_CHUNKS;
    if (r < 1) r = 1;
    *rc = (N + r - 1) / r;
    *R = (N + *rc - 1) / *rc;
}

/* db (O) += colsum(x (N,O)); part has R·O doubles */
template <typename X>
static void colsum_add(const dv2_backend *be, float *db, double *part, const X *x, int N, int O) {
    int R, rc;
    colsum_plan(N, &R, &rc);
    int nb = (O + CS_COLS - 1) / CS_COLS;
    dim3 grid(nb < 65535 ? nb : 65535, R), block(CS_COLS, CS_ROWS);
    cudaStream_t st = dv2_cuda_stream(be);
    colsum_part_kernel<X><<<grid, block, 0, st>>>(part, x, N, O, rc);
    colsum_add_kernel<<<dv2_cuda_grid(O, T), T, 0, st>>>(db, part, R, O);
}

/* The bf16 weight of a GEMM: the compute copy w16, or w converted into the
 * workspace slot ws. */
static int weight_bf16(const dv2_backend *be, const __nv_bfloat16 **wb, __nv_bfloat16 *ws,
                       const float *w, const dv2_bf16 *w16, size_t nw) {
    if (w16) {
        *wb = (const __nv_bfloat16 *)w16;
        return DV2_OK;
    }
    *wb = ws;
    return dv2_cuda_to_bf16(be, ws, w, nw);
}

int dv2_cuda_linear_forward(const dv2_backend *be, float *out, float *pre, const float *in,
                            const float *w, const dv2_bf16 *w16, const float *b, int N, int Cin,
                            int Cout, int flags) {
    if (N == 0) return dv2_cuda_launched(be);
    int ge = flags & DV2_LINEAR_GELU, bf = dv2_cuda_bf16(be), rc;
    size_t ni = (size_t)N * Cin, nw = (size_t)Cout * Cin, no = (size_t)N * Cout;
    float *y = ge ? pre : out;
    if (bf) {
        char *ws = (char *)dv2_cuda_workspace(be, al(ni * 2) + (w16 ? 0 : al(nw * 2)));
        if (!ws) {
            dv2_cuda_nan_fill(be, out, no);
            dv2_cuda_nan_fill(be, pre, ge ? no : 0);
            return dv2_cuda_fail(be, DV2_ENOMEM);
        }
        __nv_bfloat16 *ib = (__nv_bfloat16 *)ws;
        const __nv_bfloat16 *wb;
        if ((rc = dv2_cuda_to_bf16(be, ib, in, ni)) ||
            (rc = weight_bf16(be, &wb, (__nv_bfloat16 *)(ws + al(ni * 2)), w, w16, nw)) ||
            (rc = dv2_cuda_gemm_bf16(be, 0, 1, N, Cout, Cin, 1.0f, ib, Cin, wb, Cin, 0.0f, y, Cout)))
            return rc;
    } else if ((rc = dv2_cuda_sgemm(be, 0, 1, N, Cout, Cin, 1.0f, in, Cin, w, Cin, 0.0f, y, Cout))) {
        return rc;
    }
    if (b || ge || bf)
        epilogue_kernel<<<dv2_cuda_grid(no, T), T, 0, dv2_cuda_stream(be)>>>(out, pre, y, b, no, Cout,
                                                                               ge, bf);
    return dv2_cuda_launched(be);
}

int dv2_cuda_linear_backward(const dv2_backend *be, float *din, float *dw, float *db,
                             float *work, const float *dout, const float *pre,
                             const float *in, const float *w, const dv2_bf16 *w16, int N,
                             int Cin, int Cout, int flags) {
    if (N == 0) return dv2_cuda_launched(be); /* no rows: din empty, dw and db get nothing */
    int ge = flags & DV2_LINEAR_GELU, bf = dv2_cuda_bf16(be), rc, R, rcn;
    size_t nd = (size_t)N * Cout, ni = (size_t)N * Cin, nw = (size_t)Cout * Cin;
    cudaStream_t st = dv2_cuda_stream(be);
    colsum_plan(N, &R, &rcn);
    /* the arena: [dout as bf16 | in as bf16 | w as bf16 | column-sum parts] */
    int need_g = bf && (din || dw || (db && !ge)); /* dpre / dout as bf16 */
    size_t s_g = need_g ? al(nd * 2) : 0, s_i = bf && dw ? al(ni * 2) : 0, s_w = bf && din && !w16 ? al(nw * 2) : 0;
    size_t s_p = db ? al((size_t)R * Cout * sizeof(double)) : 0, tot = s_g + s_i + s_w + s_p;
    char *ws = NULL;
    if (tot && !(ws = (char *)dv2_cuda_workspace(be, tot))) {
        dv2_cuda_nan_fill(be, din, ni);
        dv2_cuda_nan_fill(be, dw, dw ? nw : 0);
        dv2_cuda_nan_fill(be, db, db ? (size_t)Cout : 0);
        return dv2_cuda_fail(be, DV2_ENOMEM);
    }
    __nv_bfloat16 *gb = (__nv_bfloat16 *)ws, *ib = (__nv_bfloat16 *)(ws + s_g);
    __nv_bfloat16 *wb = (__nv_bfloat16 *)(ws + s_g + s_i);
    double *part = (double *)(ws + s_g + s_i + s_w);
    const float *g = dout;
    if (ge) { /* dpre = dout ⊙ GELU'(pre), f32 in work (dout read as bf16 by bf) */
        dgelu_kernel<<<dv2_cuda_grid(nd, T), T, 0, st>>>(work, dout, pre, nd, bf);
        g = work;
    }
    float beta = flags & DV2_LINEAR_ACCUMULATE ? 1.0f : 0.0f;
    if (!bf) {
        if (din && (rc = dv2_cuda_sgemm(be, 0, 0, N, Cin, Cout, 1.0f, g, Cout, w, Cin, beta, din, Cin)))
            return rc;
        if (dw && (rc = dv2_cuda_sgemm(be, 1, 0, Cout, Cin, N, 1.0f, g, Cout, in, Cin, 1.0f, dw, Cin)))
            return rc;
        if (db) colsum_add<float>(be, db, part, g, N, Cout);
        return dv2_cuda_launched(be);
    }
    /* bf16: the GEMMs read dpre (or dout) as bf16; db sums the f32 dpre, or
     * the bf16 dout, as cpu_bf16.c does.  cpu_bf16.c feeds its GEMMs the f32
     * dpre; tensor cores need it in bf16, one more rounding (2^-9) there. */
    if (need_g && (rc = dv2_cuda_to_bf16(be, gb, g, nd))) return rc;
    if (din) {
        const __nv_bfloat16 *wr;
        if ((rc = weight_bf16(be, &wr, wb, w, w16, nw)) ||
            (rc = dv2_cuda_gemm_bf16(be, 0, 0, N, Cin, Cout, 1.0f, gb, Cout, wr, Cin, beta, din, Cin)) ||
            (rc = dv2_cuda_round_bf16(be, din, ni)))
            return rc;
    }
    if (dw) {
        if ((rc = dv2_cuda_to_bf16(be, ib, in, ni)) ||
            (rc = dv2_cuda_gemm_bf16(be, 1, 0, Cout, Cin, N, 1.0f, gb, Cout, ib, Cin, 1.0f, dw, Cin)))
            return rc;
    }
    if (db) {
        if (ge) colsum_add<float>(be, db, part, work, N, Cout);
        else colsum_add<__nv_bfloat16>(be, db, part, gb, N, Cout);
    }
    return dv2_cuda_launched(be);
}

int dv2_cuda_patch_embed_forward(const dv2_backend *be, float *out, float *col,
                                 const float *img, const float *w, const dv2_bf16 *w16,
                                 const float *b, int B, int Hpx, int Wpx, int p, int D) {
    int N = B * (Hpx / p) * (Wpx / p), K = 3 * p * p;
    size_t n = (size_t)N * K;
    if (n)
        im2col_kernel<<<dv2_cuda_grid(n, T), T, 0, dv2_cuda_stream(be)>>>(col, img, Hpx, Wpx, p, n,
                                                                            dv2_cuda_bf16(be));
    return dv2_cuda_linear_forward(be, out, NULL, col, w, w16, b, N, K, D, 0);
}

int dv2_cuda_patch_embed_backward(const dv2_backend *be, float *dw, float *db,
                                  const float *dout, const float *col, int B, int Hpx,
                                  int Wpx, int p, int D) {
    int N = B * (Hpx / p) * (Wpx / p);
    return dv2_cuda_linear_backward(be, NULL, dw, db, NULL, dout, NULL, col, NULL, NULL, N, 3 * p * p, D,
                                    0);
}

int dv2_cuda_pixels_forward(const dv2_backend *be, float *out, const uint8_t *px, int n,
                            int H, int W) {
    size_t np = (size_t)H * W, tot = (size_t)n * 3 * np;
    if (tot) pixels_kernel<<<dv2_cuda_grid(tot, T), T, 0, dv2_cuda_stream(be)>>>(out, px, np, tot);
    return dv2_cuda_launched(be);
}

int dv2_cuda_posembed_forward(const dv2_backend *be, float *out, float *scratch,
                              const float *pos, const float *wy, const float *wx, int M,
                              int oh, int ow, int D) {
    cudaStream_t st = dv2_cuda_stream(be);
    if (!wy || !wx) { /* identity: CLS and grid unchanged */
        size_t bytes = (size_t)(1 + (size_t)M * M) * D * sizeof(float);
        int rc = dv2_cuda_check(be, cudaMemcpyAsync(out, pos, bytes, cudaMemcpyDeviceToDevice, st));
        return rc ? rc : dv2_cuda_launched(be);
    }
    size_t MD = (size_t)M * D, ns = (size_t)oh * MD, no = (1 + (size_t)oh * ow) * D;
    if (ns) pe_rows_kernel<<<dv2_cuda_grid(ns, T), T, 0, st>>>(scratch, pos + D, wy, M, MD, ns);
    pe_cols_kernel<<<dv2_cuda_grid(no, T), T, 0, st>>>(out, pos, scratch, wx, M, ow, D, no);
    return dv2_cuda_launched(be);
}

int dv2_cuda_posembed_backward(const dv2_backend *be, float *dpos, float *scratch,
                               const float *dout, const float *wy, const float *wx, int M,
                               int oh, int ow, int D) {
    cudaStream_t st = dv2_cuda_stream(be);
    size_t MD = (size_t)M * D, np = (1 + (size_t)M * M) * D;
    if (!wy || !wx) {
        add_kernel<<<dv2_cuda_grid(np, T), T, 0, st>>>(dpos, dout, np);
        return dv2_cuda_launched(be);
    }
    size_t ns = (size_t)oh * MD;
    if (ns) pe_cols_t_kernel<<<dv2_cuda_grid(ns, T), T, 0, st>>>(scratch, dout + D, wx, M, ow, D, ns);
    pe_rows_t_kernel<<<dv2_cuda_grid(np, T), T, 0, st>>>(dpos, dout, scratch, wy, M, oh, D, np);
    return dv2_cuda_launched(be);
}
