/* dv2.h — what every part of libdv2 shares: status codes, the error record
 * that library functions fill instead of printing, version and build features.
 *
 * Library code never prints and never exits: a failing function returns a
 * negative DV2_E* status and, when given a dv2_error, writes one line saying
 * what failed ("shard.000003.dv2s: record 17 at offset 4096: checksum
 * mismatch").  Programs in cmd/ decide the message prefix and the exit code. */
#ifndef DV2_H
#define DV2_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DV2_VERSION "0.1.0"

enum {
    DV2_OK = 0,
    DV2_EIO = -1,          /* read/write/open failed (errno-level) */
    DV2_ECORRUPT = -2,     /* data is damaged or not in the expected format */
    DV2_EINVAL = -3,       /* caller gave an invalid argument or combination */
    DV2_ENOMEM = -4,       /* allocation failed or a size is beyond limits */
    DV2_EUNSUPPORTED = -5, /* valid request, not supported by this build */
    DV2_EINTR = -6,        /* interrupted by a signal the program asked for */
    DV2_ENOTFOUND = -7,    /* a named thing (tensor, id, file) is absent */
    DV2_EEXIST = -8,       /* output exists and overwriting was not asked */
};

typedef struct dv2_error {
    int code;       /* last DV2_E* status, DV2_OK when clear */
    char msg[1024]; /* one line, no trailing newline */
} dv2_error;

/* Records code and a printf-style message in err (NULL err is allowed) and
 * returns code, so callers can write `return dv2_error_set(err, ...)`. */
int dv2_error_set(dv2_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* As dv2_error_set, with ": strerror(errno_value)" appended. */
int dv2_error_errno(dv2_error *err, int code, int errno_value, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prefixes the current message with "prefix: " (context from an outer layer). */
int dv2_error_prefix(dv2_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void dv2_error_clear(dv2_error *err);
const char *dv2_status_str(int code);

/* One line of compiled-in features, e.g. "cuda=sm_90a nccl=no mpi=yes faiss=yes openmp=yes". */
const char *dv2_build_features(void);

/* Checked allocation helpers: return NULL on overflow or failure. */
void *dv2_malloc_array(size_t n, size_t size);
void *dv2_calloc_array(size_t n, size_t size);

/* Monotonic seconds (CLOCK_MONOTONIC). */
double dv2_now(void);

#ifdef __cplusplus
}
#endif
#endif
