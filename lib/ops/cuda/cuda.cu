/* cuda.cu — the CUDA backends' object: context (device, stream, cuBLAS
 * handle, workspace arena, sticky status, transfer counters), the memory
 * entries, the GEMM helpers the kernel files share, the collectives and the
 * table (see cuda.h; the kernels are in cuda_*.cu).
 *
 * Device choice: the local rank of the launcher (OMPI_COMM_WORLD_LOCAL_RANK,
 * SLURM_LOCALID, LOCAL_RANK) modulo the visible devices, else device 0, so
 * one rank per GPU needs no more than mpirun/srun and CUDA_VISIBLE_DEVICES.
 *
 * Memory: be->alloc is cudaMalloc plus a zeroing memset on the stream;
 * every transfer and kernel is queued on the backend's one stream, so call
 * order is execution order.  to_host waits for the stream (the host reads
 * the result at once); to_device from pageable memory returns once the
 * source has been staged, so the caller may reuse it.
 *
 * Collectives: with one process they are copies (or nothing).  With several,
 * in a build with NCCL (DV2_HAVE_NCCL), they run on the device buffers
 * through one NCCL communicator per backend, made at the first collective
 * from a unique id that rank 0 broadcasts over core/dist (every rank calls
 * the collectives in the same order, so the lazy start is collective too);
 * DV2_NCCL=0 in the environment, or a build without NCCL, stages through
 * host memory and core/dist (MPI) instead. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dist.h"
#include "ops/cuda/cuda.h"
#ifdef DV2_HAVE_NCCL
#include <nccl.h>
#endif

/* ---- status --------------------------------------------------------------- */

int dv2_cuda_fail(const dv2_backend *be, int status) {
    dv2_cuda_ctx *c = dv2_cuda_ctx_of(be);
    if (c && status && !c->status) c->status = status;
    return status;
}

static int status_of(cudaError_t e) {
    return e == cudaSuccess ? DV2_OK : e == cudaErrorMemoryAllocation ? DV2_ENOMEM : DV2_EIO;
}

int dv2_cuda_check(const dv2_backend *be, cudaError_t e) {
    if (e == cudaSuccess) return DV2_OK;
    if (getenv("DV2_CUDA_VERBOSE")) fprintf(stderr, "dv2 cuda: %s\n", cudaGetErrorString(e));
    return dv2_cuda_fail(be, status_of(e));
}

int dv2_cuda_check_blas(const dv2_backend *be, cublasStatus_t s) {
    if (s == CUBLAS_STATUS_SUCCESS) return DV2_OK;
    if (getenv("DV2_CUDA_VERBOSE")) fprintf(stderr, "dv2 cuda: cuBLAS status %d\n", (int)s);
    return dv2_cuda_fail(be, s == CUBLAS_STATUS_ALLOC_FAILED ? DV2_ENOMEM : DV2_EIO);
}

int dv2_cuda_launched(const dv2_backend *be) {
    int rc = dv2_cuda_check(be, cudaGetLastError());
#ifdef DV2_CUDA_SYNC_DEBUG
    if (!rc) rc = dv2_cuda_check(be, cudaStreamSynchronize(dv2_cuda_stream(be)));
#endif
    return rc ? rc : dv2_cuda_ctx_of(be)->status;
}

/* ---- memory ----------------------------------------------------------------- */

/* Records the device's free memory after an allocation (for the peak). */
static void note_memory(dv2_cuda_ctx *c) {
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) != cudaSuccess) {
        cudaGetLastError();
        return;
    }
    c->mem_total = tot;
    if (!c->mem_free_min || fr < c->mem_free_min) c->mem_free_min = fr;
}

static void *e_alloc(const dv2_backend *be, size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* not a launch error: do not report it twice */
        dv2_cuda_fail(be, status_of(e));
        return NULL;
    }
    if (dv2_cuda_check(be, cudaMemsetAsync(p, 0, bytes, dv2_cuda_stream(be)))) {
        cudaFree(p);
        return NULL;
    }
    note_memory(dv2_cuda_ctx_of(be));
    return p;
}

static void e_free(const dv2_backend *be, void *p) {
    if (!p) return;
    cudaStreamSynchronize(dv2_cuda_stream(be)); /* queued work may still read it */
    cudaFree(p);
}

static int e_to_host(const dv2_backend *be, void *dst, const void *src, size_t bytes) {
    dv2_cuda_ctx *c = dv2_cuda_ctx_of(be);
    c->to_host += bytes;
    if (!bytes) return c->status;
    int rc = dv2_cuda_check(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    if (!rc) rc = dv2_cuda_check(be, cudaStreamSynchronize(c->stream));
    return rc;
}

static int e_to_device(const dv2_backend *be, void *dst, const void *src, size_t bytes) {
    dv2_cuda_ctx *c = dv2_cuda_ctx_of(be);
    c->to_device += bytes;
    if (!bytes) return c->status;
    return dv2_cuda_check(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
}

static int e_copy(const dv2_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes || dst == src) return DV2_OK;
    return dv2_cuda_check(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                                              dv2_cuda_stream(be)));
}

static int e_zero(const dv2_backend *be, void *p, size_t bytes) {
    if (!bytes) return DV2_OK;
    return dv2_cuda_check(be, cudaMemsetAsync(p, 0, bytes, dv2_cuda_stream(be)));
}

static int e_sync(const dv2_backend *be) {
    dv2_cuda_check(be, cudaStreamSynchronize(dv2_cuda_stream(be)));
    dv2_cuda_check(be, cudaGetLastError());
    return dv2_cuda_ctx_of(be)->status;
}

static int e_status(const dv2_backend *be) {
    dv2_cuda_check(be, cudaGetLastError());
    return dv2_cuda_ctx_of(be)->status;
}

void *dv2_cuda_workspace(const dv2_backend *be, size_t bytes) {
    dv2_cuda_ctx *c = dv2_cuda_ctx_of(be);
    if (bytes > c->ws_cap || !c->ws) { /* a first request of 0 bytes gets an arena too */
        size_t cap = c->ws_cap * 2 > bytes ? c->ws_cap * 2 : bytes;
        if (!cap) cap = 256;
        /* queued ops may still use the old arena; a kernel that failed there
         * is reported as itself (DV2_EIO), not as out of memory */
        if (dv2_cuda_check(be, cudaStreamSynchronize(c->stream))) return NULL;
        void *p = NULL;
        if (cudaMalloc(&p, cap) != cudaSuccess) { /* doubling failed: try the exact size */
            cudaGetLastError();
            p = NULL, cap = bytes ? bytes : 256;
            if (cudaMalloc(&p, cap) != cudaSuccess) {
                cudaGetLastError();
                dv2_cuda_fail(be, DV2_ENOMEM);
                return NULL;
            }
        }
        cudaFree(c->ws);
        c->ws = p, c->ws_cap = cap;
        note_memory(c);
    }
    if (bytes > c->ws_high) c->ws_high = bytes;
    return c->ws;
}

void *dv2_cuda_small(const dv2_backend *be) { return dv2_cuda_ctx_of(be)->small; }
void *dv2_cuda_pinned(const dv2_backend *be) { return dv2_cuda_ctx_of(be)->pinned; }

static void e_info(const dv2_backend *be, dv2_backend_info *out) {
    const dv2_cuda_ctx *c = dv2_cuda_ctx_of(be);
    memset(out, 0, sizeof *out);
    snprintf(out->device, sizeof out->device, "%s", c->device_name);
    out->workspace_high = c->ws_high;
    out->to_host = c->to_host, out->to_device = c->to_device;
    out->mem_peak = c->mem_total && c->mem_free_min ? c->mem_total - c->mem_free_min : 0;
}

static void e_release(dv2_backend *be) {
    dv2_cuda_ctx *c = dv2_cuda_ctx_of(be);
    if (!c) return;
    if (c->stream) cudaStreamSynchronize(c->stream);
#ifdef DV2_HAVE_NCCL
    if (c->nccl) ncclCommDestroy((ncclComm_t)c->nccl);
#endif
    cudaFree(c->ws);
    cudaFree(c->small);
    if (c->pinned) cudaFreeHost(c->pinned);
    if (c->blas) cublasDestroy(c->blas);
    if (c->comm_stream) cudaStreamSynchronize(c->comm_stream), cudaStreamDestroy(c->comm_stream);
    if (c->ev_start) cudaEventDestroy(c->ev_start);
    if (c->ev_done) cudaEventDestroy(c->ev_done);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
    be->ctx = NULL;
}

/* ---- small kernels the other files share ----------------------------------- */

static __global__ void k_fill(float *x, size_t n, float v) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = v;
}

void dv2_cuda_nan_fill(const dv2_backend *be, float *x, size_t n) {
    if (!x || !n) return;
    k_fill<<<dv2_cuda_grid(n, DV2_CUDA_THREADS), DV2_CUDA_THREADS, 0, dv2_cuda_stream(be)>>>(x, n, NAN);
    cudaGetLastError();
}

static __global__ void k_to_bf16(__nv_bfloat16 *dst, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        dst[i] = dv2_bf16s(src[i]);
    }
}

static __global__ void k_round_bf16(float *x, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = dv2_bf16r(x[i]);
}

int dv2_cuda_to_bf16(const dv2_backend *be, __nv_bfloat16 *dst, const float *src, size_t n) {
    if (!n) return DV2_OK;
    k_to_bf16<<<dv2_cuda_grid(n, DV2_CUDA_THREADS), DV2_CUDA_THREADS, 0, dv2_cuda_stream(be)>>>(dst, src, n);
    return dv2_cuda_launched(be);
}

/* The to_bf16 entry: a weight's compute copy (dv2_bf16 holds the bits). */
static int e_to_bf16(const dv2_backend *be, dv2_bf16 *dst, const float *src, size_t n) {
    return dv2_cuda_to_bf16(be, (__nv_bfloat16 *)dst, src, n);
}

static __global__ void k_from_bf16(float *dst, const __nv_bfloat16 *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __bfloat162float(src[i]);
}

/* The from_bf16 entry: a 16-bit activation back in an f32 buffer. */
static int e_from_bf16(const dv2_backend *be, float *dst, const dv2_bf16 *src, size_t n) {
    if (!n) return DV2_OK;
    k_from_bf16<<<dv2_cuda_grid(n, DV2_CUDA_THREADS), DV2_CUDA_THREADS, 0, dv2_cuda_stream(be)>>>(
        dst, (const __nv_bfloat16 *)src, n);
    return dv2_cuda_launched(be);
}

int dv2_cuda_round_bf16(const dv2_backend *be, float *x, size_t n) {
    if (!x || !n) return DV2_OK;
    k_round_bf16<<<dv2_cuda_grid(n, DV2_CUDA_THREADS), DV2_CUDA_THREADS, 0, dv2_cuda_stream(be)>>>(x, n);
    return dv2_cuda_launched(be);
}

/* C (M rows, N columns, row stride ldc) ← beta·C: the GEMM with K = 0. */
static __global__ void k_scale_rows(float *C, int M, int N, int ldc, float beta) {
    size_t n = (size_t)M * N;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float *p = C + (i / N) * (size_t)ldc + i % N;
        *p = beta == 0.0f ? 0.0f : beta * *p;
    }
}

/* Row-major C = op(A)·op(B) is column-major C^T = op(B)^T·op(A)^T: the
 * operands swap and keep their own transposition flags.  A and B are of
 * type t (f32 or bf16); C is f32; CUBLAS_COMPUTE_32F accumulates in f32 and
 * never uses TF32. */
static int gemm(const dv2_backend *be, cudaDataType_t t, int transA, int transB, int M, int N, int K,
                float alpha, const void *A, int lda, const void *B, int ldb, float beta, float *C,
                int ldc) {
    if (M <= 0 || N <= 0) return DV2_OK;
    if (K <= 0) {
        k_scale_rows<<<dv2_cuda_grid((size_t)M * N, DV2_CUDA_THREADS), DV2_CUDA_THREADS, 0,
                       dv2_cuda_stream(be)>>>(C, M, N, ldc, beta);
        return dv2_cuda_launched(be);
    }
    cublasOperation_t ta = transA ? CUBLAS_OP_T : CUBLAS_OP_N, tb = transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    return dv2_cuda_check_blas(be, cublasGemmEx(dv2_cuda_ctx_of(be)->blas, tb, ta, N, M, K, &alpha, B, t,
                                                ldb, A, t, lda, &beta, C, CUDA_R_32F, ldc,
                                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

int dv2_cuda_sgemm(const dv2_backend *be, int transA, int transB, int M, int N, int K,
                   float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                   float *C, int ldc) {
    return gemm(be, CUDA_R_32F, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

int dv2_cuda_gemm_bf16(const dv2_backend *be, int transA, int transB, int M, int N, int K,
                       float alpha, const __nv_bfloat16 *A, int lda, const __nv_bfloat16 *B,
                       int ldb, float beta, float *C, int ldc) {
    return gemm(be, CUDA_R_16BF, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---- collectives ------------------------------------------------------------- */

static int multi(const struct dv2_dist *comm) { return comm && comm->world > 1; }

#ifdef DV2_HAVE_NCCL
/* The backend's NCCL communicator over comm's ranks (made on first use), or
 * NULL: NCCL is switched off (DV2_NCCL=0), or it failed (err says why). */
static ncclComm_t nccl_of(const dv2_backend *be, const struct dv2_dist *comm, dv2_error *err, int *rc) {
    dv2_cuda_ctx *c = dv2_cuda_ctx_of(be);
    *rc = DV2_OK;
    if (c->nccl_off) return NULL;
    if (c->nccl) {
        if (c->nccl_world == comm->world) return (ncclComm_t)c->nccl;
        *rc = dv2_error_set(err, DV2_EINVAL, "cuda collective: a communicator of %d ranks, asked for %d",
                            c->nccl_world, comm->world);
        return NULL;
    }
    const char *env = getenv("DV2_NCCL");
    if (env && !strcmp(env, "0")) {
        c->nccl_off = 1;
        return NULL;
    }
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    ncclResult_t r = comm->rank == 0 ? ncclGetUniqueId(&id) : ncclSuccess;
    /* every rank learns whether rank 0 got an id before anyone waits in NCCL */
    if ((*rc = dv2_dist_agree(comm, r == ncclSuccess ? 0 : -1, err)) ||
        (*rc = dv2_dist_broadcast(comm, &id, sizeof id, 0, err))) {
        if (r != ncclSuccess) dv2_error_set(err, DV2_EIO, "NCCL: %s", ncclGetErrorString(r));
        return NULL;
    }
    ncclComm_t nc = NULL;
    r = ncclCommInitRank(&nc, comm->world, id, comm->rank);
    if (r != ncclSuccess) {
        *rc = dv2_error_set(err, DV2_EIO, "NCCL: rank %d of %d: %s", comm->rank, comm->world,
                            ncclGetErrorString(r));
        dv2_cuda_fail(be, DV2_EIO);
        return NULL;
    }
    c->nccl = nc, c->nccl_world = comm->world;
    return nc;
}

static int nccl_done(const dv2_backend *be, ncclResult_t r, const char *what, dv2_error *err) {
    if (r == ncclSuccess) return dv2_cuda_launched(be);
    dv2_cuda_fail(be, DV2_EIO);
    return dv2_error_set(err, DV2_EIO, "NCCL %s: %s", what, ncclGetErrorString(r));
}
#endif

/* Host staging for a collective: a malloc'd buffer of `bytes`, or NULL
 * with DV2_ENOMEM in err. */
static void *host_buf(const dv2_backend *be, size_t bytes, dv2_error *err) {
    void *h = malloc(bytes ? bytes : 1);
    if (!h) {
        dv2_cuda_fail(be, DV2_ENOMEM);
        dv2_error_set(err, DV2_ENOMEM, "cuda collective: out of host memory for %zu bytes", bytes);
    }
    return h;
}

static int blocking_copy(const dv2_backend *be, void *dst, const void *src, size_t bytes,
                         cudaMemcpyKind kind, dv2_error *err) {
    cudaStream_t s = dv2_cuda_stream(be);
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, kind, s);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s);
    if (e == cudaSuccess) return DV2_OK;
    dv2_cuda_check(be, e);
    return dv2_error_set(err, status_of(e), "cuda collective: copy: %s", cudaGetErrorString(e));
}

static int e_coll_wait(const dv2_backend *be, dv2_error *err);

/* The three collectives: all-reduce (in place, out == in, n floats),
 * reduce-scatter (in W·n → out n) and all-gather (in n → out W·n). */
enum coll { ALLREDUCE, REDUCE_SCATTER, ALL_GATHER };

static int collective(const dv2_backend *be, enum coll op, float *out, const float *in, size_t n,
                      const struct dv2_dist *comm, dv2_error *err) {
    if (!multi(comm)) return op == ALLREDUCE ? DV2_OK : e_copy(be, out, in, n * sizeof *out);
    if (!n) return DV2_OK;
#ifdef DV2_HAVE_NCCL
    int nrc;
    ncclComm_t nc = nccl_of(be, comm, err, &nrc);
    if (nrc) return nrc;
    if (nc) {
        cudaStream_t st = dv2_cuda_stream(be);
        /* after the started collectives: NCCL wants one order per communicator */
        if (dv2_cuda_ctx_of(be)->coll_pending && (nrc = e_coll_wait(be, err))) return nrc;
        switch (op) {
        case ALLREDUCE: return nccl_done(be, ncclAllReduce(in, out, n, ncclFloat, ncclSum, nc, st), "all-reduce", err);
        case REDUCE_SCATTER:
            return nccl_done(be, ncclReduceScatter(in, out, n, ncclFloat, ncclSum, nc, st), "reduce-scatter", err);
        case ALL_GATHER: return nccl_done(be, ncclAllGather(in, out, n, ncclFloat, nc, st), "all-gather", err);
        }
    }
#endif
    /* host staging: in (nin floats) at h, the result (nout) after it, or in
     * place for the all-reduce */
    size_t W = (size_t)comm->world;
    size_t nin = op == REDUCE_SCATTER ? W * n : n, nout = op == ALL_GATHER ? W * n : n;
    float *h = (float *)host_buf(be, (nin + (op == ALLREDUCE ? 0 : nout)) * sizeof *h, err);
    if (!h) return DV2_ENOMEM;
    float *hout = op == ALLREDUCE ? h : h + nin;
    int rc = blocking_copy(be, h, in, nin * sizeof *h, cudaMemcpyDeviceToHost, err);
    if (!rc) {
        switch (op) {
        case ALLREDUCE: rc = dv2_dist_allreduce_sum_f32(comm, h, n, err); break;
        case REDUCE_SCATTER: rc = dv2_dist_reduce_scatter_sum_f32(comm, hout, h, n, err); break;
        case ALL_GATHER: rc = dv2_dist_allgather(comm, h, n * sizeof *h, hout, err); break;
        }
    }
    if (!rc) rc = blocking_copy(be, out, hout, nout * sizeof *h, cudaMemcpyHostToDevice, err);
    free(h);
    return rc;
}

int dv2_cuda_allreduce_sum(const dv2_backend *be, float *buf, size_t n, const struct dv2_dist *comm,
                           dv2_error *err) {
    return collective(be, ALLREDUCE, buf, buf, n, comm, err);
}

int dv2_cuda_reduce_scatter_sum(const dv2_backend *be, float *out, const float *in, size_t n,
                                const struct dv2_dist *comm, dv2_error *err) {
    return collective(be, REDUCE_SCATTER, out, in, n, comm, err);
}

int dv2_cuda_all_gather(const dv2_backend *be, float *out, const float *in, size_t n,
                        const struct dv2_dist *comm, dv2_error *err) {
    return collective(be, ALL_GATHER, out, in, n, comm, err);
}

/* The non-blocking forms.  With NCCL each collective runs on a stream of
 * its own, after the work queued so far (an event), so the backward goes on
 * while it runs; coll_wait makes the compute stream wait for that stream.
 * Without NCCL (host staging) a start runs its collective at once, and the
 * reduce is an all-reduce. */
#ifdef DV2_HAVE_NCCL
static int comm_stream_of(const dv2_backend *be, dv2_error *err) {
    dv2_cuda_ctx *c = dv2_cuda_ctx_of(be);
    if (c->comm_stream) return DV2_OK;
    cudaError_t e = cudaStreamCreateWithFlags(&c->comm_stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&c->ev_start, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&c->ev_done, cudaEventDisableTiming);
    if (e == cudaSuccess) return DV2_OK;
    dv2_cuda_check(be, e);
    return dv2_error_set(err, status_of(e), "cuda collective: stream: %s", cudaGetErrorString(e));
}
#endif

static int start(const dv2_backend *be, float *buf, size_t n, int root, const struct dv2_dist *comm,
                 dv2_error *err) {
    if (root >= (comm ? comm->world : 1))
        return dv2_error_set(err, DV2_EINVAL, "cuda collective: reduce root %d outside 0..%d", root,
                             (comm ? comm->world : 1) - 1);
    if (!multi(comm) || !n) return DV2_OK;
#ifdef DV2_HAVE_NCCL
    int nrc;
    ncclComm_t nc = nccl_of(be, comm, err, &nrc);
    if (nrc) return nrc;
    if (nc) {
        dv2_cuda_ctx *c = dv2_cuda_ctx_of(be);
        if ((nrc = comm_stream_of(be, err))) return nrc;
        cudaError_t e = cudaEventRecord(c->ev_start, c->stream);
        if (e == cudaSuccess) e = cudaStreamWaitEvent(c->comm_stream, c->ev_start, 0);
        if (e != cudaSuccess) {
            dv2_cuda_check(be, e);
            return dv2_error_set(err, status_of(e), "cuda collective: event: %s", cudaGetErrorString(e));
        }
        c->coll_pending = 1;
        ncclResult_t r = root < 0 ? ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, nc, c->comm_stream)
                                  : ncclReduce(buf, buf, n, ncclFloat, ncclSum, root, nc, c->comm_stream);
        return nccl_done(be, r, root < 0 ? "all-reduce" : "reduce", err);
    }
#endif
    return collective(be, ALLREDUCE, buf, buf, n, comm, err);
}

int dv2_cuda_allreduce_sum_start(const dv2_backend *be, float *buf, size_t n, const struct dv2_dist *comm,
                                 dv2_error *err) {
    return start(be, buf, n, -1, comm, err);
}

int dv2_cuda_reduce_sum_start(const dv2_backend *be, float *buf, size_t n, int root, const struct dv2_dist *comm,
                              dv2_error *err) {
    if (root < 0) return dv2_error_set(err, DV2_EINVAL, "cuda collective: reduce root %d", root);
    return start(be, buf, n, root, comm, err);
}

static void e_coll_progress(const dv2_backend *be) { (void)be; /* NCCL runs on its stream */ }

static int e_coll_wait(const dv2_backend *be, dv2_error *err) {
    dv2_cuda_ctx *c = dv2_cuda_ctx_of(be);
    if (!c->coll_pending) return DV2_OK;
    c->coll_pending = 0;
    cudaError_t e = cudaEventRecord(c->ev_done, c->comm_stream);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(c->stream, c->ev_done, 0);
    if (e == cudaSuccess) return DV2_OK;
    dv2_cuda_check(be, e);
    return dv2_error_set(err, status_of(e), "cuda collective: wait: %s", cudaGetErrorString(e));
}

/* ---- the backend object ------------------------------------------------------- */

static int local_rank(void) {
    const char *v[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "LOCAL_RANK"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        const char *s = getenv(v[i]);
        if (s && *s) return atoi(s);
    }
    return 0;
}

static void fill_table(dv2_backend *be) {
    be->alloc = e_alloc, be->free = e_free, be->to_host = e_to_host, be->to_device = e_to_device;
    be->copy = e_copy, be->zero = e_zero, be->sync = e_sync, be->status = e_status;
    be->workspace = dv2_cuda_workspace, be->info = e_info, be->release = e_release;
    be->to_bf16 = e_to_bf16, be->from_bf16 = e_from_bf16;
    be->linear_forward = dv2_cuda_linear_forward, be->linear_backward = dv2_cuda_linear_backward;
    be->patch_embed_forward = dv2_cuda_patch_embed_forward;
    be->patch_embed_backward = dv2_cuda_patch_embed_backward;
    be->pixels_forward = dv2_cuda_pixels_forward;
    be->posembed_forward = dv2_cuda_posembed_forward;
    be->posembed_backward = dv2_cuda_posembed_backward;
    be->embed_tokens_forward = dv2_cuda_embed_tokens_forward;
    be->embed_tokens_backward = dv2_cuda_embed_tokens_backward;
    be->layernorm_forward = dv2_cuda_layernorm_forward;
    be->layernorm_backward = dv2_cuda_layernorm_backward;
    be->l2norm_forward = dv2_cuda_l2norm_forward, be->l2norm_backward = dv2_cuda_l2norm_backward;
    be->weightnorm_forward = dv2_cuda_weightnorm_forward;
    be->weightnorm_backward = dv2_cuda_weightnorm_backward;
    be->attention_forward = dv2_cuda_attention_forward;
    be->attention_backward = dv2_cuda_attention_backward;
    be->gelu_forward = dv2_cuda_gelu_forward, be->gelu_backward = dv2_cuda_gelu_backward;
    be->swiglu_forward = dv2_cuda_swiglu_forward, be->swiglu_backward = dv2_cuda_swiglu_backward;
    be->residual_forward = dv2_cuda_residual_forward;
    be->residual_backward = dv2_cuda_residual_backward;
    be->gather_rows = dv2_cuda_gather_rows, be->scatter_add_rows = dv2_cuda_scatter_add_rows;
    be->add = dv2_cuda_add, be->scale = dv2_cuda_scale, be->sumsq = dv2_cuda_sumsq;
    be->all_finite = dv2_cuda_all_finite;
    be->softmax_center_forward = dv2_cuda_softmax_center_forward;
    be->center_update = dv2_cuda_center_update;
    be->sinkhorn_knopp_forward = dv2_cuda_sinkhorn_knopp_forward;
    be->dino_forward = dv2_cuda_dino_forward, be->dino_backward = dv2_cuda_dino_backward;
    be->ibot_forward = dv2_cuda_ibot_forward, be->ibot_backward = dv2_cuda_ibot_backward;
    be->koleo_forward = dv2_cuda_koleo_forward, be->koleo_backward = dv2_cuda_koleo_backward;
    be->collapse_stats = dv2_cuda_collapse_stats;
    be->allreduce_sum = dv2_cuda_allreduce_sum;
    be->reduce_scatter_sum = dv2_cuda_reduce_scatter_sum;
    be->all_gather = dv2_cuda_all_gather;
    be->allreduce_sum_start = dv2_cuda_allreduce_sum_start;
    be->reduce_sum_start = dv2_cuda_reduce_sum_start;
    be->coll_progress = e_coll_progress, be->coll_wait = e_coll_wait;
    be->adamw_step = dv2_cuda_adamw_step, be->ema_update = dv2_cuda_ema_update;
}

extern "C" int dv2_cuda_backend_new(dv2_backend **out, int bf16, char *why, size_t n) {
    *out = NULL;
    if (why && n) why[0] = 0;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        if (why && n)
            snprintf(why, n, "no CUDA device (%s)", e != cudaSuccess ? cudaGetErrorString(e) : "none visible");
        cudaGetLastError();
        return DV2_EUNSUPPORTED;
    }
    dv2_backend *be = (dv2_backend *)calloc(1, sizeof *be);
    dv2_cuda_ctx *c = (dv2_cuda_ctx *)calloc(1, sizeof *c);
    if (!be || !c) {
        free(be), free(c);
        return DV2_ENOMEM;
    }
    be->name = bf16 ? "cuda-bf16" : "cuda";
    be->ctx = c;
    fill_table(be);
    c->bf16 = bf16;
    be->weights_bf16 = bf16; /* its GEMMs read the weights' bf16 compute copies */
    c->device = local_rank() % count;
    cudaDeviceProp prop;
    int rc = DV2_OK;
    if ((e = cudaSetDevice(c->device)) != cudaSuccess || (e = cudaGetDeviceProperties(&prop, c->device)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess ||
        (e = cudaMalloc(&c->small, DV2_CUDA_SMALL_BYTES)) != cudaSuccess ||
        (e = cudaMallocHost(&c->pinned, DV2_CUDA_SMALL_BYTES)) != cudaSuccess) {
        rc = status_of(e);
        if (why && n) snprintf(why, n, "CUDA device %d: %s", c->device, cudaGetErrorString(e));
    } else if (cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS ||
               cublasSetStream(c->blas, c->stream) != CUBLAS_STATUS_SUCCESS ||
               cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH) != CUBLAS_STATUS_SUCCESS) {
        rc = DV2_EIO;
        if (why && n) snprintf(why, n, "CUDA device %d: cuBLAS could not start", c->device);
    }
    if (rc) {
        cudaGetLastError();
        dv2_backend_close(be);
        return rc;
    }
    snprintf(c->device_name, sizeof c->device_name, "%.60s (device %d of %d, sm_%d%d, %.0f GiB, %d SMs%s)",
             prop.name, c->device, count, prop.major, prop.minor,
             prop.totalGlobalMem / (1024.0 * 1024 * 1024), prop.multiProcessorCount,
             bf16 ? ", bf16 storage" : ", f32, no TF32");
    *out = be;
    return DV2_OK;
}
