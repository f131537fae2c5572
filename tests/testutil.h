/* testutil.h — tiny harness for C tests: CHECK macros that count failures,
 * element-wise tensor comparison (atol + rtol*|ref| and NMSE), and the
 * exit-code protocol of tests/run.sh (0 pass, 77 skip, 1 fail).  Header-only
 * on purpose: each test is one translation unit, nothing here is in libdv2. */
#ifndef DV2_TESTUTIL_H
#define DV2_TESTUTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int tu_failures = 0;
static int tu_checks = 0;

#define CHECK(cond) do { tu_checks++; if (!(cond)) { tu_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECKF(cond, ...) do { tu_checks++; if (!(cond)) { tu_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

/* Compares got against ref: every element within atol + rtol*|ref| (NaN never
 * passes), and prints the worst element and the NMSE.  Returns 1 if close. */
static inline int tu_close(const char *what, const float *got, const float *ref, long n,
                           double atol, double rtol) {
    double num = 0, den = 0, worst = 0; long wi = -1, bad = 0;
    for (long i = 0; i < n; i++) {
        double g = got[i], r = ref[i], d = fabs(g - r);
        num += d * d; den += r * r;
        double lim = atol + rtol * fabs(r);
        if (!(d <= lim)) { bad++; if (wi < 0 || !(d / lim <= worst)) { worst = d / lim; wi = i; } }
    }
    tu_checks++;
    if (bad) {
        tu_failures++;
        fprintf(stderr, "%s: %ld/%ld elements off (worst [%ld] got %.8g ref %.8g), nmse %.3g\n",
                what, bad, n, wi, (double)got[wi], (double)ref[wi], den > 0 ? num / den : num);
        return 0;
    }
    return 1;
}

static inline int tu_finish(const char *name) {
    if (tu_failures) {
        fprintf(stderr, "%s: %d of %d checks failed\n", name, tu_failures, tu_checks);
        return 1;
    }
    fprintf(stderr, "%s: %d checks passed\n", name, tu_checks);
    return 0;
}

#define TU_SKIP(...) do { printf("skip: "); printf(__VA_ARGS__); printf("\n"); exit(77); } while (0)

#endif
