/* backend.c — opening a backend by name (see ops.h). */
#include "ops/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dv2.h"

#ifdef DV2_HAVE_CUDA
static const char *const k_names[] = {"cpu", "cpu-bf16", "cuda", "cuda-bf16"};
#else
static const char *const k_names[] = {"cpu", "cpu-bf16"};
#endif
#define NBACKENDS (sizeof k_names / sizeof k_names[0])

int dv2_backend_cuda_built(void) {
#ifdef DV2_HAVE_CUDA
    return 1;
#else
    return 0;
#endif
}

size_t dv2_backend_count(void) { return NBACKENDS; }
const char *dv2_backend_name_at(size_t i) { return i < NBACKENDS ? k_names[i] : NULL; }

int dv2_backend_known(const char *name) {
    if (!name) return 0;
    if (!strcmp(name, "auto") || !strcmp(name, "cuda") || !strcmp(name, "cuda-bf16")) return 1;
    for (size_t i = 0; i < NBACKENDS; i++)
        if (!strcmp(name, k_names[i])) return 1;
    return 0;
}

/* The CUDA backend `name` ("cuda" or "cuda-bf16"), or DV2_EUNSUPPORTED with
 * the reason in why (a build without CUDA, no device). */
static int open_cuda(dv2_backend **be, const char *name, char *why, size_t n) {
#ifdef DV2_HAVE_CUDA
    return dv2_cuda_backend_new(be, !strcmp(name, "cuda-bf16"), why, n);
#else
    (void)be, (void)name;
    snprintf(why, n, "this build has no CUDA (nvcc was not found or CUDA=0)");
    return DV2_EUNSUPPORTED;
#endif
}

int dv2_backend_open(dv2_backend **be, const char *name, char *desc, size_t n, dv2_error *err) {
    *be = NULL;
    if (!name || !*name) name = "auto";
    if (desc && n) desc[0] = 0;
    char why[256] = "", pick[320] = "";
    if (!strcmp(name, "auto")) {
        int rc = open_cuda(be, "cuda", why, sizeof why);
        if (rc == DV2_OK) {
            name = "cuda";
            snprintf(pick, sizeof pick, ", picked by auto: a CUDA device is present");
        } else {
            if (rc == DV2_ENOMEM) return dv2_error_set(err, rc, "backend cuda: out of memory");
            name = "cpu";
            snprintf(pick, sizeof pick, ", picked by auto: %s", why);
        }
    } else if (!strcmp(name, "cuda") || !strcmp(name, "cuda-bf16")) {
        int rc = open_cuda(be, name, why, sizeof why);
        if (rc == DV2_EUNSUPPORTED)
            return dv2_error_set(err, rc, "--device %s: %s; use --device cpu", name, why);
        if (rc) return dv2_error_set(err, rc, "--device %s: %s", name, *why ? why : "cannot start");
    } else if (strcmp(name, "cpu") && strcmp(name, "cpu-bf16")) {
        return dv2_error_set(err, DV2_EINVAL,
                             "--device: unknown backend '%s' (cpu, cpu-bf16, cuda, cuda-bf16, auto)", name);
    }
    if (!*be && dv2_cpu_backend_new(be, !strcmp(name, "cpu-bf16")))
        return dv2_error_set(err, DV2_ENOMEM, "backend %s: out of memory", name);
    if (desc && n) {
        dv2_backend_info info;
        (*be)->info(*be, &info);
        snprintf(desc, n, "device %s: %s%s", name, info.device, pick);
    }
    return DV2_OK;
}

int dv2_backend_check(const dv2_backend *be, const char *what, dv2_error *err) {
    int rc = be->status(be);
    if (!rc) return DV2_OK;
    if (rc == DV2_ENOMEM)
        return dv2_error_set(err, rc, "%s: an op of the %s backend ran out of memory", what, be->name);
    return dv2_error_set(err, rc, "%s: an op of the %s backend failed (status %d)", what, be->name, rc);
}

void dv2_backend_close(dv2_backend *be) {
    if (!be) return;
    if (be->release) be->release(be);
    free(be);
}
