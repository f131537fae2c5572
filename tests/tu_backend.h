/* tu_backend.h — the CPU backend for C tests that need one: opened on first
 * use, closed at exit.  Header-only, like testutil.h. */
#ifndef DV2_TU_BACKEND_H
#define DV2_TU_BACKEND_H

#include <stdio.h>
#include <stdlib.h>
#include "core/dv2.h"
#include "ops/ops.h"

static dv2_backend *tu_be_cpu_;

static void tu_be_close_(void) { dv2_backend_close(tu_be_cpu_); }

static inline const dv2_backend *tu_cpu(void) {
    if (!tu_be_cpu_) {
        dv2_error e = {0};
        if (dv2_backend_open(&tu_be_cpu_, "cpu", NULL, 0, &e)) {
            fprintf(stderr, "cannot open the CPU backend: %s\n", e.msg);
            exit(1);
        }
        atexit(tu_be_close_);
    }
    return tu_be_cpu_;
}

#endif
