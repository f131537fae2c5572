/* cuda_check.cuh — the check macros for CUDA and cuBLAS calls inside
 * kernels/: on failure they record "statement: file:line: reason" in a
 * dv2_error and return a DV2_E* status from the enclosing function (library
 * code never aborts).  DV2_CUDA_SYNC_DEBUG=1 at compile time synchronizes after
 * every launch so an asynchronous fault is reported at its launch. */
#ifndef DV2_CUDA_CHECK_CUH
#define DV2_CUDA_CHECK_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include "core/dv2.h"

#define DV2_CUDA_TRY(err, stmt) do { cudaError_t e_ = (stmt); if (e_ != cudaSuccess) \
    return dv2_error_set((err), e_ == cudaErrorMemoryAllocation ? DV2_ENOMEM : DV2_EIO, \
        "%s: %s:%d: %s", #stmt, __FILE__, __LINE__, cudaGetErrorString(e_)); } while (0)
#define DV2_CUBLAS_TRY(err, stmt) do { cublasStatus_t s_ = (stmt); if (s_ != CUBLAS_STATUS_SUCCESS) \
    return dv2_error_set((err), DV2_EIO, "%s: %s:%d: cuBLAS status %d", #stmt, __FILE__, __LINE__, (int)s_); } while (0)
#ifdef DV2_CUDA_SYNC_DEBUG
#define DV2_LAUNCH_TRY(err) do { DV2_CUDA_TRY(err, cudaGetLastError()); DV2_CUDA_TRY(err, cudaDeviceSynchronize()); } while (0)
#else
#define DV2_LAUNCH_TRY(err) DV2_CUDA_TRY(err, cudaGetLastError())
#endif

#endif
