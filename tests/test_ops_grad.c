/* test_ops_grad.c — every backward of the CPU backend (lib/ops/ops.h) against
 * central finite differences of its forward, on small awkward shapes.
 *
 * For an op y = f(x) we take the scalar L = Σ w·y with fixed random w, run
 * the backward with dout = w into zeroed gradients, and compare with
 * (L(x+h) − L(x−h)) / 2h evaluated element by element (L accumulated in
 * double).  The forward is float32, so h = 1e-2 and the criterion is
 * relative: |num − ana| ≤ 2e-3·max(|num|,|ana|) + 2e-3·(typical |grad|).
 * Also: the backward accumulates (+=): running it twice doubles the result;
 * packed attention equals per-sequence attention; attention against a
 * double-precision loop; AdamW and EMA against scalar formulas. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ops/ops.h"
#include "core/rng.h"
#include "testutil.h"
#include "tu_backend.h"

static const dv2_backend *be;
static dv2_rng rng;

static float *rnd(size_t n, double s) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = (float)(dv2_rng_normal(&rng) * s);
    return p;
}
static float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

/* the op under test: computes the forward output from the current inputs */
typedef void (*fwd_fn)(void);
static float *g_out, *g_w;
static size_t g_nout;
static fwd_fn g_fwd;

static double loss(void) {
    g_fwd();
    double s = 0;
    for (size_t i = 0; i < g_nout; i++) s += (double)g_w[i] * g_out[i];
    return s;
}

/* Checks every `stride`-th element (stride 1: all). */
static void check_grad_stride(const char *what, float *x, size_t n, const float *ana, double h,
                              size_t stride) {
    double typ = 0;
    for (size_t i = 0; i < n; i++) typ += fabs(ana[i]);
    typ = n ? typ / n : 0;
    /* The central difference divides float rounding of the forward output by
     * 2h: each output carries ~FLT_EPSILON relative error with random sign, so
     * the loss (sum of w_i out_i) is off by ~FLT_EPSILON * sqrt(sum (w_i
     * out_i)^2).  Four times that, over 2h, is the floor below which a
     * difference is rounding, not a wrong gradient (which is of order typ). */
    loss();
    double ss = 0;
    for (size_t i = 0; i < g_nout; i++) ss += (double)g_w[i] * g_out[i] * g_w[i] * g_out[i];
    double noise = 4 * FLT_EPSILON * sqrt(ss) / (2 * h);
    int bad = 0;
    double worst = 0;
    size_t wi = 0;
    float *num = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i += stride) {
        float x0 = x[i];
        x[i] = (float)(x0 + h);
        double lp = loss();
        x[i] = (float)(x0 - h);
        double lm = loss();
        x[i] = x0;
        num[i] = (float)((lp - lm) / (2 * h));
        double d = fabs(num[i] - ana[i]);
        double lim = 2e-3 * fmax(fabs(num[i]), fabs(ana[i])) + 2e-3 * typ + noise + 1e-6;
        if (d > lim) bad++;
        if (d / lim > worst) { worst = d / lim; wi = i; }
    }
    tu_checks++;
    if (bad) {
        tu_failures++;
        fprintf(stderr, "%s: %d/%zu gradient elements off (worst [%zu] numeric %.6g analytic %.6g)\n",
                what, bad, n, wi, num[wi], ana[wi]);
    }
    loss(); /* restore outputs */
    free(num);
}

static void check_grad(const char *what, float *x, size_t n, const float *ana, double h) {
    check_grad_stride(what, x, n, ana, h, 1);
}

/* ---- linear ---- */
static int L_N = 5, L_I = 7, L_O = 3;
static float *l_in, *l_w, *l_b;
static float *l_pre;
static void fwd_linear(void) { be->linear_forward(be, g_out, NULL, l_in, l_w, NULL, l_b, L_N, L_I, L_O, 0); }
static void fwd_linear_gelu(void) {
    be->linear_forward(be, g_out, l_pre, l_in, l_w, NULL, l_b, L_N, L_I, L_O, DV2_LINEAR_GELU);
}
static void test_linear(void) {
    l_in = rnd(L_N * L_I, 1); l_w = rnd(L_O * L_I, 1); l_b = rnd(L_O, 1);
    g_nout = L_N * L_O; g_out = zeros(g_nout); g_w = rnd(g_nout, 1); g_fwd = fwd_linear;
    float *din = zeros(L_N * L_I), *dw = zeros(L_O * L_I), *db = zeros(L_O);
    be->linear_backward(be, din, dw, db, NULL, g_w, NULL, l_in, l_w, NULL, L_N, L_I, L_O, 0);
    check_grad("linear din", l_in, L_N * L_I, din, 1e-2);
    check_grad("linear dw", l_w, L_O * L_I, dw, 1e-2);
    check_grad("linear db", l_b, L_O, db, 1e-2);
    /* accumulation: a second call doubles */
    float *dw2 = malloc(sizeof(float) * L_O * L_I);
    memcpy(dw2, dw, sizeof(float) * L_O * L_I);
    be->linear_backward(be, NULL, dw, NULL, NULL, g_w, NULL, l_in, l_w, NULL, L_N, L_I, L_O, 0);
    for (int i = 0; i < L_O * L_I; i++) dw2[i] *= 2;
    tu_close("linear dw accumulates", dw, dw2, L_O * L_I, 1e-6, 1e-6);
    /* din overwrites, and adds with DV2_LINEAR_ACCUMULATE */
    float *din2 = malloc(sizeof(float) * L_N * L_I), *din3 = malloc(sizeof(float) * L_N * L_I);
    for (int i = 0; i < L_N * L_I; i++) din2[i] = 1e3f;
    be->linear_backward(be, din2, NULL, NULL, NULL, g_w, NULL, l_in, l_w, NULL, L_N, L_I, L_O, 0);
    tu_close("linear din overwrites", din2, din, L_N * L_I, 1e-6, 1e-6);
    be->linear_backward(be, din2, NULL, NULL, NULL, g_w, NULL, l_in, l_w, NULL, L_N, L_I, L_O, DV2_LINEAR_ACCUMULATE);
    for (int i = 0; i < L_N * L_I; i++) din3[i] = 2 * din[i];
    tu_close("linear din accumulates when asked", din2, din3, L_N * L_I, 1e-6, 1e-6);
    /* the bias+GELU epilogue: out = GELU(pre), pre = in W^T + b; the
     * backward forms dGELU from the saved pre first */
    l_pre = zeros(g_nout);
    g_fwd = fwd_linear_gelu;
    fwd_linear_gelu();
    float *plain = zeros(g_nout), *work = zeros(g_nout);
    be->linear_forward(be, plain, NULL, l_in, l_w, NULL, l_b, L_N, L_I, L_O, 0);
    tu_close("linear+gelu saves the pre-activation", l_pre, plain, (long)g_nout, 1e-6, 1e-6);
    memset(din, 0, sizeof(float) * L_N * L_I); memset(dw, 0, sizeof(float) * L_O * L_I); memset(db, 0, sizeof(float) * L_O);
    be->linear_backward(be, din, dw, db, work, g_w, l_pre, l_in, l_w, NULL, L_N, L_I, L_O, DV2_LINEAR_GELU);
    check_grad("linear+gelu din", l_in, L_N * L_I, din, 1e-2);
    check_grad("linear+gelu dw", l_w, L_O * L_I, dw, 1e-2);
    check_grad("linear+gelu db", l_b, L_O, db, 1e-2);
    free(l_pre); free(plain); free(work); free(din2); free(din3);
    free(l_in); free(l_w); free(l_b); free(g_out); free(g_w); free(din); free(dw); free(db); free(dw2);
}

/* ---- linear at sizes that cross the 128-row/column GEMM blocks, against
 * double-precision loops (forward, din, dw, db) ---- */
static void check_linear_big(int N, int I, int O) {
    float *in = rnd((size_t)N * I, 1), *w = rnd((size_t)O * I, 1), *b = rnd(O, 1), *g = rnd((size_t)N * O, 1);
    float *out = zeros((size_t)N * O), *din = rnd((size_t)N * I, 1), *dw = rnd((size_t)O * I, 1), *db = rnd(O, 1);
    float *r_out = zeros((size_t)N * O), *r_din = zeros((size_t)N * I), *r_dw = zeros((size_t)O * I), *r_db = zeros(O);
    for (size_t i = 0; i < (size_t)N * I; i++) r_din[i] = din[i];   /* += semantics */
    for (size_t i = 0; i < (size_t)O * I; i++) r_dw[i] = dw[i];
    for (int i = 0; i < O; i++) r_db[i] = db[i];
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double acc = b[o];
            for (int k = 0; k < I; k++) acc += (double)in[(size_t)n * I + k] * w[(size_t)o * I + k];
            r_out[(size_t)n * O + o] = (float)acc;
        }
    for (int n = 0; n < N; n++)
        for (int k = 0; k < I; k++) {
            double acc = 0;
            for (int o = 0; o < O; o++) acc += (double)g[(size_t)n * O + o] * w[(size_t)o * I + k];
            r_din[(size_t)n * I + k] += (float)acc;
        }
    for (int o = 0; o < O; o++) {
        double sb = 0;
        for (int k = 0; k < I; k++) {
            double acc = 0;
            for (int n = 0; n < N; n++) acc += (double)g[(size_t)n * O + o] * in[(size_t)n * I + k];
            r_dw[(size_t)o * I + k] += (float)acc;
        }
        for (int n = 0; n < N; n++) sb += g[(size_t)n * O + o];
        r_db[o] += (float)sb;
    }
    be->linear_forward(be, out, NULL, in, w, NULL, b, N, I, O, 0);
    be->linear_backward(be, din, dw, db, NULL, g, NULL, in, w, NULL, N, I, O, DV2_LINEAR_ACCUMULATE);
    char what[64];
    snprintf(what, sizeof what, "linear %dx%dx%d forward", N, I, O);
    tu_close(what, out, r_out, (long)N * O, 1e-4, 1e-4);
    snprintf(what, sizeof what, "linear %dx%dx%d din", N, I, O);
    tu_close(what, din, r_din, (long)N * I, 1e-4, 1e-4);
    snprintf(what, sizeof what, "linear %dx%dx%d dw", N, I, O);
    tu_close(what, dw, r_dw, (long)O * I, 1e-4, 1e-4);
    snprintf(what, sizeof what, "linear %dx%dx%d db", N, I, O);
    tu_close(what, db, r_db, O, 1e-4, 1e-4);
    free(in); free(w); free(b); free(g); free(out); free(din); free(dw); free(db);
    free(r_out); free(r_din); free(r_dw); free(r_db);
}

static void test_linear_big(void) {
    check_linear_big(300, 70, 260); /* row blocks, parallel */
    check_linear_big(5, 33, 700);   /* column blocks */
    check_linear_big(129, 257, 3);
}

/* ---- patch embedding ---- */
static int P_B = 2, P_H = 6, P_W = 9, P_P = 3, P_D = 4;
static float *p_img, *p_w, *p_b, *p_col;
static void fwd_patch(void) { be->patch_embed_forward(be, g_out, p_col, p_img, p_w, NULL, p_b, P_B, P_H, P_W, P_P, P_D); }
static void test_patch(void) {
    int np = P_B * (P_H / P_P) * (P_W / P_P), K = 3 * P_P * P_P;
    p_img = rnd((size_t)P_B * 3 * P_H * P_W, 1); p_w = rnd((size_t)P_D * K, 1); p_b = rnd(P_D, 1);
    p_col = zeros((size_t)np * K);
    g_nout = (size_t)np * P_D; g_out = zeros(g_nout); g_w = rnd(g_nout, 1); g_fwd = fwd_patch;
    fwd_patch();
    /* forward against a direct convolution */
    float *ref = zeros(g_nout);
    int gh = P_H / P_P, gw = P_W / P_P;
    for (int b = 0; b < P_B; b++) for (int ty = 0; ty < gh; ty++) for (int tx = 0; tx < gw; tx++)
        for (int d = 0; d < P_D; d++) {
            double s = p_b[d];
            for (int c = 0; c < 3; c++) for (int ky = 0; ky < P_P; ky++) for (int kx = 0; kx < P_P; kx++)
                s += (double)p_w[((d * 3 + c) * P_P + ky) * P_P + kx] *
                     p_img[(((size_t)b * 3 + c) * P_H + ty * P_P + ky) * P_W + tx * P_P + kx];
            ref[((size_t)(b * gh + ty) * gw + tx) * P_D + d] = (float)s;
        }
    tu_close("patch_embed forward", g_out, ref, (long)g_nout, 1e-5, 1e-5);
    float *dw = zeros((size_t)P_D * K), *db = zeros(P_D);
    be->patch_embed_backward(be, dw, db, g_w, p_col, P_B, P_H, P_W, P_P, P_D);
    check_grad("patch_embed dw", p_w, (size_t)P_D * K, dw, 1e-2);
    check_grad("patch_embed db", p_b, P_D, db, 1e-2);
    free(p_img); free(p_w); free(p_b); free(p_col); free(g_out); free(g_w); free(ref); free(dw); free(db);
}

/* ---- token assembly ---- */
static int E_B = 3, E_N = 5, E_R = 2, E_D = 3;
static float *e_patch, *e_cls, *e_reg, *e_pos, *e_mt;
static uint8_t e_mask[15] = {0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1};
static void fwd_embed(void) {
    be->embed_tokens_forward(be, g_out, e_patch, e_cls, e_reg, e_pos, e_mask, e_mt, E_B, E_N, E_R, E_D);
}
static void test_embed(void) {
    e_patch = rnd(E_B * E_N * E_D, 1); e_cls = rnd(E_D, 1); e_reg = rnd(E_R * E_D, 1);
    e_pos = rnd((1 + E_N) * E_D, 1); e_mt = rnd(E_D, 1);
    g_nout = (size_t)E_B * (1 + E_R + E_N) * E_D; g_out = zeros(g_nout); g_w = rnd(g_nout, 1);
    g_fwd = fwd_embed;
    float *dp = zeros(E_B * E_N * E_D), *dc = zeros(E_D), *dr = zeros(E_R * E_D),
          *dpos = zeros((1 + E_N) * E_D), *dm = zeros(E_D);
    be->embed_tokens_backward(be, dp, dc, dr, dpos, dm, g_w, e_mask, E_B, E_N, E_R, E_D);
    check_grad("embed dpatch", e_patch, E_B * E_N * E_D, dp, 1e-2);
    check_grad("embed dcls", e_cls, E_D, dc, 1e-2);
    check_grad("embed dreg", e_reg, E_R * E_D, dr, 1e-2);
    check_grad("embed dpos", e_pos, (1 + E_N) * E_D, dpos, 1e-2);
    check_grad("embed dmask_token", e_mt, E_D, dm, 1e-2);
    free(e_patch); free(e_cls); free(e_reg); free(e_pos); free(e_mt); free(g_out); free(g_w);
    free(dp); free(dc); free(dr); free(dpos); free(dm);
}

/* ---- LayerNorm ---- */
static int N_N = 4, N_C = 11;
static float *n_in, *n_w, *n_b, *n_mean, *n_rstd;
static void fwd_ln(void) { be->layernorm_forward(be, g_out, n_mean, n_rstd, n_in, n_w, n_b, N_N, N_C, 1e-6f); }
static void test_layernorm(void) {
    n_in = rnd(N_N * N_C, 1); n_w = rnd(N_C, 1); n_b = rnd(N_C, 1);
    for (int i = 0; i < N_C; i++) n_in[N_C + i] += 3.0f; /* an offset row */
    n_mean = zeros(N_N); n_rstd = zeros(N_N);
    g_nout = N_N * N_C; g_out = zeros(g_nout); g_w = rnd(g_nout, 1); g_fwd = fwd_ln;
    fwd_ln();
    float *din = zeros(N_N * N_C), *dw = zeros(N_C), *db = zeros(N_C);
    be->layernorm_backward(be, din, dw, db, g_w, n_in, n_w, n_mean, n_rstd, N_N, N_C);
    check_grad("layernorm din", n_in, N_N * N_C, din, 1e-2);
    check_grad("layernorm dw", n_w, N_C, dw, 1e-2);
    check_grad("layernorm db", n_b, N_C, db, 1e-2);
    free(n_in); free(n_w); free(n_b); free(n_mean); free(n_rstd); free(g_out); free(g_w);
    free(din); free(dw); free(db);
}

/* ---- L2 normalize ---- */
static float *q_in, *q_norm;
static void fwd_l2(void) { be->l2norm_forward(be, g_out, q_norm, q_in, 3, 7, 1e-6f); }
static void test_l2norm(void) {
    q_in = rnd(21, 1); q_norm = zeros(3);
    g_nout = 21; g_out = zeros(21); g_w = rnd(21, 1); g_fwd = fwd_l2;
    fwd_l2();
    float *din = zeros(21);
    be->l2norm_backward(be, din, g_w, q_in, q_norm, 3, 7, 1e-6f);
    check_grad("l2norm din", q_in, 21, din, 1e-3);
    free(q_in); free(q_norm); free(g_out); free(g_w); free(din);
}

/* ---- weight norm ---- */
static float *wn_v, *wn_g, *wn_n;
static void fwd_wn(void) { be->weightnorm_forward(be, g_out, wn_n, wn_v, wn_g, 5, 4); }
static void test_weightnorm(void) {
    wn_v = rnd(20, 1); wn_g = rnd(5, 1); wn_n = zeros(5);
    g_nout = 20; g_out = zeros(20); g_w = rnd(20, 1); g_fwd = fwd_wn;
    fwd_wn();
    float *dv = zeros(20), *dg = zeros(5);
    be->weightnorm_backward(be, dv, dg, g_w, wn_v, wn_g, wn_n, 5, 4);
    check_grad("weightnorm dv", wn_v, 20, dv, 1e-3);
    check_grad("weightnorm dg", wn_g, 5, dg, 1e-2);
    free(wn_v); free(wn_g); free(wn_n); free(g_out); free(g_w); free(dv); free(dg);
}

/* ---- attention (packed, lengths 5, 1, 7) ---- */
static int A_H = 2, A_dh = 3, A_cu[4] = {0, 5, 6, 13}, A_nseq = 3, A_T = 13;
static float *a_qkv, *a_lse;
/* The CPU backend's device is host memory: one array serves both sides. */
static dv2_seqpack pack_of(const int *cu, int nseq) {
    int mx = 0;
    for (int s = 0; s < nseq; s++) mx = cu[s + 1] - cu[s] > mx ? cu[s + 1] - cu[s] : mx;
    return (dv2_seqpack){nseq, cu[nseq], mx, cu, cu};
}
static void fwd_attn(void) {
    dv2_seqpack sp = pack_of(A_cu, A_nseq);
    be->attention_forward(be, g_out, a_lse, a_qkv, &sp, A_H, A_dh);
}
static void test_attention(void) {
    int D = A_H * A_dh;
    a_qkv = rnd((size_t)A_T * 3 * D, 1); a_lse = zeros(A_H * A_T);
    g_nout = (size_t)A_T * D; g_out = zeros(g_nout); g_w = rnd(g_nout, 1); g_fwd = fwd_attn;
    fwd_attn();
    /* double-precision loop reference */
    float *ref = zeros(g_nout);
    for (int s = 0; s < A_nseq; s++) for (int h = 0; h < A_H; h++)
        for (int i = A_cu[s]; i < A_cu[s + 1]; i++) {
            double sc[16], mx = -1e300, sum = 0;
            for (int j = A_cu[s]; j < A_cu[s + 1]; j++) {
                double d = 0;
                for (int c = 0; c < A_dh; c++)
                    d += (double)a_qkv[(size_t)i * 3 * D + h * A_dh + c] * a_qkv[(size_t)j * 3 * D + D + h * A_dh + c];
                sc[j - A_cu[s]] = d / sqrt((double)A_dh);
                if (sc[j - A_cu[s]] > mx) mx = sc[j - A_cu[s]];
            }
            for (int j = A_cu[s]; j < A_cu[s + 1]; j++) sum += exp(sc[j - A_cu[s]] - mx);
            for (int c = 0; c < A_dh; c++) {
                double o = 0;
                for (int j = A_cu[s]; j < A_cu[s + 1]; j++)
                    o += exp(sc[j - A_cu[s]] - mx) / sum * a_qkv[(size_t)j * 3 * D + 2 * D + h * A_dh + c];
                ref[(size_t)i * D + h * A_dh + c] = (float)o;
            }
        }
    tu_close("attention forward vs double loop", g_out, ref, (long)g_nout, 1e-5, 1e-4);
    /* packed equals separate */
    float *sep = zeros(g_nout), *lse1 = zeros(A_H * 7);
    for (int s = 0; s < A_nseq; s++) {
        int n = A_cu[s + 1] - A_cu[s], cu1[2] = {0, n};
        dv2_seqpack sp1 = pack_of(cu1, 1);
        be->attention_forward(be, sep + (size_t)A_cu[s] * D, lse1, a_qkv + (size_t)A_cu[s] * 3 * D, &sp1, A_H, A_dh);
    }
    tu_close("attention packed vs separate", g_out, sep, (long)g_nout, 1e-6, 1e-5);
    float *dqkv = zeros((size_t)A_T * 3 * D);
    dv2_seqpack sp = pack_of(A_cu, A_nseq);
    be->attention_backward(be, dqkv, g_w, a_qkv, g_out, a_lse, &sp, A_H, A_dh);
    check_grad("attention dqkv", a_qkv, (size_t)A_T * 3 * D, dqkv, 1e-2);
    free(a_qkv); free(a_lse); free(g_out); free(g_w); free(ref); free(sep); free(lse1); free(dqkv);
}

/* ---- attention over sequences longer than the query block (300, 129, 1) ---- */
static int AL_cu[4] = {0, 300, 429, 430};
static void fwd_attn_long(void) {
    dv2_seqpack sp = pack_of(AL_cu, 3);
    be->attention_forward(be, g_out, a_lse, a_qkv, &sp, 2, 5);
}
static void test_attention_long(void) {
    int H = 2, dh = 5, D = H * dh, T = 430;
    a_qkv = rnd((size_t)T * 3 * D, 1); a_lse = zeros(H * T);
    g_nout = (size_t)T * D; g_out = zeros(g_nout); g_w = rnd(g_nout, 1); g_fwd = fwd_attn_long;
    fwd_attn_long();
    float *ref = zeros(g_nout);
    double *sc = malloc(sizeof(double) * 300);
    for (int s = 0; s < 3; s++) for (int h = 0; h < H; h++)
        for (int i = AL_cu[s]; i < AL_cu[s + 1]; i++) {
            double mx = -1e300, sum = 0;
            for (int j = AL_cu[s]; j < AL_cu[s + 1]; j++) {
                double d = 0;
                for (int c = 0; c < dh; c++)
                    d += (double)a_qkv[(size_t)i * 3 * D + h * dh + c] * a_qkv[(size_t)j * 3 * D + D + h * dh + c];
                sc[j - AL_cu[s]] = d / sqrt((double)dh);
                if (sc[j - AL_cu[s]] > mx) mx = sc[j - AL_cu[s]];
            }
            for (int j = AL_cu[s]; j < AL_cu[s + 1]; j++) sum += exp(sc[j - AL_cu[s]] - mx);
            for (int c = 0; c < dh; c++) {
                double o = 0;
                for (int j = AL_cu[s]; j < AL_cu[s + 1]; j++)
                    o += exp(sc[j - AL_cu[s]] - mx) / sum * a_qkv[(size_t)j * 3 * D + 2 * D + h * dh + c];
                ref[(size_t)i * D + h * dh + c] = (float)o;
            }
        }
    tu_close("attention (long) forward vs double loop", g_out, ref, (long)g_nout, 1e-5, 1e-4);
    float *dqkv = zeros((size_t)T * 3 * D);
    dv2_seqpack spl = pack_of(AL_cu, 3);
    be->attention_backward(be, dqkv, g_w, a_qkv, g_out, a_lse, &spl, H, dh);
    check_grad_stride("attention (long) dqkv", a_qkv, (size_t)T * 3 * D, dqkv, 1e-2, 61);
    free(a_qkv); free(a_lse); free(g_out); free(g_w); free(ref); free(sc); free(dqkv);
}

/* ---- GELU, SwiGLU ---- */
static float *act_in;
static void fwd_gelu(void) { be->gelu_forward(be, g_out, act_in, 17); }
static void fwd_swiglu(void) { be->swiglu_forward(be, g_out, act_in, 3, 5); }
static void test_act(void) {
    act_in = rnd(30, 2);
    g_nout = 17; g_out = zeros(30); g_w = rnd(30, 1); g_fwd = fwd_gelu;
    fwd_gelu();
    for (int i = 0; i < 17; i++) {
        double x = act_in[i], y = 0.5 * x * (1 + erf(x / sqrt(2.0)));
        CHECKF(fabs(g_out[i] - y) < 1e-6 + 1e-6 * fabs(y), "gelu(%g) = %g, want %g", x, g_out[i], y);
    }
    float *din = zeros(30);
    be->gelu_backward(be, din, g_w, act_in, 17);
    check_grad("gelu din", act_in, 17, din, 1e-3);
    g_nout = 15; g_fwd = fwd_swiglu;
    memset(din, 0, sizeof(float) * 30);
    be->swiglu_backward(be, din, g_w, act_in, 3, 5);
    check_grad("swiglu din", act_in, 30, din, 1e-3);
    free(act_in); free(g_out); free(g_w); free(din);
}

/* GELU over a sweep against double precision; the 4-wide and the scalar
 * paths agree bit for bit (one call over all vs one call per element). */
static void test_gelu_sweep(void) {
    int n = 20003;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n), *y1 = malloc(sizeof(float) * n);
    float *d = zeros(n), *d1 = zeros(n), *g = malloc(sizeof(float) * n);
    for (int i = 0; i < n; i++) { x[i] = -10.0f + 20.0f * i / (n - 1); g[i] = 1.0f; }
    be->gelu_forward(be, y, x, n);
    be->gelu_backward(be, d, g, x, n);
    int bad = 0, same = 1;
    for (int i = 0; i < n; i++) {
        be->gelu_forward(be, y1 + i, x + i, 1);
        be->gelu_backward(be, d1 + i, g + i, x + i, 1);
        same = same && y1[i] == y[i] && d1[i] == d[i];
        double xd = x[i], ref = 0.5 * xd * erfc(-xd / sqrt(2.0));
        double dref = 0.5 * erfc(-xd / sqrt(2.0)) + xd * exp(-0.5 * xd * xd) / sqrt(2 * M_PI);
        /* relative; float evaluation of −z² limits the negative tail */
        double tol = fabs(xd) < 2 ? 1e-6 : fabs(xd) < 5 ? 5e-6 : 1e-4;
        if (fabs(y[i] - ref) > tol * fabs(ref) + 1e-30 || fabs(d[i] - dref) > tol * fabs(dref) + 1e-7) {
            if (!bad) fprintf(stderr, "gelu(%g) = %.9g (ref %.9g), gelu'(x) = %.9g (ref %.9g)\n",
                              xd, y[i], ref, d[i], dref);
            bad++;
        }
    }
    CHECKF(bad == 0, "gelu sweep: %d of %d values off", bad, n);
    CHECKF(same, "gelu: vector and scalar paths differ");
    free(x); free(y); free(y1); free(d); free(d1); free(g);
}

/* ---- residual with LayerScale and drop-path subsets ---- */
static float *r_x0, *r_y, *r_gamma, *r_scale;
static int r_rows[4] = {5, 0, 2, 3};
static void fwd_res(void) {
    memcpy(g_out, r_x0, sizeof(float) * 6 * 3);
    be->residual_forward(be, g_out, r_y, r_gamma, r_rows, r_scale, 4, 3);
}
static void test_residual(void) {
    r_x0 = rnd(18, 1); r_y = rnd(12, 1); r_gamma = rnd(3, 1); r_scale = rnd(4, 1);
    g_nout = 18; g_out = zeros(18); g_w = rnd(18, 1); g_fwd = fwd_res;
    float *dy = zeros(12), *dg = zeros(3);
    be->residual_backward(be, dy, dg, g_w, r_y, r_gamma, r_rows, r_scale, 4, 3);
    check_grad("residual dy", r_y, 12, dy, 1e-2);
    check_grad("residual dgamma", r_gamma, 3, dg, 1e-2);
    free(r_x0); free(r_y); free(r_gamma); free(r_scale); free(g_out); free(g_w); free(dy); free(dg);
}

/* ---- gather / scatter ---- */
static float *gs_in;
static int gs_rows[5] = {3, 0, 3, 1, 2};
static void fwd_gather(void) { be->gather_rows(be, g_out, gs_in, gs_rows, 5, 3); }
static void test_gather(void) {
    gs_in = rnd(12, 1);
    g_nout = 15; g_out = zeros(15); g_w = rnd(15, 1); g_fwd = fwd_gather;
    float *d = zeros(12);
    be->scatter_add_rows(be, d, g_w, gs_rows, 5, 3);
    check_grad("gather/scatter", gs_in, 12, d, 1e-2);
    free(gs_in); free(g_out); free(g_w); free(d);
}

/* ---- AdamW, EMA ---- */
static void test_optim(void) {
    size_t n = 37;
    float *p = rnd(n, 1), *m = zeros(n), *v = zeros(n), *g = rnd(n, 1), *t = rnd(n, 1);
    double *pd = malloc(sizeof(double) * n), *md = calloc(n, sizeof(double)), *vd = calloc(n, sizeof(double));
    for (size_t i = 0; i < n; i++) pd[i] = p[i];
    float lr = 0.01f, wd = 0.04f;
    for (int step = 1; step <= 3; step++) {
        be->adamw_step(be, p, NULL, m, v, g, n, lr, wd, 0.9f, 0.999f, 1e-8f, step);
        for (size_t i = 0; i < n; i++) {
            md[i] = 0.9 * md[i] + 0.1 * g[i];
            vd[i] = 0.999 * vd[i] + 0.001 * (double)g[i] * g[i];
            pd[i] *= 1 - (double)lr * wd;
            pd[i] -= lr / (1 - pow(0.9, step)) * md[i] / (sqrt(vd[i]) / sqrt(1 - pow(0.999, step)) + 1e-8);
        }
    }
    float *pf = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) pf[i] = (float)pd[i];
    tu_close("adamw 3 steps", p, pf, (long)n, 1e-6, 1e-5);
    float *te = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) te[i] = (float)(0.994 * t[i] + 0.006 * p[i]);
    be->ema_update(be, t, NULL, p, n, 0.994f);
    tu_close("ema", t, te, (long)n, 1e-7, 1e-6);
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
    double got_ss = 0;
    int fin = 0;
    CHECK(be->sumsq(be, &got_ss, g, n) == 0 && fabs(got_ss - ss) < 1e-9 * ss);
    CHECK(be->all_finite(be, &fin, g, n) == 0 && fin);
    g[5] = NAN;
    CHECK(be->all_finite(be, &fin, g, n) == 0 && !fin);
    free(p); free(m); free(v); free(g); free(t); free(pd); free(md); free(vd); free(pf); free(te);
}

int main(void) {
    be = tu_cpu();
    dv2_rng_seed(&rng, 1234, 0);
    test_linear();
    test_linear_big();
    test_patch();
    test_embed();
    test_layernorm();
    test_l2norm();
    test_weightnorm();
    test_attention();
    test_attention_long();
    test_act();
    test_gelu_sweep();
    test_residual();
    test_gather();
    test_optim();
    return tu_finish("test_ops_grad");
}
