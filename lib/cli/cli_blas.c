/* cli_blas.c — the right OpenBLAS kernels for every program (see
 * ops/cpu/cpu_blas.h): before a program parses its arguments, a fallback core
 * is corrected by re-executing the program with OPENBLAS_CORETYPE set, since
 * OpenBLAS reads it only when it loads.  A user's OPENBLAS_CORETYPE is never
 * changed.  DV2_BLAS_ASSUME_CORE=NAME makes the decision as if OpenBLAS had
 * reported NAME (tests use it to exercise the correction on any machine). */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops/cpu/cpu_blas.h"

static const char *k_levels[] = {"SSE", "AVX", "AVX2", "AVX-512"};

void dv2_cli_blas_fix(char **argv) {
    if (getenv("OPENBLAS_CORETYPE") || getenv("DV2_BLAS_CORE_FROM")) return;
    const char *have = getenv("DV2_BLAS_ASSUME_CORE");
    if (!have || !*have) have = dv2_cpu_blas_corename();
    const char *want = dv2_cpu_blas_better_core(have, dv2_cpu_blas_cpu_level());
    if (!want) return;
    /* DV2_BLAS_CORE_FROM marks the second start (no loop) and tells -v what
     * OpenBLAS had chosen. */
    if (setenv("DV2_BLAS_CORE_FROM", have, 1) || setenv("OPENBLAS_CORETYPE", want, 1)) return;
    execv("/proc/self/exe", argv);
    /* The re-exec failed (no /proc): go on with the fallback kernels. */
    unsetenv("OPENBLAS_CORETYPE");
    setenv("DV2_BLAS_CORE_FROM", "-", 1);
}

void dv2_cli_blas_describe(char *out, size_t n) {
    const char *core = dv2_cpu_blas_corename();
    const char *from = getenv("DV2_BLAS_CORE_FROM");
    int cpu = dv2_cpu_blas_cpu_level();
    if (from && strcmp(from, "-"))
        snprintf(out, n, "%s kernels (OpenBLAS chose %s on this %s CPU; corrected)", core, from,
                 k_levels[cpu]);
    else if (from)
        snprintf(out, n, "%s kernels (a fallback on this %s CPU; re-executing with "
                 "OPENBLAS_CORETYPE failed)", core, k_levels[cpu]);
    else if (getenv("OPENBLAS_CORETYPE"))
        snprintf(out, n, "%s kernels (OPENBLAS_CORETYPE=%s set by the user; CPU level %s)", core,
                 getenv("OPENBLAS_CORETYPE"), k_levels[cpu]);
    else
        snprintf(out, n, "%s kernels (chosen by OpenBLAS; CPU level %s)", core, k_levels[cpu]);
}
