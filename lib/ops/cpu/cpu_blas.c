/* cpu_blas.c — the OpenBLAS core against the CPU's instruction sets (see
 * cpu_blas.h). */
#include "ops/cpu/cpu_blas.h"

#include <cblas.h>
#include <stddef.h>
#include <strings.h>

int dv2_cpu_blas_cpu_level(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return DV2_BLAS_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return DV2_BLAS_AVX2;
    if (__builtin_cpu_supports("avx")) return DV2_BLAS_AVX;
#endif
    return DV2_BLAS_SSE;
}

/* OpenBLAS 0.3.x x86-64 core names (driver/others/dynamic.c's corename
 * table) by level. */
static const struct { const char *name; int level; } k_cores[] = {
    {"Katmai", 0}, {"Coppermine", 0}, {"Northwood", 0}, {"Prescott", 0}, {"Banias", 0},
    {"Atom", 0}, {"Core2", 0}, {"Penryn", 0}, {"Dunnington", 0}, {"Nehalem", 0},
    {"Athlon", 0}, {"Opteron", 0}, {"Opteron_SSE3", 0}, {"Barcelona", 0}, {"Nano", 0},
    {"Bobcat", 0},
    {"Sandybridge", 1}, {"Bulldozer", 1}, {"Piledriver", 1}, {"Steamroller", 1},
    {"Haswell", 2}, {"Zen", 2}, {"Excavator", 2},
    {"SkylakeX", 3}, {"Cooperlake", 3}, {"SapphireRapids", 3},
};

int dv2_cpu_blas_core_level(const char *corename) {
    if (!corename) return -1;
    for (size_t i = 0; i < sizeof k_cores / sizeof k_cores[0]; i++)
        if (!strcasecmp(corename, k_cores[i].name)) return k_cores[i].level;
    return -1;
}

const char *dv2_cpu_blas_better_core(const char *corename, int cpu_level) {
    static const char *const target[] = {NULL, "Sandybridge", "Haswell", "SkylakeX"};
    int have = dv2_cpu_blas_core_level(corename);
    if (have < 0 || cpu_level <= have || cpu_level > DV2_BLAS_AVX512) return NULL;
    return target[cpu_level];
}

const char *dv2_cpu_blas_corename(void) { return openblas_get_corename(); }
const char *dv2_cpu_blas_config(void) { return openblas_get_config(); }
