/* backend.c — opening a backend by name (see ops.h). */
#include "ops/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dv2.h"

static const char *const k_names[] = {"cpu", "cpu-bf16"};
#define NBACKENDS (sizeof k_names / sizeof k_names[0])

size_t dv2_backend_count(void) { return NBACKENDS; }
const char *dv2_backend_name_at(size_t i) { return i < NBACKENDS ? k_names[i] : NULL; }

int dv2_backend_known(const char *name) {
    if (!name) return 0;
    if (!strcmp(name, "auto") || !strcmp(name, "cuda")) return 1;
    for (size_t i = 0; i < NBACKENDS; i++)
        if (!strcmp(name, k_names[i])) return 1;
    return 0;
}

int dv2_backend_open(dv2_backend **be, const char *name, char *desc, size_t n, dv2_error *err) {
    *be = NULL;
    if (!name || !*name) name = "auto";
    if (desc && n) desc[0] = 0;
    const char *why = "";
    if (!strcmp(name, "auto")) {
        name = "cpu";
        why = ", picked by auto: the CUDA backend of the model ops is not built yet";
    } else if (!strcmp(name, "cuda")) {
        return dv2_error_set(err, DV2_EUNSUPPORTED,
                             "--device cuda: the CUDA backend of the model ops is not built yet "
                             "(the GPU runs only the k-NN search); use --device cpu");
    }
    int bf16;
    if (!strcmp(name, "cpu")) bf16 = 0;
    else if (!strcmp(name, "cpu-bf16")) bf16 = 1;
    else
        return dv2_error_set(err, DV2_EINVAL, "--device: unknown backend '%s' (cpu, cpu-bf16, cuda, auto)",
                             name);
    if (dv2_cpu_backend_new(be, bf16))
        return dv2_error_set(err, DV2_ENOMEM, "backend %s: out of memory", name);
    if (desc && n) {
        dv2_backend_info info;
        (*be)->info(*be, &info);
        snprintf(desc, n, "device %s: %s%s", name, info.device, why);
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
