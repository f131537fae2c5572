/* test_loss.c — the DINOv2 losses of lib/model/loss.h against
 *   - the PyTorch oracle tests/ref/fixtures/loss.bin (tests/ref/loss_ref.py):
 *     centered and Sinkhorn-Knopp targets, center EMA, DINO local/global,
 *     iBOT, KoLeo, forward values and autograd gradients;
 *   - a separate straightforward double-precision implementation in this
 *     file, differentiated by central finite differences;
 *   - the sanity values of spec §9 (near-uniform logits: CE ≈ ln K);
 *   - the all-reduce plumbing of Sinkhorn-Knopp (two simulated processes). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/loss.h"
#include "ops/cpu/cpu_loss.h"
#include "core/rng.h"
#include "testutil.h"
#include "tu_backend.h"
#include "ref/fixture.h"

/* ---- the double-precision reference ------------------------------------ */
static double ref_ce(const float *s, const double *sd, const float *q, int K, double tau) {
    double m = -INFINITY, acc = 0, dot = 0, qs = 0;
    for (int k = 0; k < K; k++) { double v = (sd ? sd[k] : s[k]) / tau; if (v > m) m = v; }
    for (int k = 0; k < K; k++) acc += exp((sd ? sd[k] : s[k]) / tau - m);
    double lse = m + log(acc);
    for (int k = 0; k < K; k++) { dot += q[k] * ((sd ? sd[k] : s[k]) / tau); qs += q[k]; }
    return lse * qs - dot;
}

/* DINO local (which=0) or global (which=1) on double student logits. */
static double ref_dino(int which, const double *s, const float *q, int B, int L, int K, double tau) {
    double Z = (2 * L > 1 ? 2 * L : 1) + 2, acc = 0;
    if (which == 0) {
        for (int v = 0; v < L; v++)
            for (int g = 0; g < 2; g++) {
                double m = 0;
                for (int i = 0; i < B; i++)
                    m += ref_ce(NULL, s + ((size_t)v * B + i) * K, q + ((size_t)g * B + i) * K, K, tau);
                acc += m / B;
            }
        return acc / Z;
    }
    for (int r = 0; r < 2 * B; r++) acc += ref_ce(NULL, s + (size_t)r * K, q + (size_t)r * K, K, tau);
    return 2.0 * (acc / (2 * B)) / Z;
}

static double ref_ibot(const double *s, const float *q, const float *w, int M, int K, int ncrops, double tau) {
    double acc = 0;
    for (int j = 0; j < M; j++) acc += w[j] * ref_ce(NULL, s + (size_t)j * K, q + (size_t)j * K, K, tau);
    return acc / ncrops;
}

/* KoLeo with a given neighbour assignment (the argmax is piecewise constant). */
static double ref_koleo(const double *x, const int *nn, int N, int C) {
    double acc = 0;
    for (int i = 0; i < N; i++) {
        int j = nn[i];
        double ni = 0, nj = 0, d = 0;
        for (int c = 0; c < C; c++) { ni += x[i * C + c] * x[i * C + c]; nj += x[j * C + c] * x[j * C + c]; }
        ni = fmax(sqrt(ni), 1e-8);
        nj = fmax(sqrt(nj), 1e-8);
        for (int c = 0; c < C; c++) { double u = x[i * C + c] / ni - x[j * C + c] / nj + 1e-8; d += u * u; }
        acc += log(sqrt(d) + 1e-8);
    }
    return -acc / N;
}

static void to_double(double *d, const float *f, size_t n) { for (size_t i = 0; i < n; i++) d[i] = f[i]; }

/* ---- fixture parity ------------------------------------------------------ */
static void test_fixture(void) {
    fx_file fx;
    char path[4096];
    const char *root = getenv("DV2_ROOT");
    snprintf(path, sizeof path, "%s/tests/ref/fixtures/loss.bin", root ? root : ".");
    if (fx_load(&fx, path) < 0) { CHECK(0); return; }
    float *dims = fx_get(&fx, "dims")->data;
    int B = (int)dims[0], L = (int)dims[1], K = (int)dims[2];
    float tau_s = dims[3], tau_t = dims[4];
    const float *t = fx_get(&fx, "t")->data, *c = fx_get(&fx, "center")->data;
    float *q = malloc(sizeof(float) * 2 * B * K), *work = malloc(sizeof(float) * (K + 1));

    dv2_cpu_softmax_center_forward(q, t, c, 2 * B, K, tau_t);
    tu_close("q_center", q, fx_get(&fx, "q_center")->data, 2L * B * K, 1e-7, 1e-5);
    CHECK(dv2_cpu_sinkhorn_knopp_ws(q, work, t, 2 * B, K, tau_t, 3, 2 * B, NULL, NULL) == 0);
    tu_close("q_sk", q, fx_get(&fx, "q_sk")->data, 2L * B * K, 1e-7, 1e-4);
    dv2_error err = {0};
    memset(q, 0, sizeof(float) * 2 * B * K);
    CHECK(tu_cpu()->sinkhorn_knopp_forward(tu_cpu(), q, t, 2 * B, K, tau_t, 3, 2 * B, NULL, &err) == 0);
    tu_close("q_sk (backend entry)", q, fx_get(&fx, "q_sk")->data, 2L * B * K, 1e-7, 1e-4);

    float *cen = malloc(sizeof(float) * K), *sum = malloc(sizeof(float) * K);
    memcpy(cen, c, sizeof(float) * K);
    dv2_cpu_center_sum(sum, t, 2 * B, K, 1.0f);
    dv2_cpu_center_apply(cen, sum, 1.0f / (2 * B), 0.9f, K);
    tu_close("center EMA", cen, fx_get(&fx, "new_center")->data, K, 1e-6, 1e-5);

    /* DINO with the centered targets */
    const float *qc = fx_get(&fx, "q_center")->data;
    const float *s_l = fx_get(&fx, "s_l")->data, *s_g = fx_get(&fx, "s_g")->data;
    float loc, glo;
    dv2_cpu_dino_forward(&loc, &glo, s_l, s_g, qc, B, L, K, tau_s);
    CHECKF(fabs(loc - fx_get(&fx, "dino_local")->data[0]) < 1e-5 * fabs(loc) + 1e-6, "local %g vs %g", loc,
           fx_get(&fx, "dino_local")->data[0]);
    CHECKF(fabs(glo - fx_get(&fx, "dino_global")->data[0]) < 1e-5 * fabs(glo) + 1e-6, "global %g vs %g", glo,
           fx_get(&fx, "dino_global")->data[0]);
    float glo0;
    dv2_cpu_dino_forward(NULL, &glo0, NULL, s_g, qc, B, 0, K, tau_s);
    CHECKF(fabs(glo0 - fx_get(&fx, "dino_global_L0")->data[0]) < 1e-5 * fabs(glo0) + 1e-6, "global (L=0) %g vs %g",
           glo0, fx_get(&fx, "dino_global_L0")->data[0]);
    float *ds_l = calloc((size_t)L * B * K, sizeof(float)), *ds_g = calloc(2 * (size_t)B * K, sizeof(float));
    dv2_cpu_dino_backward(ds_l, ds_g, 0.7f, 1.3f, s_l, s_g, qc, B, L, K, tau_s);
    tu_close("ds_l", ds_l, fx_get(&fx, "ds_l")->data, (long)L * B * K, 1e-7, 1e-4);
    tu_close("ds_g", ds_g, fx_get(&fx, "ds_g")->data, 2L * B * K, 1e-7, 1e-4);
    /* accumulation: a second call adds the same again */
    dv2_cpu_dino_backward(NULL, ds_g, 0.7f, 1.3f, s_l, s_g, qc, B, L, K, tau_s);
    for (long i = 0; i < 2L * B * K; i++) ds_g[i] *= 0.5f;
    tu_close("ds_g accumulates", ds_g, fx_get(&fx, "ds_g")->data, 2L * B * K, 1e-7, 1e-4);

    /* iBOT with Sinkhorn-Knopp targets, B_tot = M */
    fx_array *wa = fx_get(&fx, "ibot_w");
    int M = (int)wa->n;
    const float *t_p = fx_get(&fx, "t_p")->data, *s_p = fx_get(&fx, "s_p")->data;
    float *q_p = malloc(sizeof(float) * M * K), ib;
    CHECK(dv2_cpu_sinkhorn_knopp_ws(q_p, work, t_p, M, K, tau_t, 3, M, NULL, NULL) == 0);
    tu_close("q_p", q_p, fx_get(&fx, "q_p")->data, (long)M * K, 1e-7, 1e-4);
    const float *q_pr = fx_get(&fx, "q_p")->data;
    dv2_cpu_ibot_forward(&ib, s_p, q_pr, wa->data, M, K, 2 * B, tau_s);
    CHECKF(fabs(ib - fx_get(&fx, "ibot")->data[0]) < 1e-5 * fabs(ib) + 1e-6, "ibot %g vs %g", ib,
           fx_get(&fx, "ibot")->data[0]);
    float *ds_p = calloc((size_t)M * K, sizeof(float));
    dv2_cpu_ibot_backward(ds_p, 0.9f, s_p, q_pr, wa->data, M, K, 2 * B, tau_s);
    tu_close("ds_p", ds_p, fx_get(&fx, "ds_p")->data, (long)M * K, 1e-7, 1e-4);
    dv2_cpu_center_sum(sum, t_p, M, K, 1.0f / M);
    tu_close("ibot center mean", sum, fx_get(&fx, "ibot_center_mean")->data, K, 1e-6, 1e-5);

    /* KoLeo */
    fx_array *xa = fx_get(&fx, "koleo_x");
    int N = (int)xa->dims[0], C = (int)xa->dims[1], nn[16];
    float kl, kwork[64], dx[256] = {0}, nnf[16];
    dv2_cpu_koleo_forward_ws(&kl, nn, kwork, xa->data, N, C);
    CHECKF(fabs(kl - fx_get(&fx, "koleo")->data[0]) < 1e-5 * fabs(kl) + 1e-6, "koleo %g vs %g", kl,
           fx_get(&fx, "koleo")->data[0]);
    for (int i = 0; i < N; i++) nnf[i] = (float)nn[i];
    tu_close("koleo nn", nnf, fx_get(&fx, "koleo_nn")->data, N, 0, 0);
    CHECK(tu_cpu()->koleo_backward(tu_cpu(), dx, 1.7f, xa->data, nn, N, C) == 0);
    tu_close("koleo dx", dx, fx_get(&fx, "koleo_dx")->data, (long)N * C, 1e-6, 1e-4);

    free(q); free(work); free(cen); free(sum); free(ds_l); free(ds_g); free(q_p); free(ds_p);
    fx_free(&fx);
}

/* ---- finite differences against the double reference --------------------- */
static void fill(float *a, size_t n, dv2_rng *r, double sd) { for (size_t i = 0; i < n; i++) a[i] = (float)(sd * dv2_rng_normal(r)); }

static void test_fd(void) {
    dv2_rng r;
    dv2_rng_seed(&r, 7, 1);
    int B = 2, L = 3, K = 13;
    double tau = 0.1, h = 1e-4;
    float t[4 * 13], q[4 * 13], s_l[6 * 13], s_g[4 * 13];
    fill(t, 4 * 13, &r, 0.4);
    fill(s_l, 6 * 13, &r, 1);
    fill(s_g, 4 * 13, &r, 1);
    float zero[13] = {0};
    dv2_cpu_softmax_center_forward(q, t, zero, 2 * B, K, 0.05f);
    float loc, glo;
    double sd[6 * 13];
    dv2_cpu_dino_forward(&loc, &glo, s_l, s_g, q, B, L, K, (float)tau);
    to_double(sd, s_l, 6 * 13);
    CHECKF(fabs(loc - ref_dino(0, sd, q, B, L, K, tau)) < 1e-5, "local %g vs ref", loc);
    to_double(sd, s_g, 4 * 13);
    CHECKF(fabs(glo - ref_dino(1, sd, q, B, L, K, tau)) < 1e-5, "global %g vs ref", glo);

    float ds_l[6 * 13] = {0}, ds_g[4 * 13] = {0}, fd_l[6 * 13], fd_g[4 * 13];
    dv2_cpu_dino_backward(ds_l, ds_g, 1.0f, 1.0f, s_l, s_g, q, B, L, K, (float)tau);
    to_double(sd, s_l, 6 * 13);
    for (int i = 0; i < 6 * 13; i++) {
        double o = sd[i];
        sd[i] = o + h; double p = ref_dino(0, sd, q, B, L, K, tau);
        sd[i] = o - h; double m = ref_dino(0, sd, q, B, L, K, tau);
        sd[i] = o;
        fd_l[i] = (float)((p - m) / (2 * h));
    }
    tu_close("dino local grad vs FD", ds_l, fd_l, 6 * 13, 1e-6, 1e-4);
    to_double(sd, s_g, 4 * 13);
    for (int i = 0; i < 4 * 13; i++) {
        double o = sd[i];
        sd[i] = o + h; double p = ref_dino(1, sd, q, B, L, K, tau);
        sd[i] = o - h; double m = ref_dino(1, sd, q, B, L, K, tau);
        sd[i] = o;
        fd_g[i] = (float)((p - m) / (2 * h));
    }
    tu_close("dino global grad vs FD", ds_g, fd_g, 4 * 13, 1e-6, 1e-4);

    /* iBOT with arbitrary weights */
    int M = 5;
    float s_p[5 * 13], q_p[5 * 13], w[5] = {0.5f, 0.5f, 1.0f / 3, 1.0f / 3, 1.0f / 3}, ib;
    float ds_p[5 * 13] = {0}, fd_p[5 * 13];
    fill(s_p, 5 * 13, &r, 1);
    fill(t, 5 * 13 < 4 * 13 ? 5 * 13 : 4 * 13, &r, 0.4);
    float tp[5 * 13];
    fill(tp, 5 * 13, &r, 0.4);
    dv2_cpu_softmax_center_forward(q_p, tp, zero, M, K, 0.05f);
    dv2_cpu_ibot_forward(&ib, s_p, q_p, w, M, K, 4, (float)tau);
    to_double(sd, s_p, 5 * 13);
    CHECKF(fabs(ib - ref_ibot(sd, q_p, w, M, K, 4, tau)) < 1e-5, "ibot %g vs ref", ib);
    dv2_cpu_ibot_backward(ds_p, 1.0f, s_p, q_p, w, M, K, 4, (float)tau);
    for (int i = 0; i < 5 * 13; i++) {
        double o = sd[i];
        sd[i] = o + h; double p = ref_ibot(sd, q_p, w, M, K, 4, tau);
        sd[i] = o - h; double m = ref_ibot(sd, q_p, w, M, K, 4, tau);
        sd[i] = o;
        fd_p[i] = (float)((p - m) / (2 * h));
    }
    tu_close("ibot grad vs FD", ds_p, fd_p, 5 * 13, 1e-6, 1e-4);
    float ib0 = 1;
    dv2_cpu_ibot_forward(&ib0, s_p, q_p, w, 0, K, 4, (float)tau);
    CHECK(ib0 == 0.0f);

    /* KoLeo: groups of 7 rows, dim 5, one tiny row (norm below eps is not
     * reachable with normal data; a row of norm ~1e-3 exercises scaling) */
    int N = 7, C = 5, nn[7];
    float x[35], kl, kwork[7 * 6], dx[35] = {0}, fd[35];
    double xd[35];
    fill(x, 35, &r, 1);
    for (int c = 0; c < C; c++) x[3 * C + c] *= 1e-3f;
    dv2_cpu_koleo_forward_ws(&kl, nn, kwork, x, N, C);
    to_double(xd, x, 35);
    CHECKF(fabs(kl - ref_koleo(xd, nn, N, C)) < 1e-5, "koleo %g vs ref %g", kl, ref_koleo(xd, nn, N, C));
    /* nn really is the nearest neighbour by cosine */
    for (int i = 0; i < N; i++) {
        double best = -2; int bj = -1;
        for (int j = 0; j < N; j++) {
            if (j == i) continue;
            double g = 0, ni = 0, nj = 0;
            for (int c = 0; c < C; c++) { g += xd[i * C + c] * xd[j * C + c]; ni += xd[i * C + c] * xd[i * C + c]; nj += xd[j * C + c] * xd[j * C + c]; }
            g /= sqrt(ni * nj);
            if (g > best) { best = g; bj = j; }
        }
        CHECKF(nn[i] == bj, "nn[%d] = %d, expected %d", i, nn[i], bj);
    }
    dv2_cpu_koleo_backward_ws(dx, kwork, 1.0f, x, nn, N, C);
    double hk = 1e-6;
    for (int i = 0; i < 35; i++) {
        double o = xd[i];
        xd[i] = o + hk; double p = ref_koleo(xd, nn, N, C);
        xd[i] = o - hk; double m = ref_koleo(xd, nn, N, C);
        xd[i] = o;
        fd[i] = (float)((p - m) / (2 * hk));
    }
    tu_close("koleo grad vs FD", dx, fd, 35, 1e-4, 1e-3);

    /* N = 1: paired with itself, as the reference */
    dv2_cpu_koleo_forward_ws(&kl, nn, kwork, x, 1, C);
    CHECK(nn[0] == 0);
    CHECKF(fabs(kl + log(1e-8 * sqrt(C) + 1e-8)) < 1e-3, "koleo N=1 %g", kl);
}

/* ---- Sinkhorn-Knopp properties and all-reduce ---------------------------- */
static int fake_world = 1;
static int allreduce_twice(float *buf, size_t n, void *ctx) {
    /* two processes holding identical data: the sum is twice the local value */
    (void)ctx;
    for (size_t i = 0; i < n; i++) buf[i] *= (float)fake_world;
    return 0;
}
static int allreduce_fail(float *buf, size_t n, void *ctx) { (void)buf; (void)n; (void)ctx; return DV2_EIO; }

static void test_sinkhorn(void) {
    dv2_rng r;
    dv2_rng_seed(&r, 11, 2);
    int N = 6, K = 40;
    float t[12 * 40], q[12 * 40], q2[12 * 40], work[41];
    fill(t, (size_t)N * K, &r, 0.3);
    CHECK(dv2_cpu_sinkhorn_knopp_ws(q, work, t, N, K, 0.07f, 3, N, NULL, NULL) == 0);
    for (int j = 0; j < N; j++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += q[j * K + k];
        CHECKF(fabs(s - 1) < 1e-5, "row %d sums to %g", j, s);
    }
    /* two processes with identical halves == one process on the doubled batch */
    memcpy(t + N * K, t, sizeof(float) * N * K);
    CHECK(dv2_cpu_sinkhorn_knopp_ws(q2, work, t, 2 * N, K, 0.07f, 3, 2 * N, NULL, NULL) == 0);
    fake_world = 2;
    CHECK(dv2_cpu_sinkhorn_knopp_ws(q, work, t, N, K, 0.07f, 3, 2 * N, allreduce_twice, NULL) == 0);
    tu_close("SK over 2 simulated processes", q, q2, (long)N * K, 1e-7, 1e-5);
    /* a process with no samples still takes part */
    CHECK(dv2_cpu_sinkhorn_knopp_ws(q, work, t, 0, K, 0.07f, 3, 2 * N, allreduce_twice, NULL) == 0);
    CHECK(dv2_cpu_sinkhorn_knopp_ws(q, work, t, N, K, 0.07f, 3, N, allreduce_fail, NULL) == DV2_EIO);
    /* in place */
    memcpy(q, t, sizeof(float) * N * K);
    CHECK(dv2_cpu_sinkhorn_knopp_ws(q, work, q, N, K, 0.07f, 3, N, NULL, NULL) == 0);
    CHECK(dv2_cpu_sinkhorn_knopp_ws(q2, work, t, N, K, 0.07f, 3, N, NULL, NULL) == 0);
    tu_close("SK in place", q, q2, (long)N * K, 0, 0);
}

/* ---- spec §9 sanity values ------------------------------------------------- */
static void test_sanity(void) {
    int B = 2, L = 8, K = 65536, N = 16;
    double lnK = log((double)K);
    dv2_rng r;
    dv2_rng_seed(&r, 3, 3);
    float *t = malloc(sizeof(float) * 2 * B * K), *q = malloc(sizeof(float) * 2 * B * K);
    float *s_l = malloc(sizeof(float) * (size_t)L * B * K), *s_g = malloc(sizeof(float) * 2 * B * K);
    float *cen = calloc(K, sizeof(float));
    /* near-uniform student logits (spread 0.01/tau = 0.1 adds ~0.005 to each CE) */
    fill(t, 2 * (size_t)B * K, &r, 0.06);
    fill(s_l, (size_t)L * B * K, &r, 0.01);
    fill(s_g, 2 * (size_t)B * K, &r, 0.01);
    dv2_cpu_softmax_center_forward(q, t, cen, 2 * B, K, 0.04f);
    float loc, glo;
    dv2_cpu_dino_forward(&loc, &glo, s_l, s_g, q, B, L, K, 0.1f);
    CHECKF(fabs(loc - 16.0 / 18 * lnK) < 0.05, "local %g, expected ~%g", loc, 16.0 / 18 * lnK);
    CHECKF(fabs(glo - 2.0 / 18 * lnK) < 0.02, "global %g, expected ~%g", glo, 2.0 / 18 * lnK);
    /* iBOT: B of the 2B crops masked with N tokens each */
    float *w = malloc(sizeof(float) * B * N), ib;
    for (int j = 0; j < B * N; j++) w[j] = 1.0f / N;
    float *s_p = malloc(sizeof(float) * (size_t)B * N * K), *q_p = malloc(sizeof(float) * (size_t)B * N * K);
    fill(s_p, (size_t)B * N * K, &r, 0.01);
    fill(q_p, (size_t)B * N * K, &r, 0.06);
    CHECK(tu_cpu()->sinkhorn_knopp_forward(tu_cpu(), q_p, q_p, B * N, K, 0.04f, 3, B * N, NULL, NULL) == 0);
    dv2_cpu_ibot_forward(&ib, s_p, q_p, w, B * N, K, 2 * B, 0.1f);
    CHECKF(fabs(ib - 0.5 * lnK) < 0.05, "ibot %g, expected ~%g", ib, 0.5 * lnK);
    /* the total with the default weights */
    dv2_loss_terms lt = {loc, glo, -1.0f, -2.0f, ib, 0};
    dv2_loss_weights wt = dv2_loss_default_weights();
    float tot = dv2_loss_total(&lt, &wt);
    CHECKF(fabs(tot - (loc + glo + 0.1 * (-3.0) + ib)) < 1e-4, "total %g", tot);
    dv2_loss_terms d;
    dv2_loss_total_backward(&d, &wt, 2.0f);
    CHECK(d.dino_local == 2.0f && d.dino_global == 2.0f && fabsf(d.koleo1 - 0.2f) < 1e-7f && d.ibot == 2.0f);
    wt.dino = 0;
    CHECKF(fabs(dv2_loss_total(&lt, &wt) - ib) < 1e-5, "koleo off without dino");
    free(t); free(q); free(s_l); free(s_g); free(cen); free(w); free(q_p); free(s_p);
}

/* Center lag: the center used at iteration it is built from batches 0..it-1. */
static void test_center_lag(void) {
    int N = 4, K = 3;
    float cen[3] = {0}, sum[3], pending[3];
    float t0[12] = {1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3};
    float t1[12] = {5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5};
    /* it 0: targets use cen = 0; then the sum of batch 0 becomes pending */
    dv2_cpu_center_sum(pending, t0, N, K, 1.0f);
    /* it 1: apply pending first */
    dv2_cpu_center_apply(cen, pending, 1.0f / N, 0.9f, K);
    CHECK(fabsf(cen[0] - 0.1f) < 1e-6f && fabsf(cen[2] - 0.3f) < 1e-6f);
    dv2_cpu_center_sum(sum, t1, N, K, 1.0f);
    dv2_cpu_center_apply(cen, sum, 1.0f / N, 0.9f, K);
    CHECK(fabsf(cen[0] - (0.09f + 0.5f)) < 1e-6f);
    dv2_cpu_center_sum(sum, t1, 0, K, 1.0f / 0.0f);
    CHECK(sum[0] == 0.0f && sum[2] == 0.0f);
}

int main(void) {
    test_fixture();
    test_fd();
    test_sinkhorn();
    test_sanity();
    test_center_lag();
    return tu_finish("test_loss");
}
