/* cpu_optim.c — CPU backend: elementwise helpers, reductions for
 * gradient clipping and overflow checks, the AdamW step (spec §10.1) and
 * the teacher EMA (spec §11). */
#include <math.h>
#include "ops/cpu/cpu.h"

void dv2_cpu_add(float *y, const float *x, size_t n) {
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR(n))
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void dv2_cpu_scale(float *x, float a, size_t n) {
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR(n))
    for (size_t i = 0; i < n; i++) x[i] *= a;
}

/* 256 fixed chunks, each summed in double, then added in order: the value
 * does not depend on the number of threads. */
double dv2_cpu_sumsq(const float *x, size_t n) {
    double part[256];
    size_t per = (n + 255) / 256;
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR(n))
    for (int b = 0; b < 256; b++) {
        size_t s0 = (size_t)b * per, e = s0 + per < n ? s0 + per : n;
        double s = 0;
        for (size_t i = s0; i < e; i++) s += (double)x[i] * x[i];
        part[b] = s;
    }
    double total = 0;
    for (int b = 0; b < 256; b++) total += part[b];
    return total;
}

int dv2_cpu_all_finite(const float *x, size_t n) {
    int ok = 1;
    #pragma omp parallel for schedule(static) reduction(&& : ok) if (DV2_CPU_PAR(n))
    for (size_t i = 0; i < n; i++) ok = ok && isfinite(x[i]);
    return ok;
}

void dv2_cpu_adamw_step(float *p, float *m, float *v, const float *g, size_t n, float lr,
                        float wd, float beta1, float beta2, float eps, int t) {
    double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
    float step = (float)(lr / bc1), rbc2 = (float)(1.0 / sqrt(bc2)), decay = 1.0f - lr * wd;
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR(n))
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        p[i] *= decay;
        p[i] -= step * m[i] / (sqrtf(v[i]) * rbc2 + eps);
    }
}

void dv2_cpu_ema_update(float *teacher, const float *student, size_t n, float mom) {
    #pragma omp parallel for schedule(static) if (DV2_CPU_PAR(n))
    for (size_t i = 0; i < n; i++) teacher[i] = mom * teacher[i] + (1.0f - mom) * student[i];
}
