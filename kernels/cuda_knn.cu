/* cuda_knn.cu — brute-force cosine k-NN on the GPU (see cuda_knn.h).
 *
 * For each block of up to QB queries and each block of up to DBB database
 * rows: one cuBLAS SGEMM writes the QB × DBB similarity tile (plain FP32, no
 * TF32, so scores match the CPU reference to float rounding), then
 * topk_merge_kernel merges the tile into the running top-k of every query.
 *
 * topk_merge_kernel, one thread block per query: the current top-k sits at the
 * front of a 2048-entry shared buffer; threads stream the similarity row 256 at
 * a time and append only candidates that beat the current k-th best, so after
 * the first few hundred rows almost nothing is appended.  When fewer than 256
 * free slots remain the buffer is bitonic-sorted (similarity descending, row
 * ascending: a total order, so the result does not depend on the order of the
 * atomic appends) and cut back to k.  Cost: one read of the tile plus rare
 * sorts; the SGEMM dominates. */
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <new>

#include "cuda_check.cuh"
#include "cuda_knn.h"

#define BUF 2048
#define THREADS 256
#define QB 2048
#define DBB 65536

struct dv2_cuda_knn {
    int dim;
    int64_t cap, n;
    float *d_db;
    float *d_q, *d_sims, *d_tsim;
    long long *d_trow;
    cublasHandle_t blas;
    cudaStream_t stream;
};

/* a ranks before b: higher similarity, then lower row. */
__device__ __forceinline__ bool ranks_before(float sa, long long ra, float sb, long long rb) {
    return sa > sb || (sa == sb && ra < rb);
}

__device__ void bitonic_sort_desc(float *s, long long *r) {
    for (int size = 2; size <= BUF; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int t = threadIdx.x; t < BUF / 2; t += blockDim.x) {
                int i = 2 * stride * (t / stride) + (t % stride);
                int j = i + stride;
                bool first_half_desc = (i & size) == 0;
                bool swap = first_half_desc ? ranks_before(s[j], r[j], s[i], r[i])
                                            : ranks_before(s[i], r[i], s[j], r[j]);
                if (swap) {
                    float ts = s[i]; s[i] = s[j]; s[j] = ts;
                    long long tr = r[i]; r[i] = r[j]; r[j] = tr;
                }
            }
            __syncthreads();
        }
    }
}

/* sims (nq, m) row-major: similarities of query i to database rows
 * row0 .. row0+m-1.  tsim/trow (nq, k): the running top-k, updated in place. */
static __global__ void topk_merge_kernel(float *tsim, long long *trow, const float *sims, int m,
                                         long long row0, int k, float min_sim, long long self_row0) {
    __shared__ float bs[BUF];
    __shared__ long long br[BUF];
    __shared__ int count;
    __shared__ float th_s;
    __shared__ long long th_r;
    const int q = blockIdx.x;
    const float *row = sims + (size_t)q * m;
    const long long self = self_row0 >= 0 ? self_row0 + q : -1;

    for (int t = threadIdx.x; t < k; t += blockDim.x) {
        bs[t] = tsim[(size_t)q * k + t];
        br[t] = trow[(size_t)q * k + t] < 0 ? LLONG_MAX : trow[(size_t)q * k + t];
    }
    __syncthreads();
    if (threadIdx.x == 0) { count = k; th_s = bs[k - 1]; th_r = br[k - 1]; }
    __syncthreads();

    for (int base = 0; base < m; base += blockDim.x) {
        if (count > BUF - (int)blockDim.x) { /* uniform: every thread reads the same count */
            for (int t = count + threadIdx.x; t < BUF; t += blockDim.x) { bs[t] = -INFINITY; br[t] = LLONG_MAX; }
            __syncthreads();
            bitonic_sort_desc(bs, br);
            if (threadIdx.x == 0) { count = k; th_s = bs[k - 1]; th_r = br[k - 1]; }
            __syncthreads();
        }
        int idx = base + threadIdx.x;
        if (idx < m) {
            float s = row[idx];
            long long r = row0 + idx;
            if (r != self && s > min_sim && ranks_before(s, r, th_s, th_r)) {
                int pos = atomicAdd(&count, 1);
                bs[pos] = s;
                br[pos] = r;
            }
        }
        __syncthreads();
    }
    for (int t = count + threadIdx.x; t < BUF; t += blockDim.x) { bs[t] = -INFINITY; br[t] = LLONG_MAX; }
    __syncthreads();
    bitonic_sort_desc(bs, br);
    for (int t = threadIdx.x; t < k; t += blockDim.x) {
        bool none = br[t] == LLONG_MAX || bs[t] == -INFINITY;
        tsim[(size_t)q * k + t] = none ? -INFINITY : bs[t];
        trow[(size_t)q * k + t] = none ? -1 : br[t];
    }
}

static __global__ void topk_init_kernel(float *tsim, long long *trow, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { tsim[i] = -INFINITY; trow[i] = -1; }
}

extern "C" int dv2_cuda_device_count(char *desc, size_t desc_len) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) { cudaGetLastError(); n = 0; }
    if (desc && desc_len) {
        desc[0] = 0;
        cudaDeviceProp p;
        if (n > 0 && cudaGetDeviceProperties(&p, 0) == cudaSuccess)
            snprintf(desc, desc_len, "%s, sm_%d%d, %.0f GiB", p.name, p.major, p.minor,
                     (double)p.totalGlobalMem / (1024.0 * 1024 * 1024));
    }
    return n;
}

extern "C" void dv2_cuda_knn_free(dv2_cuda_knn *s) {
    if (!s) return;
    cudaFree(s->d_db); cudaFree(s->d_q); cudaFree(s->d_sims); cudaFree(s->d_tsim); cudaFree(s->d_trow);
    if (s->blas) cublasDestroy(s->blas);
    if (s->stream) cudaStreamDestroy(s->stream);
    delete s;
}

static int create_impl(dv2_cuda_knn *s, int dim, int64_t capacity, dv2_error *err) {
    s->dim = dim;
    s->cap = capacity;
    DV2_CUDA_TRY(err, cudaStreamCreate(&s->stream));
    DV2_CUBLAS_TRY(err, cublasCreate(&s->blas));
    DV2_CUBLAS_TRY(err, cublasSetStream(s->blas, s->stream));
    DV2_CUBLAS_TRY(err, cublasSetMathMode(s->blas, CUBLAS_PEDANTIC_MATH)); /* true FP32 */
    DV2_CUDA_TRY(err, cudaMalloc(&s->d_db, (size_t)capacity * dim * sizeof(float)));
    DV2_CUDA_TRY(err, cudaMalloc(&s->d_q, (size_t)QB * dim * sizeof(float)));
    size_t dbb = capacity < DBB ? (size_t)capacity : DBB;
    DV2_CUDA_TRY(err, cudaMalloc(&s->d_sims, (size_t)QB * dbb * sizeof(float)));
    DV2_CUDA_TRY(err, cudaMalloc(&s->d_tsim, (size_t)QB * DV2_CUDA_KNN_MAX_K * sizeof(float)));
    DV2_CUDA_TRY(err, cudaMalloc(&s->d_trow, (size_t)QB * DV2_CUDA_KNN_MAX_K * sizeof(long long)));
    return 0;
}

extern "C" int dv2_cuda_knn_create(dv2_cuda_knn **out, int dim, int64_t capacity, dv2_error *err) {
    *out = NULL;
    if (dim <= 0 || capacity <= 0)
        return dv2_error_set(err, DV2_EINVAL, "cuda knn: bad dimension %d or capacity %lld", dim, (long long)capacity);
    if (dv2_cuda_device_count(NULL, 0) == 0)
        return dv2_error_set(err, DV2_EUNSUPPORTED, "cuda knn: no CUDA device is available");
    dv2_cuda_knn *s = new (std::nothrow) dv2_cuda_knn();
    if (!s) return dv2_error_set(err, DV2_ENOMEM, "cuda knn: out of memory");
    int rc = create_impl(s, dim, capacity, err);
    if (rc) { dv2_cuda_knn_free(s); return rc; }
    *out = s;
    return 0;
}

extern "C" int dv2_cuda_knn_add(dv2_cuda_knn *s, const float *x, int64_t n, dv2_error *err) {
    if (n < 0 || s->n + n > s->cap)
        return dv2_error_set(err, DV2_EINVAL, "cuda knn: adding %lld rows exceeds the capacity %lld",
                             (long long)n, (long long)s->cap);
    DV2_CUDA_TRY(err, cudaMemcpyAsync(s->d_db + (size_t)s->n * s->dim, x, (size_t)n * s->dim * sizeof(float),
                                      cudaMemcpyHostToDevice, s->stream));
    DV2_CUDA_TRY(err, cudaStreamSynchronize(s->stream));
    s->n += n;
    return 0;
}

extern "C" int dv2_cuda_knn_search(dv2_cuda_knn *s, float *out_sim, int64_t *out_row, const float *q,
                                   int64_t nq, int k, float min_sim, int64_t self_first, dv2_error *err) {
    if (k < 1 || k > DV2_CUDA_KNN_MAX_K)
        return dv2_error_set(err, DV2_EINVAL, "cuda knn: k = %d is outside 1..%d", k, DV2_CUDA_KNN_MAX_K);
    const float one = 1.0f, zero = 0.0f;
    for (int64_t q0 = 0; q0 < nq; q0 += QB) {
        int qb = (int)(nq - q0 < QB ? nq - q0 : QB);
        DV2_CUDA_TRY(err, cudaMemcpyAsync(s->d_q, q + (size_t)q0 * s->dim, (size_t)qb * s->dim * sizeof(float),
                                          cudaMemcpyHostToDevice, s->stream));
        size_t nt = (size_t)qb * k;
        topk_init_kernel<<<(unsigned)((nt + 255) / 256), 256, 0, s->stream>>>(s->d_tsim, s->d_trow, nt);
        DV2_LAUNCH_TRY(err);
        for (int64_t j0 = 0; j0 < s->n; j0 += DBB) {
            int m = (int)(s->n - j0 < DBB ? s->n - j0 : DBB);
            /* column-major: C (m × qb) = DBᵀ (m × dim) · Q (dim × qb) */
            DV2_CUBLAS_TRY(err, cublasSgemm(s->blas, CUBLAS_OP_T, CUBLAS_OP_N, m, qb, s->dim, &one,
                                            s->d_db + (size_t)j0 * s->dim, s->dim, s->d_q, s->dim, &zero,
                                            s->d_sims, m));
            long long self0 = self_first >= 0 ? (long long)(self_first + q0) : -1;
            topk_merge_kernel<<<qb, THREADS, 0, s->stream>>>(s->d_tsim, s->d_trow, s->d_sims, m, (long long)j0,
                                                             k, min_sim, self0);
            DV2_LAUNCH_TRY(err);
        }
        DV2_CUDA_TRY(err, cudaMemcpyAsync(out_sim + (size_t)q0 * k, s->d_tsim, nt * sizeof(float),
                                          cudaMemcpyDeviceToHost, s->stream));
        static_assert(sizeof(long long) == sizeof(int64_t), "row type");
        DV2_CUDA_TRY(err, cudaMemcpyAsync(out_row + (size_t)q0 * k, s->d_trow, nt * sizeof(long long),
                                          cudaMemcpyDeviceToHost, s->stream));
        DV2_CUDA_TRY(err, cudaStreamSynchronize(s->stream));
    }
    return 0;
}
