/* test_train_collapse.c — the collapse diagnostics (lib/train/collapse.h) on
 * constructed inputs: uniform targets, every row one-hot on the same
 * prototype, one-hot on distinct prototypes, identical and orthogonal class
 * tokens, identical, orthogonal and antipodal prototypes — each through the
 * backend's collapse_stats entry (on device copies), on every backend of the
 * build this machine can open. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "train/collapse.h"
#include "testutil.h"

#define NR 6
#define KK 8

static int near(double a, double b) { return fabs(a - b) <= 1e-9 + 1e-6 * fabs(b); }

static const dv2_backend *g_be;

/* n floats of h on the device (NULL for NULL). */
static float *up(const float *h, size_t n) {
    if (!h) return NULL;
    float *d = g_be->alloc(g_be, sizeof(float) * (n ? n : 1));
    CHECK(d && g_be->to_device(g_be, d, h, sizeof(float) * n) == 0);
    return d;
}

/* collapse_stats on device copies of the host inputs; the slots back in v. */
static void stats(double *v, const float *q, const float *cls, const float *g, const float *pv, int N,
                  int K, int D, int d) {
    float *dq = up(q, (size_t)N * K), *dc = up(cls, (size_t)N * D);
    float *dg = up(g, (size_t)K), *dv = up(pv, (size_t)K * d);
    double *out = g_be->alloc(g_be, sizeof(double) * DV2_STATS_N);
    CHECK(g_be->collapse_stats(g_be, out, dq, NULL, dc, dg, dv, N, K, D, d) == 0);
    CHECK(g_be->to_host(g_be, v, out, sizeof(double) * DV2_STATS_N) == 0);
    g_be->free(g_be, dq), g_be->free(g_be, dc), g_be->free(g_be, dg), g_be->free(g_be, dv);
    g_be->free(g_be, out);
}

static void targets(dv2_collapse_stats *st, const float *q, int n, int K) {
    double v[DV2_STATS_N];
    stats(v, q, NULL, NULL, NULL, n, K, 1, 1);
    dv2_collapse_from_slots(st, v);
}

static void spread(double *sd, double *cs, const float *x, int n, int dim) {
    double v[DV2_STATS_N];
    stats(v, NULL, x, NULL, NULL, n, 1, dim, 1);
    *sd = v[DV2_STAT_CLS_STD], *cs = v[DV2_STAT_CLS_COS];
}

static void prototypes(dv2_collapse_stats *st, const float *g, const float *v, int K, int d) {
    double o[DV2_STATS_N];
    stats(o, NULL, NULL, g, v, 0, K, 1, d);
    dv2_collapse_from_slots(st, o);
}

static void run(void) {
    float q[NR * KK];
    dv2_collapse_stats st;

    /* uniform targets: both entropies ln K; argmax ties go to prototype 0 */
    for (int i = 0; i < NR * KK; i++) q[i] = 1.0f / KK;
    targets(&st, q, NR, KK);
    CHECKF(near(st.tgt_entropy, log(KK)) && near(st.tgt_mean_entropy, log(KK)), "%g %g", st.tgt_entropy,
           st.tgt_mean_entropy);
    CHECK(st.n_argmax == 1);

    /* one prototype for all: both entropies 0, one argmax */
    memset(q, 0, sizeof q);
    for (int i = 0; i < NR; i++) q[i * KK + 3] = 1;
    targets(&st, q, NR, KK);
    CHECK(near(st.tgt_entropy, 0) && near(st.tgt_mean_entropy, 0) && st.n_argmax == 1);

    /* sharp and spread: each row one-hot on its own prototype */
    memset(q, 0, sizeof q);
    for (int i = 0; i < NR; i++) q[i * KK + i] = 1;
    targets(&st, q, NR, KK);
    CHECKF(near(st.tgt_entropy, 0) && near(st.tgt_mean_entropy, log(NR)) && st.n_argmax == NR, "%g %d",
           st.tgt_mean_entropy, st.n_argmax);

    /* half-and-half rows over two prototypes: H = ln 2 per row and of the mean */
    memset(q, 0, sizeof q);
    for (int i = 0; i < NR; i++) q[i * KK + 1] = 0.5f, q[i * KK + 5] = 0.5f;
    targets(&st, q, NR, KK);
    CHECK(near(st.tgt_entropy, log(2)) && near(st.tgt_mean_entropy, log(2)));

    /* identical rows: no spread, cosine 1 */
    float x[NR * KK];
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < KK; j++) x[i * KK + j] = (float)(j + 1);
    double sd, cs;
    spread(&sd, &cs, x, NR, KK);
    CHECKF(near(sd, 0) && near(cs, 1), "%g %g", sd, cs);
    /* orthogonal rows e_i: cosine 0; column j < NR has one 1 among NR rows:
     * std sqrt(1/NR - 1/NR²), columns j >= NR are 0 */
    memset(x, 0, sizeof x);
    for (int i = 0; i < NR; i++) x[i * KK + i] = 1;
    spread(&sd, &cs, x, NR, KK);
    double want = NR * sqrt(1.0 / NR - 1.0 / (NR * NR)) / KK;
    CHECKF(near(sd, want) && near(cs, 0), "%g (want %g) %g", sd, want, cs);
    /* two antipodal rows: cosine -1 */
    float y[2 * 3] = {1, 2, 3, -1, -2, -3};
    spread(&sd, &cs, y, 2, 3);
    CHECK(near(cs, -1));

    /* prototypes: K = 6 in d = 8; g = 1 (norm 1, cv 0) */
    float g[NR], v[NR * KK];
    for (int k = 0; k < NR; k++) g[k] = 1;
    memset(v, 0, sizeof v);
    for (int k = 0; k < NR; k++) v[k * KK + k] = (float)(k + 1); /* orthogonal, unequal |v| */
    prototypes(&st, g, v, NR, KK);
    CHECKF(near(st.proto_norm_mean, 1) && near(st.proto_norm_cv, 0) && near(st.proto_cos_mean, 0) &&
               near(st.proto_cos_rms, 0), "%g %g %g %g", st.proto_norm_mean, st.proto_norm_cv, st.proto_cos_mean,
           st.proto_cos_rms);
    for (int k = 0; k < NR; k++) /* all the same direction */
        for (int j = 0; j < KK; j++) v[k * KK + j] = (float)((j + 1) * (k + 1));
    prototypes(&st, g, v, NR, KK);
    CHECKF(near(st.proto_cos_mean, 1) && near(st.proto_cos_rms, 1), "%g %g", st.proto_cos_mean, st.proto_cos_rms);
    /* ±e_0, ±e_1, ±e_2 with g = 1, 3, 1, 3, 1, 3: pairs (k, l) with cos -1: 3 unordered of 15, others 0 */
    memset(v, 0, sizeof v);
    for (int k = 0; k < NR; k++) v[k * KK + k / 2] = k % 2 ? -1.0f : 1.0f, g[k] = k % 2 ? 3.0f : 1.0f;
    prototypes(&st, g, v, NR, KK);
    CHECKF(near(st.proto_norm_mean, 2) && near(st.proto_norm_cv, 0.5) && near(st.proto_cos_mean, -3.0 / 15) &&
               near(st.proto_cos_rms, sqrt(3.0 / 15)), "%g %g %g %g", st.proto_norm_mean, st.proto_norm_cv,
           st.proto_cos_mean, st.proto_cos_rms);

    /* keys: 10 distinct names in the documented order */
    const char *keys[DV2_COLLAPSE_NKEYS];
    double vals[DV2_COLLAPSE_NKEYS];
    st.n_argmax = 4;
    dv2_collapse_keys(&st, keys, vals);
    CHECK(strcmp(keys[0], "tgt_entropy") == 0 && strcmp(keys[2], "n_argmax") == 0 && vals[2] == 4);
    for (int i = 0; i < DV2_COLLAPSE_NKEYS; i++)
        for (int j = 0; j < i; j++) CHECK(strcmp(keys[i], keys[j]) != 0);
}

int main(void) {
    for (size_t b = 0; b < dv2_backend_count(); b++) {
        dv2_backend *be;
        dv2_error err = {0};
        int rc = dv2_backend_open(&be, dv2_backend_name_at(b), NULL, 0, &err);
        if (rc == DV2_EUNSUPPORTED) { /* a CUDA build without a GPU */
            printf("skip backend %s: %s\n", dv2_backend_name_at(b), err.msg);
            continue;
        }
        CHECK(rc == 0);
        g_be = be;
        run();
        dv2_backend_close(be);
    }
    return tu_finish("test_train_collapse");
}
