/* bench_model.c — CPU speed of the model code (lib/vit, lib/head on the CPU
 * backend), the "ours" side of bench/b_model.sh:
 *   fwd:   eval forward of vit_small/14 at 224×224, batch 16 → images/s
 *   train: one full step of a tiny training configuration (teacher forward
 *          on 2B globals, student packed forward on [masked globals, locals],
 *          DINO head on all CLS tokens, backward of a fixed linear functional
 *          of the logits through head and backbone) → steps/s
 *   sgemm: the OpenBLAS sgemm rate on the same threads, through the blocked
 *          dv2_cpu_sgemm the model uses (M = N = K = 2048) → GFLOP/s
 * Prints "OURS <value>" (median over the repetitions after one warm-up);
 * fwd also prints "GFLOPS <achieved>" from the forward's FLOP count.
 * Every buffer lives on the backend's device; a timed run ends with the
 * backend's sync.  DV2_BENCH_DEVICE picks the backend (default cpu: the CPU
 * benchmark; cuda / cuda-bf16 for bench/b_model_gpu.sh), and on a GPU
 * DV2_BENCH_BATCH scales the batch (fwd: images; train: images per step).
 * Usage: bench_model fwd|train|sgemm [reps] */
#include "../tests/tu_backend.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/head.h"
#include "model/vit.h"
#include "ops/cpu/cpu.h"

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static const dv2_backend *g_be;

/* n normal floats on the device. */
static float *randn(dv2_rng *r, size_t n) {
    float *h = malloc(sizeof(float) * n), *d = g_be->alloc(g_be, sizeof(float) * n);
    for (size_t i = 0; i < n; i++) h[i] = (float)dv2_rng_normal(r);
    if (d) g_be->to_device(g_be, d, h, sizeof(float) * n);
    free(h);
    return d;
}

static int env_int(const char *name, int dflt) {
    const char *v = getenv(name);
    return v && atoi(v) > 0 ? atoi(v) : dflt;
}

static int bench_fwd(int reps) {
    dv2_error err = {0};
    dv2_arch a;
    dv2_arch_preset(&a, "vit_small", &err);
    dv2_vit m;
    dv2_rng rng;
    dv2_rng_seed(&rng, 1, 0);
    if (dv2_vit_init(&m, &a, g_be, 0, &err) || dv2_vit_init_weights(&m, &rng, &err)) {
        fprintf(stderr, "bench_model: %s\n", err.msg);
        return 1;
    }
    const int B = env_int("DV2_BENCH_BATCH", 16);
    dv2_vit_group g = {B, 224, 224};
    dv2_vit_pass *ps;
    if (dv2_vit_pass_create(&ps, &m, &g, 1, 0, &err)) {
        fprintf(stderr, "bench_model: %s\n", err.msg);
        return 1;
    }
    float *img = randn(&rng, (size_t)B * 3 * 224 * 224);
    const float *imgs[1] = {img};
    double t[64];
    for (int r = 0; r <= reps; r++) {
        double t0 = omp_get_wtime();
        dv2_vit_pass_forward(ps, imgs, NULL, NULL, &err);
        if (g_be->sync(g_be) && !err.code) dv2_backend_check(g_be, "forward", &err);
        t[r] = omp_get_wtime() - t0;
        fprintf(stderr, "fwd %d: %.4f s\n", r, t[r]);
    }
    qsort(t + 1, (size_t)reps, sizeof(double), cmpd); /* run 0 is the warm-up */
    printf("OURS %.2f\n", B / t[1 + reps / 2]);
    /* FLOPs of one image: per block qkv, proj, fc1, fc2 GEMMs (2·T·D·12D)
     * and attention (QK^T and PV: 4·T²·D); the patch embedding GEMM */
    double T = 1 + (224 / 14) * (224 / 14), D = a.embed_dim;
    double per = a.depth * (2 * T * D * (3 * D + D + 2 * (double)a.ffn_hidden) + 4 * T * T * D) +
                 2 * (T - 1) * 3 * 14 * 14 * D;
    printf("GFLOPS %.1f\n", per * B / t[1 + reps / 2] / 1e9);
    dv2_vit_pass_free(ps);
    dv2_vit_free(&m);
    g_be->free(g_be, img);
    if (err.code) fprintf(stderr, "bench_model: %s\n", err.msg);
    return err.code ? 1 : 0;
}

/* tiny config, shared with bench/model_torch.py (TB images per step, from
 * DV2_BENCH_BATCH on a GPU) */
enum { TD = 192, TL = 4, TH = 3, TP = 14, TNL = 4, TK = 1024 };

static int bench_train(int reps) {
    const int TB = env_int("DV2_BENCH_BATCH", 4);
    dv2_error err = {0};
    dv2_arch a;
    dv2_arch_preset(&a, "vit_small", &err);
    a.embed_dim = TD; a.depth = TL; a.num_heads = TH; a.img_size = 112; a.ffn_hidden = 4 * TD;
    dv2_vit st, te;
    dv2_rng rng;
    dv2_rng_seed(&rng, 2, 0);
    dv2_head_arch ha = {TD, 512, 64, TK, 3, 1e-6f};
    dv2_head sh, th;
    if (dv2_vit_init(&st, &a, g_be, 1, &err) || dv2_vit_init_weights(&st, &rng, &err) ||
        dv2_vit_init(&te, &a, g_be, 0, &err) || dv2_params_copy(&te.params, &st.params, &err) ||
        dv2_head_init(&sh, &ha, g_be, 1, &err) || dv2_head_init_weights(&sh, &rng, &err) ||
        dv2_head_init(&th, &ha, g_be, 0, &err) || dv2_params_copy(&th.params, &sh.params, &err)) {
        fprintf(stderr, "bench_model: %s\n", err.msg);
        return 1;
    }
    dv2_vit_group g[2] = {{2 * TB, 112, 112}, {TNL * TB, 56, 56}};
    int N = 64, nd = 2 * TB + TNL * TB;
    float *xg = randn(&rng, (size_t)2 * TB * 3 * 112 * 112), *xl = randn(&rng, (size_t)TNL * TB * 3 * 56 * 56);
    uint8_t *hmask = calloc((size_t)2 * TB * N, 1), *mask = g_be->alloc(g_be, (size_t)2 * TB * N);
    for (int i = 0; i < TB; i++)
        for (int j = 0; j < N; j += 3) hmask[i * N + j] = 1;
    g_be->to_device(g_be, mask, hmask, (size_t)2 * TB * N);
    free(hmask);
    dv2_vit_pass *tp, *sp;
    dv2_head_pass *thp, *shp;
    if (dv2_vit_pass_create(&tp, &te, g, 1, 0, &err) || dv2_vit_pass_create(&sp, &st, g, 2, DV2_VIT_TRAIN, &err) ||
        dv2_head_pass_create(&thp, &th, nd, 0, &err) || dv2_head_pass_create(&shp, &sh, nd, DV2_HEAD_TRAIN, &err)) {
        fprintf(stderr, "bench_model: %s\n", err.msg);
        return 1;
    }
    int *hrows = malloc(sizeof(int) * nd), *rows = g_be->alloc(g_be, sizeof(int) * nd);
    for (int i = 0; i < 2 * TB; i++) hrows[i] = dv2_vit_pass_row(sp, 0, i, 0);
    for (int i = 0; i < TNL * TB; i++) hrows[2 * TB + i] = dv2_vit_pass_row(sp, 1, i, 0);
    g_be->to_device(g_be, rows, hrows, sizeof(int) * nd);
    free(hrows);
    size_t ntok = (size_t)dv2_vit_pass_tokens(sp);
    float *cls = g_be->alloc(g_be, sizeof(float) * nd * TD), *logits = g_be->alloc(g_be, sizeof(float) * nd * TK);
    float *dl = randn(&rng, (size_t)nd * TK), *dx = g_be->alloc(g_be, sizeof(float) * nd * TD);
    float *dout = g_be->alloc(g_be, sizeof(float) * ntok * TD);
    const float *imgs[2] = {xg, xl};
    const uint8_t *masks[2] = {mask, NULL};
    double t[64];
    for (int r = 0; r <= reps; r++) {
        double t0 = omp_get_wtime();
        dv2_params_zero_grad(&st.params);
        dv2_params_zero_grad(&sh.params);
        dv2_vit_pass_forward(tp, imgs, NULL, NULL, &err);
        g_be->gather_rows(g_be, cls, dv2_vit_pass_output(tp), rows, 2 * TB, TD);
        dv2_head_pass_forward(thp, logits, cls, 2 * TB, &err);
        dv2_vit_pass_forward(sp, imgs, masks, NULL, &err);
        g_be->gather_rows(g_be, cls, dv2_vit_pass_output(sp), rows, nd, TD);
        dv2_head_pass_forward(shp, logits, cls, nd, &err);
        g_be->zero(g_be, dx, sizeof(float) * nd * TD);
        dv2_head_pass_backward(shp, dx, dl, &err);
        g_be->zero(g_be, dout, sizeof(float) * ntok * TD);
        g_be->scatter_add_rows(g_be, dout, dx, rows, nd, TD);
        dv2_vit_pass_backward(sp, dout, &err);
        if (g_be->sync(g_be) && !err.code) dv2_backend_check(g_be, "step", &err);
        t[r] = omp_get_wtime() - t0;
        fprintf(stderr, "train %d: %.3f s\n", r, t[r]);
    }
    if (err.code) fprintf(stderr, "bench_model: %s\n", err.msg);
    qsort(t + 1, (size_t)reps, sizeof(double), cmpd);
    printf("OURS %.3f\n", 1.0 / t[1 + reps / 2]);
    return err.code ? 1 : 0;
}

static int bench_sgemm(int reps) {
    const int n = 2048;
    dv2_rng rng;
    dv2_rng_seed(&rng, 2, 0);
    float *A = malloc(sizeof(float) * n * n), *Bm = malloc(sizeof(float) * n * n), *C = calloc((size_t)n * n, 4);
    for (size_t i = 0; i < (size_t)n * n; i++) A[i] = (float)dv2_rng_normal(&rng), Bm[i] = (float)dv2_rng_normal(&rng);
    double t[64];
    for (int r = 0; r <= reps; r++) {
        double t0 = omp_get_wtime();
        dv2_cpu_sgemm(0, 1, n, n, n, 1.0f, A, n, Bm, n, 0.0f, C, n);
        t[r] = omp_get_wtime() - t0;
    }
    qsort(t + 1, (size_t)reps, sizeof(double), cmpd);
    printf("OURS %.1f\n", 2.0 * n * n * n / t[1 + reps / 2] / 1e9);
    free(A), free(Bm), free(C);
    return 0;
}

int main(int argc, char **argv) {
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    const char *dev = getenv("DV2_BENCH_DEVICE");
    if (dev && *dev && strcmp(dev, "cpu")) {
        static dv2_backend *be;
        dv2_error e = {0};
        char desc[512];
        if (dv2_backend_open(&be, dev, desc, sizeof desc, &e)) {
            fprintf(stderr, "bench_model: %s\n", e.msg);
            return 1;
        }
        fprintf(stderr, "bench_model: %s\n", desc);
        g_be = be;
    } else {
        g_be = tu_cpu();
    }
    if (reps < 1) reps = 1;
    if (reps > 63) reps = 63;
    if (argc > 1 && !strcmp(argv[1], "fwd")) return bench_fwd(reps);
    if (argc > 1 && !strcmp(argv[1], "train")) return bench_train(reps);
    if (argc > 1 && !strcmp(argv[1], "sgemm")) return bench_sgemm(reps);
    fprintf(stderr, "usage: bench_model fwd|train|sgemm [reps]\n");
    return 2;
}
