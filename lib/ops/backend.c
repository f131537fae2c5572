/* backend.c — opening a backend by name (see ops.h). */
#include "ops/ops.h"

#include <stdio.h>
#include <string.h>

#include "core/dv2.h"

static const dv2_backend *const k_backends[] = {&dv2_backend_cpu, &dv2_backend_cpu_bf16};
#define NBACKENDS (sizeof k_backends / sizeof k_backends[0])

size_t dv2_backend_count(void) { return NBACKENDS; }
const dv2_backend *dv2_backend_at(size_t i) { return i < NBACKENDS ? k_backends[i] : NULL; }

int dv2_backend_known(const char *name) {
    if (!name) return 0;
    if (!strcmp(name, "auto") || !strcmp(name, "cuda")) return 1;
    for (size_t i = 0; i < NBACKENDS; i++)
        if (!strcmp(name, k_backends[i]->name)) return 1;
    return 0;
}

int dv2_backend_open(const dv2_backend **be, const char *name, char *desc, size_t n,
                     dv2_error *err) {
    if (!name || !*name) name = "auto";
    if (desc && n) desc[0] = 0;
    if (!strcmp(name, "auto")) {
        *be = &dv2_backend_cpu;
        if (desc && n)
            snprintf(desc, n, "device auto: cpu (the CUDA backend of the model ops is not built yet)");
        return DV2_OK;
    }
    if (!strcmp(name, "cuda"))
        return dv2_error_set(err, DV2_EUNSUPPORTED,
                             "--device cuda: the CUDA backend of the model ops is not built yet "
                             "(the GPU runs only the k-NN search); use --device cpu");
    for (size_t i = 0; i < NBACKENDS; i++)
        if (!strcmp(name, k_backends[i]->name)) {
            *be = k_backends[i];
            if (desc && n) snprintf(desc, n, "device %s", name);
            return DV2_OK;
        }
    return dv2_error_set(err, DV2_EINVAL, "--device: unknown backend '%s' (cpu, cpu-bf16, cuda, auto)",
                         name);
}
