/* cpu_vec.c — the CPU backend's vector math (see cpu_vec.h): the body in
 * cpu_vec_body.h compiled three times on GCC vectors of the register width:
 * for the x86-64 baseline (SSE2, 4 floats), AVX2 (8) and AVX-512F (16);
 * other architectures get the 4-float copy only.  No variant fuses a
 * multiply and an add (below), so all give the same bits; test_backend_ops
 * checks them against each other. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ops/cpu/cpu_vec.h"

/* no fused multiply-add in any variant: GCC keeps contraction off under
 * -std=c11; clang contracts within a statement unless told not to */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define EXP_LOG2E 1.44269504088896341f
#define EXP_MAGIC 12582912.0f /* 1.5·2^23: adding and subtracting rounds to an integer */
#define EXP_LN2_HI 0.693145751953125f
#define EXP_LN2_LO 1.428606765330187e-06f

#define VEC_ATTR
#define VEC(x) x##_base
#define VW 4
#if defined(__x86_64__) || defined(__i386__)
#define VEC_NAME "sse2"
#else
#define VEC_NAME "generic"
#endif
#include "ops/cpu/cpu_vec_body.h"
#undef VEC_ATTR
#undef VEC
#undef VEC_NAME
#undef VW

#if defined(__x86_64__) && defined(__GNUC__)
#define DV2_VEC_X86 1
#define VEC_ATTR __attribute__((target("avx2")))
#define VEC(x) x##_avx2
#define VW 8
#define VEC_NAME "avx2"
#include "ops/cpu/cpu_vec_body.h"
#undef VEC_ATTR
#undef VEC
#undef VEC_NAME
#undef VW

#define VEC_ATTR __attribute__((target("avx512f")))
#define VEC(x) x##_avx512
#define VW 16
#define VEC_NAME "avx512"
#include "ops/cpu/cpu_vec_body.h"
#undef VEC_ATTR
#undef VEC
#undef VEC_NAME
#undef VW
#endif

const dv2_cpu_vec_ops *dv2_cpu_vec_get(const char *name) {
    if (!name) return NULL;
    if (!strcmp(name, ops_base.name)) return &ops_base;
#ifdef DV2_VEC_X86
    __builtin_cpu_init();
    if (!strcmp(name, "avx2")) return __builtin_cpu_supports("avx2") ? &ops_avx2 : NULL;
    if (!strcmp(name, "avx512")) return __builtin_cpu_supports("avx512f") ? &ops_avx512 : NULL;
#endif
    return NULL;
}

static const dv2_cpu_vec_ops *chosen;

static void choose(void) {
    const char *want = getenv("DV2_CPU_ISA");
    const dv2_cpu_vec_ops *best = &ops_base;
#ifdef DV2_VEC_X86
    if (dv2_cpu_vec_get("avx512")) best = &ops_avx512;
    else if (dv2_cpu_vec_get("avx2")) best = &ops_avx2;
#endif
    chosen = best;
    if (want && *want) {
        const dv2_cpu_vec_ops *v = dv2_cpu_vec_get(want);
        if (v) chosen = v;
        else fprintf(stderr, "dv2: DV2_CPU_ISA=%s is not available on this CPU; using %s\n",
                     want, best->name);
    }
}

const dv2_cpu_vec_ops *dv2_cpu_vec(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, choose);
    return chosen;
}
