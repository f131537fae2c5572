/* test_blas.c — the OpenBLAS kernel check (ops/cpu/cpu_blas.h).
 *
 *   test_blas                 the decision table (fallback core -> the core to ask for)
 *   test_blas --better NAME   prints the core dv2 would ask for instead of NAME on
 *                             this CPU ("-" to keep NAME)
 *   test_blas --gemm FILE     writes C = A B of fixed seeded 67x97 * 97x131 f32
 *                             matrices to FILE (raw floats), and the core to stdout
 *   test_blas --compare A B   exit 1 if two such files differ by more than the
 *                             float error bound (kernels differ in summation order)
 * tests/t_blas.sh runs the GEMM under a fallback core and under the corrected
 * one and the programs' re-execution. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/rng.h"
#include "ops/cpu/cpu_blas.h"
#include "testutil.h"

static void check(const char *core, int level, const char *want) {
    const char *got = dv2_cpu_blas_better_core(core, level);
    tu_checks++;
    if ((got == NULL) != (want == NULL) || (got && strcmp(got, want))) {
        tu_failures++;
        fprintf(stderr, "better_core(%s, level %d) = %s, want %s\n", core, level,
                got ? got : "keep", want ? want : "keep");
    }
}

enum { M = 67, K = 97, N = 131 };
static float g_a[M * K], g_b[K * N];

static void make_ab(void) {
    dv2_rng r;
    dv2_rng_seed(&r, 7, 0);
    for (int i = 0; i < M * K; i++) g_a[i] = (float)dv2_rng_normal(&r);
    for (int i = 0; i < K * N; i++) g_b[i] = (float)dv2_rng_normal(&r);
}

/* The float error bound of one entry: K·FLT_EPSILON·Σ_k |a_ik||b_kj| (any
 * summation order).  Kernels of different cores differ in order and in FMA
 * use, so two results agree within twice it, and each is within it of the
 * double-precision product. */
static double bound(int i, int j) {
    double s = 0;
    for (int k = 0; k < K; k++) s += fabs((double)g_a[i * K + k] * g_b[k * N + j]);
    return K * 1.1920929e-07 * s;
}

static int gemm(const char *path) {
    static float c[M * N];
    make_ab();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, g_a, K, g_b, N, 0.0f, c, N);
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double ref = 0;
            for (int k = 0; k < K; k++) ref += (double)g_a[i * K + k] * g_b[k * N + j];
            double e = fabs(c[i * N + j] - ref) / bound(i, j);
            if (!(e <= worst)) worst = e;
        }
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(c, sizeof(float), M * N, f) == M * N;
    if (f && fclose(f)) ok = 0;
    printf("%s\n", dv2_cpu_blas_corename());
    fprintf(stderr, "%s: error against double %.3g of the float bound\n", dv2_cpu_blas_corename(), worst);
    return ok && worst <= 1 ? 0 : 1;
}

static int load(const char *path, float *x) {
    FILE *f = fopen(path, "rb");
    int ok = f && fread(x, sizeof(float), M * N, f) == M * N;
    if (f) fclose(f);
    return ok;
}

static int compare(const char *pa, const char *pb) {
    static float a[M * N], b[M * N];
    if (!load(pa, a) || !load(pb, b)) { fprintf(stderr, "cannot read %s or %s\n", pa, pb); return 1; }
    make_ab();
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double e = fabs((double)a[i * N + j] - b[i * N + j]) / (2 * bound(i, j));
            if (!(e <= worst)) worst = e;
        }
    printf("max difference %.3g of the bound\n", worst);
    return worst <= 1 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--better")) {
        const char *w = dv2_cpu_blas_better_core(argv[2], dv2_cpu_blas_cpu_level());
        printf("%s\n", w ? w : "-");
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "--gemm")) return gemm(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "--compare")) return compare(argv[2], argv[3]);

    /* The Xeon case: Prescott reported on an AVX-512 CPU. */
    check("Prescott", DV2_BLAS_AVX512, "SkylakeX");
    check("prescott", DV2_BLAS_AVX512, "SkylakeX");      /* case-insensitive */
    check("Nehalem", DV2_BLAS_AVX2, "Haswell");
    check("Core2", DV2_BLAS_AVX, "Sandybridge");
    check("Sandybridge", DV2_BLAS_AVX2, "Haswell");
    check("Haswell", DV2_BLAS_AVX512, "SkylakeX");       /* an AVX-512 Xeon seen as Haswell */
    check("Zen", DV2_BLAS_AVX512, "SkylakeX");           /* AVX-512 Zen seen as Zen */
    /* the right core, or a better one: keep */
    check("Haswell", DV2_BLAS_AVX2, NULL);
    check("Zen", DV2_BLAS_AVX2, NULL);
    check("SkylakeX", DV2_BLAS_AVX512, NULL);
    check("Cooperlake", DV2_BLAS_AVX512, NULL);
    check("SapphireRapids", DV2_BLAS_AVX512, NULL);
    check("SkylakeX", DV2_BLAS_AVX2, NULL);              /* never downgrade */
    check("Prescott", DV2_BLAS_SSE, NULL);
    /* unknown names may be newer than the table: keep */
    check("Zen5", DV2_BLAS_AVX512, NULL);
    check("", DV2_BLAS_AVX512, NULL);
    check(NULL, DV2_BLAS_AVX512, NULL);
    if (dv2_cpu_blas_core_level(dv2_cpu_blas_corename()) < 0)
        fprintf(stderr, "note: this OpenBLAS reports core '%s', not in the table\n", dv2_cpu_blas_corename());
    printf("this CPU: level %d; OpenBLAS: %s (%s)\n", dv2_cpu_blas_cpu_level(), dv2_cpu_blas_corename(),
           dv2_cpu_blas_config());
    return tu_finish("test_blas");
}
