/* dv2.c — error records, status names, build features, checked allocation. */
#include "core/dv2.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int dv2_error_set(dv2_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

int dv2_error_errno(dv2_error *err, int code, int errno_value, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < sizeof err->msg)
            snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", strerror(errno_value));
    }
    return code;
}

int dv2_error_prefix(dv2_error *err, const char *fmt, ...) {
    if (!err) return DV2_OK;
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n + 2 < sizeof err->msg) {
        size_t room = sizeof err->msg - (size_t)n;
        err->msg[n] = ':';
        err->msg[n + 1] = ' ';
        size_t len = strnlen(old, room - 3);
        memcpy(err->msg + n + 2, old, len);
        err->msg[n + 2 + len] = 0;
    }
    return err->code;
}

void dv2_error_clear(dv2_error *err) {
    if (err) { err->code = DV2_OK; err->msg[0] = 0; }
}

const char *dv2_status_str(int code) {
    switch (code) {
    case DV2_OK: return "ok";
    case DV2_EIO: return "input/output error";
    case DV2_ECORRUPT: return "corrupt data";
    case DV2_EINVAL: return "invalid argument";
    case DV2_ENOMEM: return "out of memory or size limit";
    case DV2_EUNSUPPORTED: return "not supported by this build";
    case DV2_EINTR: return "interrupted";
    case DV2_ENOTFOUND: return "not found";
    case DV2_EEXIST: return "already exists";
    default: return "unknown error";
    }
}

const char *dv2_build_features(void) {
    return "cuda="
#ifdef DV2_HAVE_CUDA
        DV2_CUDA_ARCH
#else
        "no"
#endif
        " nccl="
#ifdef DV2_HAVE_NCCL
        "yes"
#else
        "no"
#endif
        " mpi="
#ifdef DV2_HAVE_MPI
        "yes"
#else
        "no"
#endif
        " faiss="
#ifdef DV2_HAVE_FAISS
        "yes"
#else
        "no"
#endif
        " openmp="
#ifdef _OPENMP
        "yes"
#else
        "no"
#endif
        ;
}

void *dv2_malloc_array(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    size_t bytes = n * size;
    return malloc(bytes > 0 ? bytes : 1);
}

void *dv2_calloc_array(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

double dv2_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
