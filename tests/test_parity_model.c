/* test_parity_model.c — the C model (lib/vit, lib/head, lib/loss on the CPU
 * backend) against the independent PyTorch oracle tests/ref/dinov2_ref.py
 * (fixture tests/ref/fixtures/model.bin, float64 reference):
 *   A: one full student step of spec §5 with drop path 0 — teacher forward
 *      on the globals, swapped CLS, masked-patch gather, teacher heads,
 *      centering / Sinkhorn-Knopp targets, the student's packed forward on
 *      [masked globals, locals], heads, DINO + iBOT + KoLeo, backward — every
 *      output, loss term and parameter gradient; then the batch-subset drop
 *      path with the oracle's fixed subsets (outputs and gradients).
 *   B: SwiGLU, 2 registers, antialiased pos_embed resampling (down, up,
 *      non-square), four groups of different sizes packed, intermediate
 *      layer, gradients.
 * Criterion: |c − ref| ≤ 1e-4·|ref| + 1e-4·max|ref| per tensor (float32
 * against float64).
 * If the fixture is stale, regenerate it (needs torch):
 *   /usr/bin/python3 tests/ref/dinov2_ref.py tests/ref/fixtures/model.bin */
#include <stdlib.h>
#include <string.h>
#include "../tests/ref/fixture.h"
#include "model/head.h"
#include "model/loss.h"
#include "ops/cpu/cpu_loss.h"
#include "testutil.h"
#include "tu_backend.h"
#include "model/vit.h"

#define FIXTURE_VERSION 2

static const dv2_backend *be;
static fx_file fx;

static void cmp(const char *what, const float *got, const fx_array *ref) {
    double mx = 0;
    for (long i = 0; i < ref->n; i++) mx = fabs(ref->data[i]) > mx ? fabs(ref->data[i]) : mx;
    tu_close(what, got, ref->data, ref->n, 1e-4 * mx + 1e-7, 1e-4);
}

static void cmpn(const char *name, const float *got) { cmp(name, got, fx_get(&fx, name)); }

/* Loads every tensor of p from "<prefix><name>". */
static void load_params(dv2_params *p, const char *prefix) {
    char nm[128];
    for (int i = 0; i < dv2_params_count(p); i++) {
        const dv2_param_info *t = dv2_params_info(p, i);
        snprintf(nm, sizeof nm, "%s%s", prefix, t->name);
        fx_array *a = fx_get(&fx, nm);
        CHECKF(a->n == (long)t->numel, "%s: %ld elements, model has %zu", nm, a->n, t->numel);
        if (a->n == (long)t->numel) dv2_params_set(p, i, a->data, NULL);
    }
}

/* Compares every gradient of p with "<prefix><name>". */
static void cmp_grads(const dv2_params *p, const char *prefix) {
    char nm[128];
    for (int i = 0; i < dv2_params_count(p); i++) {
        snprintf(nm, sizeof nm, "%s%s", prefix, dv2_params_info(p, i)->name);
        cmpn(nm, dv2_params_grad(p, i));
    }
}

static dv2_arch arch_custom(int D, int L, int H, int P, int img, int R, int swiglu, float off, int aa) {
    dv2_arch a;
    dv2_arch_preset(&a, "vit_small", NULL);
    snprintf(a.name, sizeof a.name, "custom");
    a.embed_dim = D; a.depth = L; a.num_heads = H; a.patch_size = P; a.img_size = img;
    a.ffn_kind = swiglu ? DV2_FFN_SWIGLU : DV2_FFN_MLP;
    a.ffn_hidden = swiglu ? dv2_arch_swiglu_hidden(4 * D) : 4 * D;
    a.num_register_tokens = R; a.interpolate_offset = off; a.interpolate_antialias = aa;
    return a;
}

static void *xmalloc(size_t n) { void *p = calloc(1, n ? n : 1); if (!p) exit(1); return p; }

static void config_a(void) {
    const int B = 2, NL = 2, D = 24, R = 1, N = 16, K = 48, Ki = 40;
    const float tau_s = 0.1f, tau_t = 0.05f;
    dv2_error err = {0};
    dv2_arch a = arch_custom(D, 2, 2, 4, 16, R, 0, 0.1f, 0);
    dv2_vit st, te;
    CHECK(dv2_vit_init(&st, &a, be, 1, &err) == 0);
    CHECK(dv2_vit_init(&te, &a, be, 0, &err) == 0);
    dv2_head_arch hda = {D, 32, 16, K, 3, 1e-6f}, hia = {D, 32, 12, Ki, 3, 1e-6f};
    dv2_head sd, si, td, ti;
    CHECK(dv2_head_init(&sd, &hda, be, 1, &err) == 0);
    CHECK(dv2_head_init(&si, &hia, be, 1, &err) == 0);
    CHECK(dv2_head_init(&td, &hda, be, 0, &err) == 0);
    CHECK(dv2_head_init(&ti, &hia, be, 0, &err) == 0);
    load_params(&st.params, "A.s.");
    load_params(&te.params, "A.t.");
    load_params(&sd.params, "A.sd.");
    load_params(&si.params, "A.si.");
    load_params(&td.params, "A.td.");
    load_params(&ti.params, "A.ti.");
    fx_array *xg = fx_get(&fx, "A.xg"), *xl = fx_get(&fx, "A.xl"), *fm = fx_get(&fx, "A.masks");
    uint8_t *mask = xmalloc(2 * B * N);
    int M = 0, cnt[8] = {0};
    for (int i = 0; i < 2 * B * N; i++) { mask[i] = fm->data[i] != 0; M += mask[i]; cnt[i / N] += mask[i]; }
    float *w = xmalloc(sizeof(float) * M);
    int *mrow = xmalloc(sizeof(int) * M); /* (crop, patch) of each masked token */
    for (int i = 0, j = 0; i < 2 * B * N; i++)
        if (mask[i]) { mrow[j] = i; w[j] = 1.0f / (float)(cnt[i / N] > 1 ? cnt[i / N] : 1); j++; }

    /* ---- teacher ---- */
    dv2_vit_group gg = {2 * B, 16, 16}, gl = {NL * B, 12, 12};
    dv2_vit_pass *tp;
    CHECK(dv2_vit_pass_create(&tp, &te, &gg, 1, 0, &err) == 0);
    const float *imgs_t[1] = {xg->data};
    CHECK(dv2_vit_pass_forward(tp, imgs_t, NULL, NULL, &err) == 0);
    cmpn("A.t_norm", dv2_vit_pass_output(tp));
    int *rows = xmalloc(sizeof(int) * (2 * B + M));
    for (int r = 0; r < 2 * B; r++) rows[r] = dv2_vit_pass_row(tp, 0, r < B ? r + B : r - B, 0);
    for (int j = 0; j < M; j++) rows[2 * B + j] = dv2_vit_pass_row(tp, 0, mrow[j] / N, 1 + R + mrow[j] % N);
    float *tin = xmalloc(sizeof(float) * (2 * B + M) * D);
    be->gather_rows(be, tin, dv2_vit_pass_output(tp), rows, 2 * B + M, D);
    float *t_dino = xmalloc(sizeof(float) * 2 * B * K), *t_ibot = xmalloc(sizeof(float) * M * Ki);
    dv2_head_pass *hp;
    CHECK(dv2_head_pass_create(&hp, &td, 2 * B, 0, &err) == 0);
    dv2_head_pass_forward(hp, t_dino, tin, 2 * B, &err);
    dv2_head_pass_free(hp);
    CHECK(dv2_head_pass_create(&hp, &ti, M, 0, &err) == 0);
    dv2_head_pass_forward(hp, t_ibot, tin + 2 * B * D, M, &err);
    dv2_head_pass_free(hp);
    cmpn("A.t_dino", t_dino);
    cmpn("A.t_ibot", t_ibot);
    float *q_dino = xmalloc(sizeof(float) * 2 * B * K), *q_ibot = xmalloc(sizeof(float) * M * Ki);
    be->softmax_center_forward(be, q_dino, t_dino, fx_get(&fx, "A.center")->data, 2 * B, K, tau_t);
    CHECK(be->sinkhorn_knopp_forward(be, q_ibot, t_ibot, M, Ki, tau_t, 3, M, NULL, NULL) == 0);
    cmpn("A.q_dino", q_dino);
    cmpn("A.q_ibot", q_ibot);

    /* ---- student: packed [masked globals, locals] ---- */
    dv2_vit_group sg[2] = {gg, gl};
    dv2_vit_pass *sp;
    CHECK(dv2_vit_pass_create(&sp, &st, sg, 2, DV2_VIT_TRAIN, &err) == 0);
    const float *imgs_s[2] = {xg->data, xl->data};
    const uint8_t *masks_s[2] = {mask, NULL};
    CHECK(dv2_vit_pass_forward(sp, imgs_s, masks_s, NULL, &err) == 0);
    const float *so = dv2_vit_pass_output(sp);
    int T = dv2_vit_pass_tokens(sp), Tg = 2 * B * dv2_vit_pass_seqlen(sp, 0);
    cmpn("A.s_norm_g", so);
    cmpn("A.s_norm_l", so + (size_t)Tg * D);
    int nd = NL * B + 2 * B;
    int *drows = xmalloc(sizeof(int) * nd), *prows = xmalloc(sizeof(int) * M);
    for (int r = 0; r < NL * B; r++) drows[r] = dv2_vit_pass_row(sp, 1, r, 0);
    for (int r = 0; r < 2 * B; r++) drows[NL * B + r] = dv2_vit_pass_row(sp, 0, r, 0);
    for (int j = 0; j < M; j++) prows[j] = dv2_vit_pass_row(sp, 0, mrow[j] / N, 1 + R + mrow[j] % N);
    float *din = xmalloc(sizeof(float) * nd * D), *pin = xmalloc(sizeof(float) * M * D);
    be->gather_rows(be, din, so, drows, nd, D);
    be->gather_rows(be, pin, so, prows, M, D);
    float *s_dino = xmalloc(sizeof(float) * nd * K), *s_ibot = xmalloc(sizeof(float) * M * Ki);
    dv2_head_pass *dp_, *ip_;
    CHECK(dv2_head_pass_create(&dp_, &sd, nd, DV2_HEAD_TRAIN, &err) == 0);
    CHECK(dv2_head_pass_create(&ip_, &si, M, DV2_HEAD_TRAIN, &err) == 0);
    dv2_head_pass_forward(dp_, s_dino, din, nd, &err);
    dv2_head_pass_forward(ip_, s_ibot, pin, M, &err);
    cmpn("A.s_dino", s_dino);
    cmpn("A.s_ibot", s_ibot);

    /* ---- losses ---- */
    dv2_loss_terms lt = {0}, dl = {0};
    dv2_loss_weights lw = dv2_loss_default_weights();
    const float *s_l = s_dino, *s_g = s_dino + (size_t)NL * B * K, *cls_g = din + (size_t)NL * B * D;
    dv2_cpu_dino_forward(&lt.dino_local, &lt.dino_global, s_l, s_g, q_dino, B, NL, K, tau_s);
    dv2_cpu_ibot_forward(&lt.ibot, s_ibot, q_ibot, w, M, Ki, 2 * B, tau_s);
    int nn1[2], nn2[2];
    be->koleo_forward(be, &lt.koleo1, nn1, cls_g, B, D);
    be->koleo_forward(be, &lt.koleo2, nn2, cls_g + (size_t)B * D, B, D);
    dv2_loss_total(&lt, &lw);
    float lv[6] = {lt.dino_local, lt.dino_global, lt.koleo1, lt.koleo2, lt.ibot, lt.total};
    cmpn("A.losses", lv);

    /* ---- backward ---- */
    dv2_loss_total_backward(&dl, &lw, 1.0f);
    float *ds_dino = xmalloc(sizeof(float) * nd * K), *ds_ibot = xmalloc(sizeof(float) * M * Ki);
    dv2_cpu_dino_backward(ds_dino, ds_dino + (size_t)NL * B * K, dl.dino_local, dl.dino_global,
                           s_l, s_g, q_dino, B, NL, K, tau_s);
    dv2_cpu_ibot_backward(ds_ibot, dl.ibot, s_ibot, q_ibot, w, M, Ki, 2 * B, tau_s);
    float *dxd = xmalloc(sizeof(float) * nd * D), *dxp = xmalloc(sizeof(float) * M * D);
    CHECK(dv2_head_pass_backward(dp_, dxd, ds_dino, &err) == 0);
    CHECK(dv2_head_pass_backward(ip_, dxp, ds_ibot, &err) == 0);
    be->koleo_backward(be, dxd + (size_t)NL * B * D, dl.koleo1, cls_g, nn1, B, D);
    be->koleo_backward(be, dxd + (size_t)(NL * B + B) * D, dl.koleo2, cls_g + (size_t)B * D, nn2, B, D);
    float *dout = xmalloc(sizeof(float) * (size_t)T * D);
    be->scatter_add_rows(be, dout, dxd, drows, nd, D);
    be->scatter_add_rows(be, dout, dxp, prows, M, D);
    CHECK(dv2_vit_pass_backward(sp, dout, &err) == 0);
    cmp_grads(&st.params, "A.gs.");
    cmp_grads(&sd.params, "A.gsd.");
    cmp_grads(&si.params, "A.gsi.");

    /* ---- batch-subset drop path, r = 0.5, the oracle's subsets ---- */
    fx_array *fs = fx_get(&fx, "A.dp_subsets");
    size_t ns = dv2_vit_droppath_len(sg, 2, a.depth, 0.5);
    CHECKF((size_t)fs->n == ns, "subset length %ld, expected %zu", fs->n, ns);
    int *subset = xmalloc(sizeof(int) * ns);
    for (size_t i = 0; i < ns && i < (size_t)fs->n; i++) subset[i] = (int)fs->data[i];
    dv2_vit_droppath dpth = {0.5, subset};
    dv2_params_zero_grad(&st.params);
    CHECK(dv2_vit_pass_forward(sp, imgs_s, masks_s, &dpth, &err) == 0);
    cmpn("A.dp_norm_g", so);
    cmpn("A.dp_norm_l", so + (size_t)Tg * D);
    fx_array *wg = fx_get(&fx, "A.dp_wg"), *wl = fx_get(&fx, "A.dp_wl");
    memcpy(dout, wg->data, sizeof(float) * wg->n);
    memcpy(dout + wg->n, wl->data, sizeof(float) * wl->n);
    CHECK(dv2_vit_pass_backward(sp, dout, &err) == 0);
    cmp_grads(&st.params, "A.dpg.");
    if (err.code) fprintf(stderr, "error: %s\n", err.msg);

    dv2_vit_pass_free(tp); dv2_vit_pass_free(sp);
    dv2_head_pass_free(dp_); dv2_head_pass_free(ip_);
    dv2_vit_free(&st); dv2_vit_free(&te);
    dv2_head_free(&sd); dv2_head_free(&si); dv2_head_free(&td); dv2_head_free(&ti);
    free(mask); free(w); free(mrow); free(rows); free(tin); free(t_dino); free(t_ibot);
    free(q_dino); free(q_ibot); free(drows); free(prows); free(din); free(pin); free(s_dino);
    free(s_ibot); free(ds_dino); free(ds_ibot); free(dxd); free(dxp); free(dout); free(subset);
}

static void config_b(void) {
    const int D = 16;
    dv2_error err = {0};
    dv2_arch a = arch_custom(D, 3, 2, 2, 10, 2, 1, 0.0f, 1);
    dv2_vit m;
    CHECK(dv2_vit_init(&m, &a, be, 1, &err) == 0);
    load_params(&m.params, "B.");
    dv2_vit_group g[4] = {{3, 10, 10}, {2, 6, 6}, {2, 14, 14}, {2, 6, 12}};
    dv2_vit_pass *ps;
    CHECK(dv2_vit_pass_create(&ps, &m, g, 4, DV2_VIT_TRAIN | DV2_VIT_KEEP_BLOCKS, &err) == 0);
    const float *imgs[4] = {fx_get(&fx, "B.x0")->data, fx_get(&fx, "B.x1")->data,
                            fx_get(&fx, "B.x2")->data, fx_get(&fx, "B.x3")->data};
    CHECK(dv2_vit_pass_forward(ps, imgs, NULL, NULL, &err) == 0);
    int T = dv2_vit_pass_tokens(ps);
    float *inter = xmalloc(sizeof(float) * (size_t)T * D), *dout = xmalloc(sizeof(float) * (size_t)T * D);
    CHECK(dv2_vit_pass_layer(ps, 1, inter, &err) == 0);
    char nm[64];
    for (int k = 0; k < 4; k++) {
        size_t off = (size_t)dv2_vit_pass_row(ps, k, 0, 0) * D;
        snprintf(nm, sizeof nm, "B.norm%d", k);
        cmpn(nm, dv2_vit_pass_output(ps) + off);
        snprintf(nm, sizeof nm, "B.prenorm%d", k);
        cmpn(nm, dv2_vit_pass_prenorm(ps) + off);
        snprintf(nm, sizeof nm, "B.inter1_%d", k);
        cmpn(nm, inter + off);
        snprintf(nm, sizeof nm, "B.w%d", k);
        fx_array *w = fx_get(&fx, nm);
        memcpy(dout + off, w->data, sizeof(float) * w->n);
    }
    CHECK(dv2_vit_pass_backward(ps, dout, &err) == 0);
    cmp_grads(&m.params, "B.g.");
    if (err.code) fprintf(stderr, "error: %s\n", err.msg);
    dv2_vit_pass_free(ps);
    dv2_vit_free(&m);
    free(inter);
    free(dout);
}

int main(void) {
    be = tu_cpu();
    if (fx_load_versioned(&fx, "model.bin", "dinov2_ref.py", FIXTURE_VERSION) < 0) return 1;
    config_a();
    config_b();
    fx_free(&fx);
    return tu_finish("test_parity_model");
}
