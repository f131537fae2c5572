/* cuda_runtime.h — host EMULATION of the CUDA pieces the dv2 kernels use
 * (test infrastructure, C++; tests/emu/README).  It stands in for the real
 * cuda_runtime.h when the lib/ops/cuda kernel files are compiled with g++ for
 * build-emu/test_backend_ops_emu: the types and prototypes of the runtime
 * API come from the real <cuda_runtime_api.h>, their bodies from
 * tests/emu/emu.cpp (device memory is host memory); the builtins
 * (threadIdx, blockIdx, blockDim, gridDim, __syncthreads, the warp
 * shuffles, the __f*_rn / __d*_rn intrinsics) are defined here.
 *
 * Each thread block runs as one fiber per GPU thread; the blocks of a
 * launch run one after another, so `static` stands for __shared__.  A
 * fiber runs until it reaches a barrier or a shuffle; a barrier is left
 * when every thread of the block that has not exited waits at it (at the
 * same source line: a divergent barrier is reported), a shuffle when all 32
 * lanes of the warp are at it.  A launch is finished when it returns.
 * EMU_ORDER=reverse (or a number: a seeded shuffle) changes the order in
 * which the blocks of a launch and the threads between two barriers run,
 * so a result that depends on it (a race) differs between two runs.
 *
 * This checks kernel LOGIC (indexing, which thread writes what, barrier
 * placement, shuffle partners, reductions, bf16 rounding points) against
 * the CPU backend.  It is not a GPU: it proves nothing about races between
 * threads that are not separated by a barrier (fibers run one at a time,
 * in a fixed order), about the memory model, stream overlap, launch limits
 * beyond those checked in emu.cpp, or speed. */
#ifndef DV2_EMU_CUDA_RUNTIME_H
#define DV2_EMU_CUDA_RUNTIME_H
#ifndef __cplusplus
#error "the CUDA emulation is C++"
#endif

#include <cuda_runtime_api.h>
#include <vector_functions.h>
#include <vector_types.h>

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <functional>

/* memory spaces: host memory; __shared__ is a static (one block at a time).
 * build.sh moves the zero-initialised statics of the kernel objects (these
 * only) into the section emu_shared, which emu.cpp poisons (0xff bytes)
 * before every block, so a read of shared memory the block did not write
 * shows (g++ ignores a section attribute on the statics of templates) */
#undef __shared__
#define __shared__ static
#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __restrict__
#define __restrict__ __restrict

/* ---- the builtins --------------------------------------------------------- */
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
static const int warpSize = 32;

/* barriers and shuffles are in emu.cpp; a barrier is identified by its
 * source line (the compiler may duplicate a call, never its arguments) */
void emu_syncthreads(const char *file, int line);
int emu_syncthreads_op(int pred, int op, const char *file, int line); /* op 0: and, 1: or, 2: count */
uint64_t emu_shfl(uint64_t bits, int mode, int arg, unsigned mask, int width);

#define __syncthreads() emu_syncthreads(__FILE__, __LINE__)
#define __syncthreads_and(p) emu_syncthreads_op((p), 0, __FILE__, __LINE__)
#define __syncthreads_or(p) emu_syncthreads_op((p), 1, __FILE__, __LINE__)
#define __syncthreads_count(p) emu_syncthreads_op((p), 2, __FILE__, __LINE__)
static inline void __syncwarp(unsigned mask = 0xffffffffu) { (void)emu_shfl(0, 3, 0, mask, 32); }

template <class T> static inline T emu_shfl_t(T v, int mode, int arg, unsigned mask, int width) {
    static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    b = emu_shfl(b, mode, arg, mask, width);
    T r;
    memcpy(&r, &b, sizeof r);
    return r;
}
template <class T> static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    return emu_shfl_t(v, 0, src, mask, width);
}
template <class T> static inline T __shfl_xor_sync(unsigned mask, T v, int lm, int width = 32) {
    return emu_shfl_t(v, 1, lm, mask, width);
}
template <class T> static inline T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32) {
    return emu_shfl_t(v, 2, (int)d, mask, width);
}
template <class T> static inline T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32) {
    return emu_shfl_t(v, 4, (int)d, mask, width);
}

/* IEEE round-to-nearest arithmetic without contraction (g++ for x86-64
 * emits no FMA without -mfma; the volatile keeps it so under any flags) */
static inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
static inline float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
static inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
static inline float __fdiv_rn(float a, float b) { volatile float r = a / b; return r; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline float __frcp_rn(float a) { volatile float r = 1.0f / a; return r; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline double __dadd_rn(double a, double b) { volatile double r = a + b; return r; }
static inline double __dsub_rn(double a, double b) { volatile double r = a - b; return r; }
static inline double __dmul_rn(double a, double b) { volatile double r = a * b; return r; }
static inline double __ddiv_rn(double a, double b) { volatile double r = a / b; return r; }
static inline double __dsqrt_rn(double a) { return sqrt(a); }
static inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
static inline unsigned __float_as_uint(float x) { unsigned u; memcpy(&u, &x, 4); return u; }
static inline float __uint_as_float(unsigned u) { float x; memcpy(&x, &u, 4); return x; }
static inline int __float_as_int(float x) { int u; memcpy(&u, &x, 4); return u; }
static inline float __int_as_float(int u) { float x; memcpy(&x, &u, 4); return x; }
static inline long long __double_as_longlong(double x) { long long u; memcpy(&u, &x, 8); return u; }
static inline double __longlong_as_double(long long u) { double x; memcpy(&x, &u, 8); return x; }

/* ---- launches (conv.py rewrites NAME<<<cfg>>>(args) into emu_run) -------- */
struct emu_config { dim3 grid, block; size_t shmem; cudaStream_t stream; };
static inline emu_config emu_cfg(dim3 grid, dim3 block, size_t shmem = 0, cudaStream_t st = 0) {
    emu_config c = {grid, block, shmem, st};
    return c;
}
/* Runs body once per thread of every block of c; a bad configuration is a
 * launch error (cudaGetLastError), as on the device. */
void emu_run(const emu_config &c, std::function<void()> body);

#endif
