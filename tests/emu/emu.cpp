/* emu.cpp — host EMULATION of the CUDA runtime, of cuBLAS's GEMM and of the
 * thread blocks the dv2 kernels run in (test infrastructure, C++; see
 * tests/emu/include/cuda_runtime.h for what it checks and what it cannot).
 *
 * Device memory is host memory.  Every allocation is poisoned (0xff bytes:
 * NaN as a float or a double, -1 as an integer) so a read of memory nobody
 * wrote shows up in the results; copies and memsets must lie inside one
 * allocation.  Streams are synchronous: every call has finished when it
 * returns; every call must name a stream made by cudaStreamCreateWithFlags
 * (cuda.h: never the default stream).  cublasGemmEx is a plain column-major triple loop with f32
 * accumulation in index order (CUDA_R_32F or CUDA_R_16BF operands, f32 C),
 * written here from the cuBLAS documentation, not from dv2's own code. */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <ucontext.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <map>
#include <vector>

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

/* ---- errors ---------------------------------------------------------------- */

static cudaError_t g_last = cudaSuccess;

void emu_set_error(cudaError_t e) {
    if (e != cudaSuccess && g_last == cudaSuccess) g_last = e;
}
static cudaError_t ret(cudaError_t e) {
    emu_set_error(e);
    return e;
}

[[noreturn]] static void emu_die(const char *what) {
    fprintf(stderr, "CUDA emulation: %s (block (%u,%u,%u) thread (%u,%u,%u))\n", what, blockIdx.x,
            blockIdx.y, blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z);
    abort();
}

extern "C" cudaError_t cudaGetLastError(void) {
    cudaError_t e = g_last;
    g_last = cudaSuccess;
    return e;
}
extern "C" cudaError_t cudaPeekAtLastError(void) { return g_last; }
extern "C" const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error (emulation)";
    case cudaErrorMemoryAllocation: return "out of memory (emulation)";
    case cudaErrorInvalidValue: return "invalid argument (emulation)";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument (emulation)";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer (emulation)";
    default: return "error (emulation)";
    }
}

/* ---- device ----------------------------------------------------------------- */

static const size_t k_total = (size_t)16 << 30; /* the emulated device's memory */
static size_t g_used;
static std::map<const char *, size_t> g_allocs; /* device allocations: start → bytes */

extern "C" cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
extern "C" cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : ret(cudaErrorInvalidDevice); }
extern "C" cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    if (d != 0) return ret(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CUDA emulation on the host");
    p->major = 9, p->minor = 0, p->totalGlobalMem = k_total, p->multiProcessorCount = 1;
    p->maxThreadsPerBlock = 1024, p->warpSize = 32, p->sharedMemPerBlock = 48 * 1024;
    return cudaSuccess;
}
extern "C" cudaError_t cudaMemGetInfo(size_t *fr, size_t *tot) {
    *fr = k_total - g_used, *tot = k_total;
    return cudaSuccess;
}
/* The streams made and not destroyed: cuda.h's rule is that all work goes
 * to the backend's stream, never to the default one (0), so every launch,
 * copy, memset and GEMM must name one of these. */
static std::map<cudaStream_t, int> g_streams;

/* Streams and events are opaque handles kept in a set while they live. */
template <class T> static cudaError_t handle_new(std::map<T, int> &live, T *h) {
    *h = (T) new char;
    live[*h] = 1;
    return cudaSuccess;
}
template <class T> static cudaError_t handle_delete(std::map<T, int> &live, T h) {
    if (!live.erase(h)) return ret(cudaErrorInvalidResourceHandle);
    delete (char *)h;
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int) { return handle_new(g_streams, s); }
extern "C" cudaError_t cudaStreamDestroy(cudaStream_t s) { return handle_delete(g_streams, s); }

static void need_stream(cudaStream_t s, const char *what) {
    if (g_streams.count(s)) return;
    fprintf(stderr, "CUDA emulation: %s on %s, not on a stream the backend made\n", what,
            s ? "a destroyed stream" : "the default stream");
    abort();
}
extern "C" cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    need_stream(s, "cudaStreamSynchronize");
    return cudaSuccess;
}

/* Events: work runs when it is queued, so an event is complete once
 * recorded; recording and waiting still name one of the backend's streams. */
static std::map<cudaEvent_t, int> g_events;

extern "C" cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int) { return handle_new(g_events, e); }
extern "C" cudaError_t cudaEventDestroy(cudaEvent_t e) { return handle_delete(g_events, e); }
extern "C" cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    need_stream(s, "cudaEventRecord");
    return g_events.count(e) ? cudaSuccess : ret(cudaErrorInvalidResourceHandle);
}
extern "C" cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int) {
    need_stream(s, "cudaStreamWaitEvent");
    return g_events.count(e) ? cudaSuccess : ret(cudaErrorInvalidResourceHandle);
}

/* ---- memory ------------------------------------------------------------------ */

extern "C" cudaError_t cudaMalloc(void **p, size_t bytes) {
    *p = NULL;
    if (bytes > k_total - g_used) return ret(cudaErrorMemoryAllocation);
    char *m = (char *)malloc(bytes ? bytes : 1);
    if (!m) return ret(cudaErrorMemoryAllocation);
    memset(m, 0xff, bytes);
    g_allocs[m] = bytes;
    g_used += bytes;
    *p = m;
    return cudaSuccess;
}
extern "C" cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    auto it = g_allocs.find((const char *)p);
    if (it == g_allocs.end()) emu_die("cudaFree of a pointer cudaMalloc did not return");
    g_used -= it->second;
    g_allocs.erase(it);
    free(p);
    return cudaSuccess;
}
extern "C" cudaError_t cudaMallocHost(void **p, size_t bytes) {
    *p = malloc(bytes ? bytes : 1);
    if (!*p) return ret(cudaErrorMemoryAllocation);
    memset(*p, 0xff, bytes);
    return cudaSuccess;
}
extern "C" cudaError_t cudaFreeHost(void *p) {
    free(p);
    return cudaSuccess;
}

/* cudaSuccess when [p, p+bytes) lies inside one device allocation. */
cudaError_t emu_check_device_range(const void *p, size_t bytes) {
    if (!bytes) return cudaSuccess;
    const char *c = (const char *)p;
    auto it = g_allocs.upper_bound(c);
    if (it == g_allocs.begin()) return cudaErrorInvalidValue;
    --it;
    if (c < it->first || c + bytes > it->first + it->second) return cudaErrorInvalidValue;
    return cudaSuccess;
}

static cudaError_t dev_range(const void *p, size_t bytes, const char *what) {
    cudaError_t e = emu_check_device_range(p, bytes);
    if (e) {
        fprintf(stderr, "CUDA emulation: %s: %zu bytes at %p are not inside one device allocation\n",
                what, bytes, p);
        ret(e);
    }
    return e;
}

extern "C" cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind k,
                                       cudaStream_t st) {
    need_stream(st, "cudaMemcpyAsync");
    if (!bytes) return cudaSuccess;
    int dd = k == cudaMemcpyHostToDevice || k == cudaMemcpyDeviceToDevice;
    int sd = k == cudaMemcpyDeviceToHost || k == cudaMemcpyDeviceToDevice;
    if (k == cudaMemcpyDefault || k == cudaMemcpyHostToHost) dd = sd = 0;
    if ((dd && dev_range(dst, bytes, "cudaMemcpyAsync destination")) ||
        (sd && dev_range(src, bytes, "cudaMemcpyAsync source")))
        return cudaErrorInvalidValue;
    memmove(dst, src, bytes);
    return cudaSuccess;
}
extern "C" cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t st) {
    need_stream(st, "cudaMemsetAsync");
    if (dev_range(p, bytes, "cudaMemsetAsync")) return cudaErrorInvalidValue;
    memset(p, v, bytes);
    return cudaSuccess;
}

/* ---- thread blocks as fibers --------------------------------------------------- */

enum { RUN, BAR, WARP, DONE };
struct fiber {
    ucontext_t uc;
    int state;
    const char *file; /* the barrier's source line */
    int line;
    int pred, op, result;
    uint64_t in, out; /* a shuffle's value and result */
    int mode, arg, width;
    unsigned mask;
};

static const size_t k_stack = 256 * 1024;
static std::vector<fiber> g_f;
static std::vector<char *> g_stacks;
static ucontext_t g_sched;
static int g_cur = -1;
static std::function<void()> *g_body;
static unsigned g_bx, g_by;
static int g_order = -1;       /* 0 forward, 1 reverse, 2 seeded shuffle */
static uint64_t g_seed;
static std::vector<int> g_perm; /* the order threads run in within a phase */

/* the shared memory of all kernels (the section emu_shared) */
extern "C" char __start_emu_shared[] __attribute__((weak)), __stop_emu_shared[] __attribute__((weak));

static uint64_t next_rand(void) { /* splitmix64 */
    uint64_t z = (g_seed += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* 0..n-1 in the EMU_ORDER order */
static void make_order(std::vector<int> &v, size_t n) {
    if (g_order < 0) {
        const char *e = getenv("EMU_ORDER");
        g_order = !e || !*e || !strcmp(e, "forward") ? 0 : !strcmp(e, "reverse") ? 1 : 2;
        if (g_order == 2) g_seed = strtoull(e, NULL, 10);
    }
    v.resize(n);
    for (size_t i = 0; i < n; i++) v[i] = g_order == 1 ? (int)(n - 1 - i) : (int)i;
    if (g_order == 2)
        for (size_t i = n; i > 1; i--) std::swap(v[i - 1], v[next_rand() % i]);
}

static void set_tid(int t) {
    threadIdx.x = (unsigned)t % g_bx;
    threadIdx.y = ((unsigned)t / g_bx) % g_by;
    threadIdx.z = (unsigned)t / (g_bx * g_by);
}

static void entry(void) {
    (*g_body)();
    g_f[g_cur].state = DONE; /* uc_link returns to the scheduler */
}

static void yield(void) {
    fiber &f = g_f[g_cur];
    asm volatile("" ::: "memory");
    swapcontext(&f.uc, &g_sched);
    asm volatile("" ::: "memory");
}

static void in_kernel(const char *what) {
    if (g_cur < 0) {
        fprintf(stderr, "CUDA emulation: %s outside a kernel\n", what);
        abort();
    }
}

void emu_syncthreads(const char *file, int line) {
    in_kernel("__syncthreads");
    fiber &f = g_f[g_cur];
    f.state = BAR, f.file = file, f.line = line, f.op = -1;
    yield();
}

int emu_syncthreads_op(int pred, int op, const char *file, int line) {
    in_kernel("__syncthreads_and/or/count");
    fiber &f = g_f[g_cur];
    f.state = BAR, f.file = file, f.line = line, f.op = op, f.pred = pred;
    yield();
    return g_f[g_cur].result;
}

uint64_t emu_shfl(uint64_t bits, int mode, int arg, unsigned mask, int width) {
    in_kernel("a warp shuffle");
    fiber &f = g_f[g_cur];
    f.state = WARP, f.in = bits, f.mode = mode, f.arg = arg, f.mask = mask, f.width = width;
    yield();
    return g_f[g_cur].out;
}

/* Exchanges the values of warp w's lanes [a, b) (all at a shuffle). */
static void warp_exchange(int a, int b) {
    fiber &f0 = g_f[a];
    if (b - a != 32) emu_die("a full-warp shuffle in a warp of fewer than 32 threads");
    for (int t = a; t < b; t++) {
        fiber &f = g_f[t];
        if (f.mask != 0xffffffffu) emu_die("a shuffle with a partial mask (not emulated)");
        if (f.mode != f0.mode || f.width != f0.width) emu_die("the lanes of a warp are at different shuffles");
        if (f.width < 1 || f.width > 32 || (f.width & (f.width - 1))) emu_die("shuffle width not a power of 2 <= 32");
    }
    for (int t = a; t < b; t++) {
        fiber &f = g_f[t];
        int l = t - a, w = f.width, base = l - l % w, src = l;
        switch (f.mode) {
        case 0: src = base + ((f.arg % w) + w) % w; break;
        case 1: src = (l ^ f.arg) < base + w && (l ^ f.arg) >= base ? l ^ f.arg : l; break;
        case 2: src = l % w + f.arg < w ? l + f.arg : l; break;
        case 4: src = l % w >= f.arg ? l - f.arg : l; break;
        default: break; /* __syncwarp */
        }
        f.out = g_f[a + src].in;
    }
    for (int t = a; t < b; t++) g_f[t].state = RUN;
}

/* 0xff in every byte of the shared memory (under AddressSanitizer its
 * redzones between the variables are written too: not instrumented) */
__attribute__((no_sanitize_address)) static void poison_shared(void) {
    volatile char *p = __start_emu_shared, *e = __stop_emu_shared;
    for (; p < e && ((uintptr_t)p & 7); p++) *p = (char)0xff;
    for (; p + 8 <= e; p += 8) *(volatile uint64_t *)p = ~(uint64_t)0;
    for (; p < e; p++) *p = (char)0xff;
}

/* Runs the nt threads of the current block to their end. */
static void run_block(int nt) {
    for (int t = 0; t < nt; t++) {
        fiber &f = g_f[t];
        f.state = RUN;
        getcontext(&f.uc);
        f.uc.uc_stack.ss_sp = g_stacks[t];
        f.uc.uc_stack.ss_size = k_stack;
        f.uc.uc_link = &g_sched;
        makecontext(&f.uc, entry, 0);
    }
    poison_shared();
    make_order(g_perm, (size_t)nt);
    for (;;) {
        if (g_order == 2) make_order(g_perm, (size_t)nt);
        for (int i = 0; i < nt; i++)
            if (g_f[g_perm[i]].state == RUN) {
                int t = g_perm[i];
                g_cur = t;
                set_tid(t);
                swapcontext(&g_sched, &g_f[t].uc);
            }
        g_cur = -1;
        /* every thread is at a barrier, at a shuffle or done */
        int released = 0, at_warp = 0, at_bar = 0, done = 0;
        for (int a = 0; a < nt; a += 32) {
            int b = a + 32 < nt ? a + 32 : nt, nw = 0;
            for (int t = a; t < b; t++) nw += g_f[t].state == WARP;
            if (!nw) continue;
            if (nw == b - a) warp_exchange(a, b), released = 1;
            else at_warp = 1;
        }
        if (released) continue;
        if (at_warp) {
            set_tid(0);
            emu_die("deadlock: a warp shuffle some lanes of the warp never reach (exited or at a barrier)");
        }
        const fiber *first = NULL;
        int acc_and = 1, acc_or = 0, count = 0, op = -2;
        for (int t = 0; t < nt; t++) {
            fiber &f = g_f[t];
            if (f.state == DONE) { done++; continue; }
            at_bar++;
            if (!first) first = &f, op = f.op;
            if (f.line != first->line || strcmp(f.file, first->file) || f.op != op) {
                char m[512];
                snprintf(m, sizeof m, "divergent __syncthreads: threads of a block wait at different barriers (%s:%d and %s:%d)",
                         first->file, first->line, f.file, f.line);
                set_tid(t);
                emu_die(m);
            }
            acc_and &= f.pred != 0, acc_or |= f.pred != 0, count += f.pred != 0;
        }
        if (!at_bar) break;
        for (int t = 0; t < nt; t++) {
            fiber &f = g_f[t];
            if (f.state != BAR) continue;
            f.result = op == 0 ? acc_and : op == 1 ? acc_or : count;
            f.state = RUN;
        }
        (void)done;
    }
}

void emu_run(const emu_config &c, std::function<void()> body) {
    dim3 g = c.grid, b = c.block;
    size_t nt = (size_t)b.x * b.y * b.z;
    if (g_cur >= 0) emu_die("a launch from inside a kernel");
    need_stream(c.stream, "a kernel launch");
    if (!nt || nt > 1024 || b.z > 64 || !g.x || !g.y || !g.z || g.x > 2147483647u || g.y > 65535 ||
        g.z > 65535 || c.shmem > 48 * 1024) {
        emu_set_error(cudaErrorInvalidConfiguration);
        return;
    }
    if (g_f.size() < nt) g_f.resize(nt);
    while (g_stacks.size() < nt) {
        void *s = mmap(NULL, k_stack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (s == MAP_FAILED) emu_die("no memory for the fibers' stacks");
        g_stacks.push_back((char *)s);
    }
    gridDim = g, blockDim = b, g_bx = b.x, g_by = b.y, g_body = &body;
    size_t nb = (size_t)g.x * g.y * g.z;
    std::vector<int> border;
    if (nb <= 1u << 24) make_order(border, nb);
    for (size_t i = 0; i < nb; i++) {
        size_t k = nb <= 1u << 24 ? (size_t)border[i] : i;
        blockIdx.x = (unsigned)(k % g.x), blockIdx.y = (unsigned)(k / g.x % g.y), blockIdx.z = (unsigned)(k / ((size_t)g.x * g.y));
        run_block((int)nt);
    }
    g_body = NULL;
}

/* ---- cuBLAS ------------------------------------------------------------------------ */

struct cublasContext {
    cudaStream_t stream;
    cublasMath_t math;
};

extern "C" cublasStatus_t cublasCreate_v2(cublasHandle_t *h) {
    *h = new cublasContext();
    (*h)->math = CUBLAS_DEFAULT_MATH;
    return CUBLAS_STATUS_SUCCESS;
}
extern "C" cublasStatus_t cublasDestroy_v2(cublasHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
extern "C" cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}
extern "C" cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->math = m;
    return CUBLAS_STATUS_SUCCESS;
}

static float load(const void *p, cudaDataType t, size_t i) {
    if (t == CUDA_R_32F) return ((const float *)p)[i];
    uint16_t h;
    memcpy(&h, (const char *)p + 2 * i, 2);
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* C (m×n, column-major) = alpha·op(A)·op(B) + beta·C; op(A) m×k, op(B) k×n. */
extern "C" cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                       int m, int n, int k, const void *alpha, const void *A,
                                       cudaDataType Atype, int lda, const void *B, cudaDataType Btype,
                                       int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                                       cublasComputeType_t ct, cublasGemmAlgo_t algo) {
    (void)algo;
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    need_stream(h->stream, "cublasGemmEx");
    if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T) || m < 0 ||
        n < 0 || k < 0)
        return CUBLAS_STATUS_INVALID_VALUE;
    int ar = ta == CUBLAS_OP_N ? m : k, br = tb == CUBLAS_OP_N ? k : n;
    if (lda < (ar > 1 ? ar : 1) || ldb < (br > 1 ? br : 1) || ldc < (m > 1 ? m : 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (Atype != Btype || (Atype != CUDA_R_32F && Atype != CUDA_R_16BF) || Ctype != CUDA_R_32F)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    /* f32 accumulation only: TF32 (a compute type or a math mode) is refused */
    if (ct != CUBLAS_COMPUTE_32F || (h->math & CUBLAS_TF32_TENSOR_OP_MATH))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (!m || !n) return CUBLAS_STATUS_SUCCESS;
    size_t es = Atype == CUDA_R_32F ? 4 : 2;
    int ac = ta == CUBLAS_OP_N ? k : m, bc = tb == CUBLAS_OP_N ? n : k;
    if ((k && (dev_range(A, ((size_t)(ac - 1) * lda + ar) * es, "cublasGemmEx A") ||
               dev_range(B, ((size_t)(bc - 1) * ldb + br) * es, "cublasGemmEx B"))) ||
        dev_range(C, ((size_t)(n - 1) * ldc + m) * 4, "cublasGemmEx C"))
        return CUBLAS_STATUS_INVALID_VALUE;
    float al = *(const float *)alpha, be = *(const float *)beta;
    float *c = (float *)C;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float s = 0.0f;
            for (int p = 0; p < k; p++) {
                float a = load(A, Atype, ta == CUBLAS_OP_N ? i + (size_t)p * lda : p + (size_t)i * lda);
                float b = load(B, Btype, tb == CUBLAS_OP_N ? p + (size_t)j * ldb : j + (size_t)p * ldb);
                s += a * b;
            }
            float *o = c + i + (size_t)j * ldc;
            *o = be == 0.0f ? al * s : al * s + be * *o; /* beta 0: C is not read */
        }
    return CUBLAS_STATUS_SUCCESS;
}
