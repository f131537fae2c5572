/* test_backend_ops.c — every entry of the backend table, forward and
 * backward, on every backend of this build against the float32 CPU backend.
 *
 * Each case draws its inputs from a seeded generator at awkward sizes (1,
 * primes, not multiples of 8 or 64), uploads them with the backend's own
 * memory entries, runs the entry and downloads every output.  The same case
 * on the "cpu" backend is the reference.  Per output tensor two numbers are
 * checked:
 *   - per element: |got − ref| <= atol·rms(ref) + rtol·|ref|
 *   - per tensor:  NMSE = Σ(got − ref)² / Σ ref² <= nmse
 * with a tolerance per (op, backend) that carries its reason.  The CPU
 * backend itself runs every case twice and must give the same bits (its ops
 * are deterministic).  A GPU backend joins by being registered in
 * ops/backend.c and given its tolerances in tol_for() below.
 *
 *   test_backend_ops                 check (exit 1 on any failure)
 *   test_backend_ops --perf [REPS]   also time every case on every backend
 *   test_backend_ops --list          the cases and the tolerances with reasons
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dist.h"
#include "core/dv2.h"
#include "core/rng.h"
#include "model/posembed.h"
#include "ops/ops.h"
#include "ops/cpu/cpu_vec.h"

/* ---- one run of one case on one backend ---------------------------------- */

enum { MAX_OUT = 6, MAX_ALLOC = 40 };

typedef struct {
    const dv2_backend *be;
    dv2_rng rng;
    int nout;
    struct { const char *name; float *h; size_t n; } out[MAX_OUT];
    void *d[MAX_ALLOC];
    int nd;
    int failed; /* a memory entry or an op failed */
    int reps;      /* --perf: extra timed calls of every entry */
    double op_ms;  /* --perf: the entries' time per call, summed */
} run_ctx;

/* One call of an entry; a failed status fails the case.  In --perf mode
 * (c->reps > 0) that first call is the warm-up and the entry runs reps
 * more times between two syncs; the time per call adds to c->op_ms (the
 * uploads and downloads of the case are not timed). */
#define OP(c, call)                                                      \
    do {                                                                 \
        if ((call)) (c)->failed = 1;                                     \
        if ((c)->reps > 0) {                                             \
            (c)->be->sync((c)->be);                                      \
            double t0_ = dv2_now();                                      \
            for (int r_ = 0; r_ < (c)->reps; r_++) (void)(call);         \
            (c)->be->sync((c)->be);                                      \
            (c)->op_ms += (dv2_now() - t0_) * 1e3 / (c)->reps;           \
        }                                                                \
    } while (0)

static void *dalloc(run_ctx *c, size_t bytes) {
    void *p = c->be->alloc(c->be, bytes ? bytes : 4);
    if (!p || c->nd == MAX_ALLOC) { c->failed = 1; return p; }
    c->d[c->nd++] = p;
    return p;
}

/* n normal(0, s) floats on the device (plus offset mu). */
static float *drand(run_ctx *c, size_t n, double mu, double s) {
    float *h = malloc((n ? n : 1) * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = (float)(mu + s * dv2_rng_normal(&c->rng));
    float *d = dalloc(c, n * sizeof *d);
    if (d && c->be->to_device(c->be, d, h, n * sizeof *d)) c->failed = 1;
    free(h);
    return d;
}

static float *dzero(run_ctx *c, size_t n) { return dalloc(c, n * sizeof(float)); }

static void *dput(run_ctx *c, const void *h, size_t bytes) {
    void *d = dalloc(c, bytes);
    if (d && c->be->to_device(c->be, d, h, bytes)) c->failed = 1;
    return d;
}

static void get(run_ctx *c, const char *name, const float *d, size_t n) {
    if (c->nout == MAX_OUT) { c->failed = 1; return; }
    float *h = malloc((n ? n : 1) * sizeof *h);
    if (c->be->sync(c->be) || c->be->to_host(c->be, h, d, n * sizeof *h)) c->failed = 1;
    c->out[c->nout].name = name;
    c->out[c->nout].h = h;
    c->out[c->nout].n = n;
    c->nout++;
}

/* A host scalar as a one-element output. */
static void get_scalar(run_ctx *c, const char *name, double v) {
    float *h = malloc(sizeof *h);
    *h = (float)v;
    c->out[c->nout].name = name;
    c->out[c->nout].h = h;
    c->out[c->nout].n = 1;
    c->nout++;
}

static void run_free(run_ctx *c) {
    for (int i = 0; i < c->nd; i++) c->be->free(c->be, c->d[i]);
    for (int i = 0; i < c->nout; i++) free(c->out[i].h);
    c->nd = c->nout = 0;
}

/* ---- the cases ---------------------------------------------------------- */

typedef struct {
    const char *name; /* "linear_forward 67x97->31" */
    const char *op;   /* the table entry, for tolerances */
    void (*run)(run_ctx *c, const int *a);
    int a[6];         /* sizes */
    int big;          /* a model-sized case (ViT-S/14 shapes at batch 8) */
} op_case;

/* The bf16 compute copy of the weight w (n) on a backend whose GEMMs read
 * one (be->weights_bf16), as the model passes it; NULL on the others and
 * when nocopy (the case of a weight computed in the pass, such as the
 * weight-normalised last layer: the backend rounds w itself). */
static const dv2_bf16 *copy16(run_ctx *c, const float *w, size_t n, int nocopy) {
    if (nocopy || !c->be->weights_bf16 || c->failed) return NULL;
    dv2_bf16 *d = dalloc(c, n * sizeof *d);
    if (d && c->be->to_bf16(c->be, d, w, n)) c->failed = 1;
    return d;
}

/* a = {N, Cin, Cout, bias, flags, nocopy} */
static void c_linear_fwd(run_ctx *c, const int *a) {
    int N = a[0], I = a[1], O = a[2], bias = a[3], fl = a[4];
    float *in = drand(c, (size_t)N * I, 0, 1), *w = drand(c, (size_t)O * I, 0, 0.3);
    float *b = bias ? drand(c, O, 0, 1) : NULL, *out = dzero(c, (size_t)N * O);
    float *pre = fl & DV2_LINEAR_GELU ? dzero(c, (size_t)N * O) : NULL;
    const dv2_bf16 *w16 = copy16(c, w, (size_t)O * I, a[5]);
    if (c->failed) return;
    OP(c, c->be->linear_forward(c->be, out, pre, in, w, w16, b, N, I, O, fl));
    get(c, "out", out, (size_t)N * O);
    if (pre) get(c, "pre", pre, (size_t)N * O);
}

/* a = {N, Cin, Cout, flags, nocopy}; din starts non-zero (overwritten, or
 * added to with DV2_LINEAR_ACCUMULATE) */
static void c_linear_bwd(run_ctx *c, const int *a) {
    int N = a[0], I = a[1], O = a[2], fl = a[3];
    float *in = drand(c, (size_t)N * I, 0, 1), *w = drand(c, (size_t)O * I, 0, 0.3);
    float *dout = drand(c, (size_t)N * O, 0, 1);
    float *din = drand(c, (size_t)N * I, 0, 0.1);
    float *dw = dzero(c, (size_t)O * I), *db = dzero(c, O);
    float *pre = fl & DV2_LINEAR_GELU ? drand(c, (size_t)N * O, 0, 1.5) : NULL;
    float *work = fl & DV2_LINEAR_GELU ? dzero(c, (size_t)N * O) : NULL;
    const dv2_bf16 *w16 = copy16(c, w, (size_t)O * I, a[4]);
    if (c->failed) return;
    OP(c, c->be->linear_backward(c->be, din, dw, db, work, dout, pre, in, w, w16, N, I, O, fl));
    get(c, "din", din, (size_t)N * I);
    get(c, "dw", dw, (size_t)O * I);
    get(c, "db", db, O);
}

static void c_patch(run_ctx *c, const int *a) {
    int B = a[0], H = a[1], W = a[2], p = a[3], D = a[4];
    size_t np = (size_t)B * (H / p) * (W / p);
    float *img = drand(c, (size_t)B * 3 * H * W, 0, 1), *w = drand(c, (size_t)D * 3 * p * p, 0, 0.2);
    float *b = drand(c, D, 0, 1), *out = dzero(c, np * D), *col = dzero(c, np * 3 * p * p);
    float *dout = drand(c, np * D, 0, 1), *dw = dzero(c, (size_t)D * 3 * p * p), *db = dzero(c, D);
    const dv2_bf16 *w16 = copy16(c, w, (size_t)D * 3 * p * p, 0);
    if (c->failed) return;
    OP(c, c->be->patch_embed_forward(c->be, out, col, img, w, w16, b, B, H, W, p, D));
    OP(c, c->be->patch_embed_backward(c->be, dw, db, dout, col, B, H, W, p, D));
    get(c, "out", out, np * D);
    get(c, "dw", dw, (size_t)D * 3 * p * p);
    get(c, "db", db, D);
}

/* a = {M, oh, ow, D, antialias}: the weights of model/posembed.h. */
static void c_posembed(run_ctx *c, const int *a) {
    int M = a[0], oh = a[1], ow = a[2], D = a[3];
    dv2_posembed_plan p;
    if (dv2_posembed_plan_init(&p, M, oh, ow, a[4] ? 0.0f : 0.1f, a[4], NULL)) { c->failed = 1; return; }
    float *pos = drand(c, (size_t)(1 + M * M) * D, 0, 1), *out = dzero(c, (size_t)(1 + oh * ow) * D);
    float *wy = p.identity ? NULL : dput(c, p.wy, sizeof(float) * (size_t)oh * M);
    float *wx = p.identity ? NULL : dput(c, p.wx, sizeof(float) * (size_t)ow * M);
    float *scr = dzero(c, dv2_posembed_scratch_floats(&p, D) + 1);
    float *dout = drand(c, (size_t)(1 + oh * ow) * D, 0, 1), *dpos = drand(c, (size_t)(1 + M * M) * D, 0, 0.1);
    dv2_posembed_plan_free(&p);
    if (c->failed) return;
    OP(c, c->be->posembed_forward(c->be, out, scr, pos, wy, wx, M, oh, ow, D));
    OP(c, c->be->posembed_backward(c->be, dpos, scr, dout, wy, wx, M, oh, ow, D));
    get(c, "out", out, (size_t)(1 + oh * ow) * D);
    get(c, "dpos", dpos, (size_t)(1 + M * M) * D);
}

static void c_tokens(run_ctx *c, const int *a) {
    int B = a[0], N = a[1], R = a[2], D = a[3];
    int T = 1 + R + N;
    uint8_t *hm = malloc((size_t)B * N);
    for (int i = 0; i < B * N; i++) hm[i] = (uint8_t)(dv2_rng_below(&c->rng, 3) == 0);
    float *patch = drand(c, (size_t)B * N * D, 0, 1), *cls = drand(c, D, 0, 1);
    float *reg = R ? drand(c, (size_t)R * D, 0, 1) : NULL, *pos = drand(c, (size_t)(1 + N) * D, 0, 1);
    float *mt = drand(c, D, 0, 1), *x = dzero(c, (size_t)B * T * D), *dx = drand(c, (size_t)B * T * D, 0, 1);
    uint8_t *mask = dput(c, hm, (size_t)B * N);
    float *dpatch = dzero(c, (size_t)B * N * D), *dcls = dzero(c, D), *dreg = R ? dzero(c, (size_t)R * D) : NULL;
    float *dpos = dzero(c, (size_t)(1 + N) * D), *dmt = dzero(c, D);
    free(hm);
    if (c->failed) return;
    OP(c, c->be->embed_tokens_forward(c->be, x, patch, cls, reg, pos, mask, mt, B, N, R, D));
    OP(c, c->be->embed_tokens_backward(c->be, dpatch, dcls, dreg, dpos, dmt, dx, mask, B, N, R, D));
    get(c, "x", x, (size_t)B * T * D);
    get(c, "dpatch", dpatch, (size_t)B * N * D);
    get(c, "dcls", dcls, D);
    get(c, "dpos", dpos, (size_t)(1 + N) * D);
    get(c, "dmask_token", dmt, D);
    if (R) get(c, "dreg", dreg, (size_t)R * D);
}

static void c_layernorm(run_ctx *c, const int *a) {
    int N = a[0], C = a[1];
    float *in = drand(c, (size_t)N * C, 0.5, 2), *w = drand(c, C, 1, 0.2), *b = drand(c, C, 0, 0.2);
    float *out = dzero(c, (size_t)N * C), *mean = dzero(c, N), *rstd = dzero(c, N);
    float *dout = drand(c, (size_t)N * C, 0, 1), *din = dzero(c, (size_t)N * C), *dw = dzero(c, C), *db = dzero(c, C);
    if (c->failed) return;
    OP(c, c->be->layernorm_forward(c->be, out, mean, rstd, in, w, b, N, C, 1e-6f));
    OP(c, c->be->layernorm_backward(c->be, din, dw, db, dout, in, w, mean, rstd, N, C));
    get(c, "out", out, (size_t)N * C);
    get(c, "din", din, (size_t)N * C);
    get(c, "dw", dw, C);
    get(c, "db", db, C);
}

static void c_l2norm(run_ctx *c, const int *a) {
    int N = a[0], C = a[1];
    float *in = drand(c, (size_t)N * C, 0, 1), *out = dzero(c, (size_t)N * C), *nrm = dzero(c, N);
    float *dout = drand(c, (size_t)N * C, 0, 1), *din = dzero(c, (size_t)N * C);
    if (c->failed) return;
    OP(c, c->be->l2norm_forward(c->be, out, nrm, in, N, C, 1e-12f));
    OP(c, c->be->l2norm_backward(c->be, din, dout, in, nrm, N, C, 1e-12f));
    get(c, "out", out, (size_t)N * C);
    get(c, "din", din, (size_t)N * C);
}

static void c_weightnorm(run_ctx *c, const int *a) {
    int K = a[0], C = a[1];
    float *v = drand(c, (size_t)K * C, 0, 1), *g = drand(c, K, 1, 0.3), *w = dzero(c, (size_t)K * C);
    float *vn = dzero(c, K), *dw = drand(c, (size_t)K * C, 0, 1), *dv = dzero(c, (size_t)K * C), *dg = dzero(c, K);
    if (c->failed) return;
    OP(c, c->be->weightnorm_forward(c->be, w, vn, v, g, K, C));
    OP(c, c->be->weightnorm_backward(c->be, dv, dg, dw, v, g, vn, K, C));
    get(c, "w", w, (size_t)K * C);
    get(c, "dv", dv, (size_t)K * C);
    get(c, "dg", dg, K);
}

/* a = {nseq, H, dh, len0, len1, len2}: sequences of those lengths (more
 * than 3 sequences cycle through them; nseq <= 64). */
static void c_attention(run_ctx *c, const int *a) {
    int nseq = a[0], H = a[1], dh = a[2];
    int cu[65] = {0};
    for (int s = 0; s < nseq; s++) cu[s + 1] = cu[s] + a[3 + s % 3];
    int T = cu[nseq];
    size_t n = (size_t)T * H * dh;
    float *qkv = drand(c, 3 * n, 0, 1), *out = dzero(c, n), *lse = dzero(c, (size_t)H * T);
    float *dout = drand(c, n, 0, 1), *dqkv = dzero(c, 3 * n);
    if (c->failed) return;
    int mx = 0;
    for (int q = 0; q < nseq; q++) mx = a[3 + q % 3] > mx ? a[3 + q % 3] : mx;
    dv2_seqpack sp = {nseq, T, mx, cu, dput(c, cu, sizeof(int) * (nseq + 1))};
    if (c->failed) return;
    OP(c, c->be->attention_forward(c->be, out, lse, qkv, &sp, H, dh));
    OP(c, c->be->attention_backward(c->be, dqkv, dout, qkv, out, lse, &sp, H, dh));
    get(c, "out", out, n);
    get(c, "lse", lse, (size_t)H * T);
    get(c, "dqkv", dqkv, 3 * n);
}

static void c_gelu(run_ctx *c, const int *a) {
    size_t n = (size_t)a[0];
    float *in = drand(c, n, 0, 2), *out = dzero(c, n), *dout = drand(c, n, 0, 1), *din = dzero(c, n);
    if (c->failed) return;
    OP(c, c->be->gelu_forward(c->be, out, in, n));
    OP(c, c->be->gelu_backward(c->be, din, dout, in, n));
    get(c, "out", out, n);
    get(c, "din", din, n);
}

static void c_swiglu(run_ctx *c, const int *a) {
    int N = a[0], h = a[1];
    float *in = drand(c, (size_t)N * 2 * h, 0, 1.5), *out = dzero(c, (size_t)N * h);
    float *dout = drand(c, (size_t)N * h, 0, 1), *din = dzero(c, (size_t)N * 2 * h);
    if (c->failed) return;
    OP(c, c->be->swiglu_forward(c->be, out, in, N, h));
    OP(c, c->be->swiglu_backward(c->be, din, dout, in, N, h));
    get(c, "out", out, (size_t)N * h);
    get(c, "din", din, (size_t)N * 2 * h);
}

/* a = {Tfull, n, C, subset}: with subset, rows are every other row and
 * scales 2.0 (the batch-subset drop path). */
static void c_residual(run_ctx *c, const int *a) {
    int Tf = a[0], n = a[1], C = a[2], sub = a[3];
    int *hr = malloc(sizeof(int) * n);
    float *hs = malloc(sizeof(float) * n);
    for (int i = 0; i < n; i++) { hr[i] = sub ? (2 * i) % Tf : i; hs[i] = 2.0f; }
    float *x = drand(c, (size_t)Tf * C, 0, 1), *y = drand(c, (size_t)n * C, 0, 1), *g = drand(c, C, 0, 0.5);
    int *rows = sub ? dput(c, hr, sizeof(int) * n) : NULL;
    float *sc = sub ? dput(c, hs, sizeof(float) * n) : NULL;
    float *dx = drand(c, (size_t)Tf * C, 0, 1), *dy = dzero(c, (size_t)n * C), *dg = dzero(c, C);
    free(hr);
    free(hs);
    if (c->failed) return;
    OP(c, c->be->residual_forward(c->be, x, y, g, rows, sc, n, C));
    OP(c, c->be->residual_backward(c->be, dy, dg, dx, y, g, rows, sc, n, C));
    get(c, "x", x, (size_t)Tf * C);
    get(c, "dy", dy, (size_t)n * C);
    get(c, "dgamma", dg, C);
}

static void c_rows(run_ctx *c, const int *a) {
    int T = a[0], n = a[1], C = a[2];
    int *hr = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) hr[i] = (int)dv2_rng_below(&c->rng, (uint64_t)T); /* repeats */
    float *in = drand(c, (size_t)T * C, 0, 1), *g = dzero(c, (size_t)n * C);
    float *src = drand(c, (size_t)n * C, 0, 1), *acc = drand(c, (size_t)T * C, 0, 1);
    int *rows = dput(c, hr, sizeof(int) * n);
    free(hr);
    if (c->failed) return;
    OP(c, c->be->gather_rows(c->be, g, in, rows, n, C));
    OP(c, c->be->scatter_add_rows(c->be, acc, src, rows, n, C));
    get(c, "gather", g, (size_t)n * C);
    get(c, "scatter_add", acc, (size_t)T * C);
}

static void c_elementwise(run_ctx *c, const int *a) {
    size_t n = (size_t)a[0];
    float *y = drand(c, n, 0, 1), *x = drand(c, n, 0, 1);
    if (c->failed) return;
    OP(c, c->be->add(c->be, y, x, n));
    OP(c, c->be->scale(c->be, y, 0.37f, n));
    get(c, "add_scale", y, n);
    double ss = 0;
    int fin = 0;
    if (c->be->sumsq(c->be, &ss, y, n) || c->be->all_finite(c->be, &fin, y, n)) c->failed = 1;
    get_scalar(c, "sumsq", ss);
    get_scalar(c, "all_finite", fin);
    float nanv = NAN;
    if (n > 1 && c->be->to_device(c->be, y + n / 2, &nanv, sizeof nanv) == 0) {
        if (c->be->all_finite(c->be, &fin, y, n)) c->failed = 1;
        get_scalar(c, "all_finite(NaN)", fin);
    }
}

/* The memory entries copy and zero on parts of buffers, and the collectives
 * with one process (a no-op and two copies). */
static void c_memory(run_ctx *c, const int *a) {
    size_t n = (size_t)a[0], h = n / 2;
    float *x = drand(c, n, 0, 1), *y = drand(c, n, 0, 1), *z = dzero(c, n), *g = dzero(c, n);
    if (c->failed) return;
    OP(c, c->be->copy(c->be, y + 1, x, (n - 1) * sizeof *x));
    OP(c, c->be->zero(c->be, y + h, (n - h) / 2 * sizeof *y));
    get(c, "copy_zero", y, n);
    dv2_dist one;
    dv2_dist_init_single(&one);
    dv2_error err = {0};
    OP(c, c->be->allreduce_sum(c->be, x, n, &one, &err));
    OP(c, c->be->reduce_scatter_sum(c->be, z, y, n, &one, &err));
    OP(c, c->be->all_gather(c->be, g, x, n, &one, &err));
    OP(c, c->be->allreduce_sum_start(c->be, x, n, &one, &err));
    OP(c, c->be->reduce_sum_start(c->be, y, n, 0, &one, &err));
    c->be->coll_progress(c->be);
    OP(c, c->be->coll_wait(c->be, &err));
    get(c, "allreduce", x, n);
    get(c, "reduce_started", y, n);
    /* a 16-bit container and back: x rounded to bf16, on every backend */
    dv2_bf16 *h16 = dalloc(c, n * sizeof *h16);
    if (c->failed) return;
    OP(c, c->be->to_bf16(c->be, h16, x, n));
    OP(c, c->be->from_bf16(c->be, z, h16, n));
    get(c, "bf16_roundtrip", z, n);
    get(c, "reduce_scatter", z, n);
    get(c, "all_gather", g, n);
}

static void c_targets(run_ctx *c, const int *a) {
    int N = a[0], K = a[1];
    float *t = drand(c, (size_t)N * K, 0, 3), *center = drand(c, K, 0, 0.5);
    float *q1 = dzero(c, (size_t)N * K), *q2 = dzero(c, (size_t)N * K);
    if (c->failed) return;
    dv2_error err = {0};
    OP(c, c->be->softmax_center_forward(c->be, q1, t, center, N, K, 0.04f));
    OP(c, c->be->sinkhorn_knopp_forward(c->be, q2, t, N, K, 0.07f, 3, (double)N, NULL, &err));
    OP(c, c->be->center_update(c->be, center, t, N, K, 1.0f, 1.0f / N, 0.9f, NULL, &err));
    get(c, "softmax_center", q1, (size_t)N * K);
    get(c, "sinkhorn_knopp", q2, (size_t)N * K);
    get(c, "center", center, K);
}

/* a = {B, L, K, M}: the DINO loss over 2 global + L local crops and the
 * iBOT loss over M tokens, forward (device scalars) and backward. */
static void c_dino_ibot(run_ctx *c, const int *a) {
    int B = a[0], L = a[1], K = a[2], M = a[3];
    float *s_l = drand(c, (size_t)L * B * K, 0, 2), *s_g = drand(c, (size_t)2 * B * K, 0, 2);
    float *sp = drand(c, (size_t)M * K, 0, 2);
    /* targets: rows of a softmax, made on the host */
    int Mr = M ? M : 1; /* rows allocated for the masked tokens (one when M = 0) */
    float *hq = malloc(sizeof(float) * (size_t)(2 * B + Mr) * K), *hw = malloc(sizeof(float) * Mr);
    for (int i = 0; i < 2 * B + Mr; i++) {
        double z = 0;
        for (int k = 0; k < K; k++) z += hq[(size_t)i * K + k] = (float)exp(dv2_rng_normal(&c->rng));
        for (int k = 0; k < K; k++) hq[(size_t)i * K + k] = (float)(hq[(size_t)i * K + k] / z);
    }
    for (int j = 0; j < Mr; j++) hw[j] = 1.0f / (float)(1 + j % 3);
    float *q = dput(c, hq, sizeof(float) * (size_t)2 * B * K);
    float *qp = dput(c, hq + (size_t)2 * B * K, sizeof(float) * (size_t)Mr * K);
    float *w = dput(c, hw, sizeof(float) * Mr);
    free(hq), free(hw);
    float *loss = dzero(c, 3), *dl = drand(c, (size_t)L * B * K, 0, 0.1), *dg = dzero(c, (size_t)2 * B * K);
    float *dp = dzero(c, (size_t)M * K);
    if (c->failed) return;
    OP(c, c->be->dino_forward(c->be, loss, s_l, s_g, q, B, L, K, 0.1f));
    OP(c, c->be->ibot_forward(c->be, loss + 2, sp, qp, w, M, K, 2 * B, 0.1f));
    OP(c, c->be->dino_backward(c->be, L ? dl : NULL, dg, 0.7f, 1.3f, s_l, s_g, q, B, L, K, 0.1f));
    OP(c, c->be->ibot_backward(c->be, dp, 0.9f, sp, qp, w, M, K, 2 * B, 0.1f));
    get(c, "loss", loss, 3);
    get(c, "ds_l", dl, (size_t)L * B * K);
    get(c, "ds_g", dg, (size_t)2 * B * K);
    get(c, "ds_p", dp, (size_t)M * K);
}

/* a = {N, K, D, d}: the collapse diagnostics of random targets, logits,
 * class tokens and prototypes. */
static void c_collapse(run_ctx *c, const int *a) {
    int N = a[0], K = a[1], D = a[2], d = a[3];
    float *hq = malloc(sizeof(float) * (size_t)N * K);
    for (int i = 0; i < N; i++) {
        double z = 0;
        for (int k = 0; k < K; k++) z += hq[(size_t)i * K + k] = (float)exp(2 * dv2_rng_normal(&c->rng));
        for (int k = 0; k < K; k++) hq[(size_t)i * K + k] = (float)(hq[(size_t)i * K + k] / z);
    }
    float *q = dput(c, hq, sizeof(float) * (size_t)N * K);
    free(hq);
    float *t = drand(c, (size_t)N * K, 0, 1), *cls = drand(c, (size_t)N * D, 0.3, 1);
    float *g = drand(c, K, 1, 0.2), *v = drand(c, (size_t)K * d, 0, 1);
    double *out = dalloc(c, sizeof(double) * DV2_STATS_N);
    if (c->failed) return;
    OP(c, c->be->collapse_stats(c->be, out, q, t, cls, g, v, N, K, D, d));
    double h[DV2_STATS_N];
    if (c->be->to_host(c->be, h, out, sizeof h)) c->failed = 1;
    float *hf = malloc(sizeof(float) * DV2_STATS_N);
    for (int i = 0; i < DV2_STATS_N; i++) hf[i] = (float)h[i];
    c->out[c->nout].name = "stats", c->out[c->nout].h = hf, c->out[c->nout].n = DV2_STATS_N;
    c->nout++;
}

static void c_koleo(run_ctx *c, const int *a) {
    int N = a[0], C = a[1];
    float *x = drand(c, (size_t)N * C, 0, 1), *dx = dzero(c, (size_t)N * C);
    int *nn = dalloc(c, sizeof(int) * N);
    if (c->failed) return;
    float *loss = dzero(c, 1);
    if (c->failed) return;
    OP(c, c->be->koleo_forward(c->be, loss, nn, x, N, C));
    OP(c, c->be->koleo_backward(c->be, dx, 0.1f, x, nn, N, C));
    get(c, "loss", loss, 1);
    get(c, "dx", dx, (size_t)N * C);
}

/* a = {n, H, W}: u8 pixels to normalised CHW floats */
static void c_pixels(run_ctx *c, const int *a) {
    int n = a[0], H = a[1], W = a[2];
    size_t np = (size_t)n * H * W * 3;
    uint8_t *h = malloc(np);
    for (size_t i = 0; i < np; i++) h[i] = (uint8_t)dv2_rng_below(&c->rng, 256);
    uint8_t *px = dput(c, h, np);
    free(h);
    float *out = dzero(c, np);
    if (c->failed) return;
    OP(c, c->be->pixels_forward(c->be, out, px, n, H, W));
    get(c, "out", out, np);
}

static void c_optim(run_ctx *c, const int *a) {
    size_t n = (size_t)a[0];
    float *p = drand(c, n, 0, 1), *m = drand(c, n, 0, 0.1), *v = drand(c, n, 0.2, 0.01);
    float *g = drand(c, n, 0, 1), *t = drand(c, n, 0, 1);
    if (c->failed) return;
    for (int step = 1; step <= 3; step++) OP(c, c->be->adamw_step(c->be, p, NULL, m, v, g, n, 1e-3f, 0.04f, 0.9f, 0.999f, 1e-8f, step));
    OP(c, c->be->ema_update(c->be, t, NULL, p, n, 0.996f));
    get(c, "p", p, n);
    get(c, "m", m, n);
    get(c, "v", v, n);
    get(c, "teacher", t, n);
}

static const op_case k_cases[] = {
    {"linear_forward 1x1->1", "linear", c_linear_fwd, {1, 1, 1, 1, 0}, 0},
    {"linear_forward 7x13->5 nobias", "linear", c_linear_fwd, {7, 13, 5, 0, 0}, 0},
    {"linear_forward 67x97->31", "linear", c_linear_fwd, {67, 97, 31, 1, 0}, 0},
    {"linear_forward 131x129->3", "linear", c_linear_fwd, {131, 129, 3, 1, 0}, 0},
    {"linear_forward+gelu 67x97->31", "linear", c_linear_fwd, {67, 97, 31, 1, DV2_LINEAR_GELU}, 0},
    {"linear_forward 67x97->31 no compute copy", "linear", c_linear_fwd, {67, 97, 31, 1, 0, 1}, 0},
    {"linear_backward 1x1->1", "linear", c_linear_bwd, {1, 1, 1, 0}, 0},
    {"linear_backward 67x97->31", "linear", c_linear_bwd, {67, 97, 31, 0}, 0},
    {"linear_backward 131x3->129 accumulate", "linear", c_linear_bwd, {131, 3, 129, DV2_LINEAR_ACCUMULATE}, 0},
    {"linear_backward+dgelu 13x31->67", "linear", c_linear_bwd, {13, 31, 67, DV2_LINEAR_GELU}, 0},
    {"linear_backward 67x97->31 no compute copy", "linear", c_linear_bwd, {67, 97, 31, 0, 1}, 0},
    {"patch_embed p2 2x3x6x10 D5", "patch_embed", c_patch, {2, 6, 10, 2, 5}, 0},
    {"patch_embed p7 3x3x14x21 D13", "patch_embed", c_patch, {3, 14, 21, 7, 13}, 0},
    {"posembed 5->3x7 D5 offset", "posembed", c_posembed, {5, 3, 7, 5, 0}, 0},
    {"posembed 7->11x2 D3 antialias", "posembed", c_posembed, {7, 11, 2, 3, 1}, 0},
    {"posembed 4->4x4 D6 identity", "posembed", c_posembed, {4, 4, 4, 6, 0}, 0},
    {"embed_tokens B3 N5 R0 D7", "embed_tokens", c_tokens, {3, 5, 0, 7}, 0},
    {"embed_tokens B2 N11 R2 D3", "embed_tokens", c_tokens, {2, 11, 2, 3}, 0},
    {"layernorm 13x1", "layernorm", c_layernorm, {13, 1}, 0},
    {"layernorm 13x97", "layernorm", c_layernorm, {13, 97}, 0},
    {"l2norm 7x31", "l2norm", c_l2norm, {7, 31}, 0},
    {"weightnorm 11x13", "weightnorm", c_weightnorm, {11, 13}, 0},
    {"attention 3 seqs (1,7,17) H2 dh5", "attention", c_attention, {3, 2, 5, 1, 7, 17}, 0},
    {"attention 2 seqs (130,3) H3 dh8", "attention", c_attention, {2, 3, 8, 130, 3, 0}, 0},
    {"attention 1 seq (67) H1 dh64", "attention", c_attention, {1, 1, 64, 67, 0, 0}, 0},
    {"attention 3 seqs (0,5,70) H2 dh128", "attention", c_attention, {3, 2, 128, 0, 5, 70}, 0},
    {"attention 2 seqs (33,1) H1 dh33", "attention", c_attention, {2, 1, 33, 33, 1, 0}, 0},
    {"attention 1 seq (2) H4 dh100", "attention", c_attention, {1, 4, 100, 2, 0, 0}, 0},
    {"gelu 1", "gelu", c_gelu, {1}, 0},
    {"gelu 1001", "gelu", c_gelu, {1001}, 0},
    {"swiglu 7x13", "swiglu", c_swiglu, {7, 13}, 0},
    {"residual full 13x7", "residual", c_residual, {13, 13, 7, 0}, 0},
    {"residual subset 13 of 29 x5", "residual", c_residual, {29, 13, 5, 1}, 0},
    {"gather/scatter 17 rows of 31x7", "rows", c_rows, {31, 17, 7}, 0},
    {"add/scale/sumsq/all_finite 1", "elementwise", c_elementwise, {1}, 0},
    {"add/scale/sumsq/all_finite 40009", "elementwise", c_elementwise, {40009}, 0},
    {"copy/zero + collectives (1 process) 1", "memory", c_memory, {1}, 0},
    {"copy/zero + collectives (1 process) 1001", "memory", c_memory, {1001}, 0},
    {"targets center+SK 13x37", "targets", c_targets, {13, 37}, 0},
    {"targets center+SK 1x5", "targets", c_targets, {1, 5}, 0},
    {"koleo 11x7", "koleo", c_koleo, {11, 7}, 0},
    {"dino+ibot B3 L2 K37 M11", "losses", c_dino_ibot, {3, 2, 37, 11}, 0},
    {"dino+ibot B1 L0 K5 M0", "losses", c_dino_ibot, {1, 0, 5, 0}, 0},
    {"collapse_stats 13x37 D11 d7", "stats", c_collapse, {13, 37, 11, 7}, 0},
    {"collapse_stats 1x3 D1 d1", "stats", c_collapse, {1, 3, 1, 1}, 0},
    {"adamw x3 + ema 1031", "optim", c_optim, {1031}, 0},
    {"pixels 3x7x5", "pixels", c_pixels, {3, 7, 5}, 0},
    {"pixels 1x1x1", "pixels", c_pixels, {1, 1, 1}, 0},
    /* model-sized: ViT-S/14 at batch 8 (8·257 = 2056 global tokens, D 384,
     * 6 heads of 64, MLP 1536; local crops of 50 tokens, 12 heads of 32 as
     * ViT-B's head count at half the width), DINO heads of 65536 prototypes */
    {"BIG linear qkv 2056x384->1152", "linear", c_linear_fwd, {2056, 384, 1152, 1, 0}, 1},
    {"BIG linear+gelu fc1 2056x384->1536", "linear", c_linear_fwd, {2056, 384, 1536, 1, DV2_LINEAR_GELU}, 1},
    {"BIG linear_backward fc2 2056x1536->384", "linear", c_linear_bwd, {2056, 1536, 384, 0}, 1},
    {"BIG linear_backward+dgelu fc1 2056x384->1536", "linear", c_linear_bwd, {2056, 384, 1536, DV2_LINEAR_GELU}, 1},
    {"BIG patch_embed p14 8x3x224x224 D384", "patch_embed", c_patch, {8, 224, 224, 14, 384}, 1},
    {"BIG attention 8x257 H6 dh64", "attention", c_attention, {8, 6, 64, 257, 257, 257}, 1},
    {"BIG attention 24x(50,50,37) H12 dh32", "attention", c_attention, {24, 12, 32, 50, 50, 37}, 1},
    {"BIG attention 4x(197,1,65) H2 dh80", "attention", c_attention, {4, 2, 80, 197, 1, 65}, 1},
    {"BIG layernorm 2056x384", "layernorm", c_layernorm, {2056, 384}, 1},
    {"BIG gelu 2056x1536", "gelu", c_gelu, {2056 * 1536}, 1},
    {"BIG residual subset 1028 of 2056 x384", "residual", c_residual, {2056, 1028, 384, 1}, 1},
    {"BIG targets center+SK 16x65536", "targets", c_targets, {16, 65536}, 1},
    {"BIG dino+ibot B8 L8 K65536 M400", "losses", c_dino_ibot, {8, 8, 65536, 400}, 1},
    {"BIG koleo 64x384", "koleo", c_koleo, {64, 384}, 1},
    {"BIG adamw x3 + ema 4000037", "optim", c_optim, {4000037}, 1},
};
#define NCASES (int)(sizeof k_cases / sizeof k_cases[0])

/* ---- the backend's context --------------------------------------------------- */

/* On a fresh backend of this name: the workspace grows to its high-water
 * mark and is reused; a workspace that cannot grow fails, and the failure
 * stays (sticky) in status and sync and in dv2_backend_check's error (an op
 * whose scratch fails returns the same status and fills its output with
 * NaN).  Returns the number of failures. */
static int check_context(const char *name) {
    dv2_backend *be;
    dv2_error err = {0};
    int bad = 0;
    if (dv2_backend_open(&be, name, NULL, 0, &err)) return 1;
    dv2_backend_info info;
    void *w1 = be->workspace(be, 1000), *w2 = be->workspace(be, 10);
    be->info(be, &info);
    if (!w1 || w1 != w2 || info.workspace_high != 1000 || be->status(be) || be->sync(be)) {
        fprintf(stderr, "FAIL %s: workspace not reused or its mark wrong (%zu)\n", name, info.workspace_high);
        bad++;
    }
    if (be->workspace(be, SIZE_MAX / 2) != NULL || be->status(be) != DV2_ENOMEM || be->sync(be) != DV2_ENOMEM) {
        fprintf(stderr, "FAIL %s: a workspace that cannot grow is not a sticky DV2_ENOMEM\n", name);
        bad++;
    }
    if (dv2_backend_check(be, "a pass", &err) != DV2_ENOMEM || !strstr(err.msg, "a pass") ||
        !strstr(err.msg, "out of memory")) {
        fprintf(stderr, "FAIL %s: dv2_backend_check said '%s'\n", name, err.msg);
        bad++;
    }
    dv2_backend_close(be);
    return bad;
}

/* On a fresh backend of this name that keeps bf16 compute copies
 * (weights_bf16): adamw_step and ema_update write the copy of the values
 * they write (the same bits as to_bf16 of them); a GEMM given the copy gives
 * the same bits as one that rounds the weight itself (forward, and din in
 * backward); on the CPU reference a stale copy fails the op (DV2_EINVAL,
 * sticky, NaN out).  Returns the number of failures. */
static int check_compute_copy(const char *name) {
    dv2_backend *be;
    dv2_error err = {0};
    if (dv2_backend_open(&be, name, NULL, 0, &err)) return 1;
    if (!be->weights_bf16) {
        dv2_backend_close(be);
        return 0;
    }
    int bad = 0;
    run_ctx c;
    memset(&c, 0, sizeof c);
    c.be = be;
    dv2_rng_seed(&c.rng, 77, 0);
    const int N = 37, I = 29, O = 19;
    const size_t n = (size_t)O * I;
    float *p = drand(&c, n, 0, 1), *m = dzero(&c, n), *v = dzero(&c, n), *g = drand(&c, n, 0, 1);
    float *t = drand(&c, n, 0, 1), *in = drand(&c, (size_t)N * I, 0, 1), *b = drand(&c, O, 0, 1);
    float *o1 = dzero(&c, (size_t)N * O), *o2 = dzero(&c, (size_t)N * O), *dout = drand(&c, (size_t)N * O, 0, 1);
    float *d1 = dzero(&c, (size_t)N * I), *d2 = dzero(&c, (size_t)N * I);
    dv2_bf16 *p16 = dalloc(&c, n * 2), *t16 = dalloc(&c, n * 2), *q16 = dalloc(&c, n * 2);
    dv2_bf16 *h16 = malloc(n * 2), *hq = malloc(n * 2);
    float *h1 = malloc(sizeof(float) * (size_t)N * O), *h2 = malloc(sizeof(float) * (size_t)N * O);
    if (c.failed || !h16 || !hq || !h1 || !h2) {
        fprintf(stderr, "FAIL %s: compute-copy check: allocation\n", name);
        bad++;
        goto done;
    }
    const char *what[2] = {"adamw_step", "ema_update"};
    for (int k = 0; k < 2; k++) {
        int rc = k == 0 ? be->adamw_step(be, p, p16, m, v, g, n, 1e-2f, 0.04f, 0.9f, 0.999f, 1e-8f, 1)
                        : be->ema_update(be, t, t16, p, n, 0.9f);
        rc = rc ? rc : be->to_bf16(be, q16, k == 0 ? p : t, n);
        if (rc || be->sync(be) || be->to_host(be, h16, k == 0 ? p16 : t16, n * 2) || be->to_host(be, hq, q16, n * 2) ||
            memcmp(h16, hq, n * 2)) {
            fprintf(stderr, "FAIL %s: %s's compute copy is not to_bf16 of the values it wrote\n", name, what[k]);
            bad++;
        }
    }
    /* p16 is p's copy now: the GEMMs with and without it */
    int rc = be->linear_forward(be, o1, NULL, in, p, p16, b, N, I, O, 0);
    rc = rc ? rc : be->linear_forward(be, o2, NULL, in, p, NULL, b, N, I, O, 0);
    rc = rc ? rc : be->linear_backward(be, d1, NULL, NULL, NULL, dout, NULL, in, p, p16, N, I, O, 0);
    rc = rc ? rc : be->linear_backward(be, d2, NULL, NULL, NULL, dout, NULL, in, p, NULL, N, I, O, 0);
    size_t bo = sizeof(float) * (size_t)N * O, bi = sizeof(float) * (size_t)N * I;
    if (rc || be->sync(be) || be->to_host(be, h1, o1, bo) || be->to_host(be, h2, o2, bo) || memcmp(h1, h2, bo)) {
        fprintf(stderr, "FAIL %s: linear_forward with the compute copy differs from rounding the weight\n", name);
        bad++;
    }
    float *e1 = malloc(bi), *e2 = malloc(bi);
    if (!e1 || !e2 || be->to_host(be, e1, d1, bi) || be->to_host(be, e2, d2, bi) || memcmp(e1, e2, bi)) {
        fprintf(stderr, "FAIL %s: linear_backward's din with the compute copy differs\n", name);
        bad++;
    }
    free(e1), free(e2);
    if (!strncmp(name, "cpu", 3)) { /* the reference checks the copy: a stale one fails */
        be->scale(be, p, 1.5f, n);
        rc = be->linear_forward(be, o1, NULL, in, p, p16, b, N, I, O, 0);
        be->to_host(be, h1, o1, bo);
        if (rc != DV2_EINVAL || be->status(be) != DV2_EINVAL || !isnan(h1[0]) || !isnan(h1[(size_t)N * O - 1])) {
            fprintf(stderr, "FAIL %s: a stale compute copy was not refused (rc %d, out[0] %g)\n", name, rc, h1[0]);
            bad++;
        }
    }
done:
    free(h16), free(hq), free(h1), free(h2);
    run_free(&c);
    dv2_backend_close(be);
    return bad;
}

/* ---- tolerances ------------------------------------------------------------ */

/* bf16_outputs: the outputs this backend stores in bf16 (comma-separated
 * names); each of their values must be exactly representable in bf16. */
typedef struct { double atol, rtol, nmse; const char *reason; const char *bf16_outputs; } tol;

static const tol k_exact = {0, 0, 0, "f32 entry shared with the CPU backend: identical bits", ""};

/* The tolerance of op on backend be against the f32 CPU backend. */
static tol tol_for(const dv2_backend *be, const char *op) {
    if (!strcmp(be->name, "cpu-bf16")) {
        /* bf16 keeps 8 significant bits: one rounding is 2^-9 relative at
         * most.  A GEMM output sums K products of rounded operands (errors
         * ~2^-9·sqrt(K) of the row's scale, so they are bounded against
         * rms(ref), not |ref|, where sums cancel) and is rounded once more. */
        if (!strcmp(op, "linear") || !strcmp(op, "patch_embed"))
            return (tol){0.03, 0.01, 2e-4, "bf16 operands and output: 2^-9 per rounding, sqrt(K) growth",
                         "out,pre,din"};
        if (!strcmp(op, "attention"))
            return (tol){0.05, 0.02, 5e-4, "bf16 q/k/v, output and dqkv; softmax and lse in f32", "out,dqkv"};
        if (!strcmp(op, "gelu") || !strcmp(op, "swiglu"))
            return (tol){1e-3, 4e-3, 2e-5, "output rounded to bf16 (2^-9 relative); backward f32", "out"};
        return k_exact;
    }
    if (!strcmp(be->name, "cuda") || !strcmp(be->name, "cuda-bf16")) {
        int bf16 = !strcmp(be->name, "cuda-bf16");
        if (bf16 && (!strcmp(op, "linear") || !strcmp(op, "patch_embed")))
            return (tol){0.03, 0.01, 2e-4, "bf16 tensor-core GEMM: bf16 operands and output (cpu-bf16's points)",
                         "out,pre,din"};
        if (bf16 && !strcmp(op, "attention")) /* cpu-bf16 reaches 0.99 of its 0.05 on the 24-sequence case */
            return (tol){0.08, 0.03, 8e-4, "bf16 q/k/v, output and dqkv; online softmax in f32 in another order",
                         "out,dqkv"};
        if (bf16 && (!strcmp(op, "gelu") || !strcmp(op, "swiglu")))
            return (tol){1e-3, 4e-3, 2e-5, "output rounded to bf16 (2^-9 relative); backward f32", "out"};
        /* f32 everywhere else.  A sum of K terms in another order differs by
         * ~2^-24·sqrt(K) of the sum's scale (K up to 1536 here: ~3e-6·rms;
         * the bound allows the tail of millions of elements). */
        if (!strcmp(op, "linear") || !strcmp(op, "patch_embed") || !strcmp(op, "posembed"))
            return (tol){5e-5, 1e-5, 1e-9, "cuBLAS FP32 (no TF32): another summation order than OpenBLAS", ""};
        if (!strcmp(op, "attention"))
            return (tol){5e-5, 1e-5, 1e-9, "online softmax: another order of the exp-sums and products", ""};
        if (!strcmp(op, "targets") || !strcmp(op, "losses") || !strcmp(op, "stats") || !strcmp(op, "koleo"))
            return (tol){2e-5, 1e-4, 1e-9, "sums over up to 65536 prototypes in another order; expf/logf of CUDA (2 ulp)", ""};
        if (!strcmp(op, "pixels"))
            return (tol){0, 1.2e-7, 1e-14, "same arithmetic as the host transform, no FMA contraction: at most 1 ulp", ""};
        return (tol){1e-5, 1e-5, 1e-10, "f32 kernel: reductions in another order, CUDA libm (erff, expf, rsqrtf)", ""};
    }
    /* A backend with no entry here (a new GPU backend): bf16-class bounds
     * until it is given its own. */
    return (tol){0.05, 0.02, 5e-4, "default for a backend with no tolerances of its own (bf16 class)", ""};
}

/* ---- comparison ------------------------------------------------------------- */

static int in_list(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) return 1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

static int bf16_exact(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (u & 0xffffu) == 0;
}

static int compare(const op_case *oc, const dv2_backend *be, const run_ctx *ref, const run_ctx *got,
                   tol t, double *worst_out, double *nmse_out) {
    int bad = 0;
    double worst = 0, worst_nmse = 0;
    for (int i = 0; i < ref->nout; i++) {
        const float *r = ref->out[i].h, *g = got->out[i].h;
        size_t n = ref->out[i].n;
        double ss = 0, se = 0, viol = 0;
        size_t wi = 0;
        for (size_t k = 0; k < n; k++) ss += (double)r[k] * r[k];
        double rms = n ? sqrt(ss / n) : 0;
        for (size_t k = 0; k < n; k++) {
            double e = fabs((double)g[k] - r[k]);
            if (isnan(r[k]) && isnan(g[k])) e = 0;
            else if (isnan(e)) e = INFINITY;
            se += e * e;
            double lim = t.atol * rms + t.rtol * fabs(r[k]);
            double v = lim > 0 ? e / lim : (e > 0 ? INFINITY : 0);
            if (v > viol) { viol = v; wi = k; }
        }
        double nmse = ss > 0 ? se / ss : (se > 0 ? INFINITY : 0);
        int fail = viol > 1 || nmse > t.nmse;
        if (viol > worst) worst = viol;
        if (nmse > worst_nmse) worst_nmse = nmse;
        if (in_list(t.bf16_outputs, ref->out[i].name))
            for (size_t k = 0; k < n; k++)
                if (!bf16_exact(g[k])) {
                    fprintf(stderr, "FAIL %s on %s, %s: [%zu] = %.9g is not a bf16 value (stored as bf16)\n",
                            oc->name, be->name, ref->out[i].name, k, g[k]);
                    bad++;
                    break;
                }
        if (fail) {
            bad++;
            fprintf(stderr, "FAIL %s on %s, %s: worst [%zu] got %.9g ref %.9g (%.3g of the bound), "
                    "nmse %.3g (bound %.3g; %s)\n", oc->name, be->name, ref->out[i].name, wi,
                    n ? g[wi] : 0.0, n ? r[wi] : 0.0, viol, nmse, t.nmse, t.reason);
        }
    }
    *worst_out = worst;
    *nmse_out = worst_nmse;
    return bad;
}

/* Whether case oc runs: --case names (any of npick substrings), else all
 * but the model-sized ones under --small. */
static int picked(const op_case *oc, int small, const char *const *pick, int npick) {
    if (!npick) return !(small && oc->big);
    for (int i = 0; i < npick; i++)
        if (strstr(oc->name, pick[i])) return 1;
    return 0;
}

static int run_case(run_ctx *c, const dv2_backend *be, const op_case *oc, uint64_t seed, int reps) {
    memset(c, 0, sizeof *c);
    c->be = be;
    c->reps = reps;
    dv2_rng_seed(&c->rng, seed, 0);
    oc->run(c, oc->a);
    return c->failed ? -1 : 0;
}

/* The CPU backend's vector kernels (ops/cpu/cpu_vec.c): every instruction
 * set this CPU has gives the bits of the SSE2 copy, at lengths 1..70 and
 * 4099 from misaligned starts, NaN and infinities included; and the SSE2
 * copy is within its stated accuracy of double precision (GELU 1e-6
 * relative of x·Φ(x) for |x| < 2, 5e-6 below 5 and an absolute 1e-7
 * anywhere; exp within 3e-7 relative).  Returns the number of failures and
 * adds the number of checks to *checks. */
#define VN 4099
static int check_vec_variants(int *checks) {
    const char *names[] = {"sse2", "avx2", "avx512"};
    const dv2_cpu_vec_ops *base = dv2_cpu_vec_get("sse2");
    if (!base) {
        printf("skip vector-kernel variants: not an x86-64 build\n");
        return 0;
    }
    dv2_rng r;
    dv2_rng_seed(&r, 5, 0);
    enum { NB = 8 };
    float *b[NB];
    for (int k = 0; k < NB; k++) b[k] = malloc(sizeof(float) * (VN + 8));
    float *x = b[0], *g = b[1];
    for (int i = 0; i < VN + 8; i++) {
        x[i] = (float)(12.0 * (dv2_rng_uniform(&r) - 0.5));
        g[i] = (float)dv2_rng_normal(&r);
    }
    x[3] = NAN, x[11] = INFINITY, x[12] = -INFINITY, x[13] = -200.0f, x[14] = 0.0f, x[15] = -0.0f;
    int bad = 0;
    /* accuracy of the reference copy */
    base->gelu(b[2], x, VN);
    double worst = 0;
    for (int i = 16; i < VN; i++) {
        double xd = x[i], ref = 0.5 * xd * erfc(-xd / sqrt(2.0)), e = fabs(b[2][i] - ref);
        double lim = fabs(xd) < 2 ? 1e-6 : 5e-6;
        if (e > lim * fabs(ref) + 1e-7) bad++;
        if (fabs(ref) > 1e-3 && e / fabs(ref) > worst) worst = e / fabs(ref);
    }
    for (int i = 0; i < VN; i++) b[3][i] = (float)(-30.0 * dv2_rng_uniform(&r));
    memcpy(b[4], b[3], sizeof(float) * VN);
    double s = base->exp_sum(b[4], VN, 0.0f), sd = 0, we = 0;
    for (int i = 0; i < VN; i++) {
        double ref = exp((double)b[3][i]), e = fabs(b[4][i] - ref) / ref;
        sd += b[4][i];
        if (e > we) we = e;
    }
    if (we > 3e-7 || fabs(s - sd) > 1e-6 * sd) bad++;
    (*checks)++;
    printf("vector kernels: %s chosen; gelu worst relative error %.3g, exp %.3g\n",
           dv2_cpu_vec()->name, worst, we);
    if (bad) fprintf(stderr, "FAIL vector kernels: outside the stated accuracy (%d)\n", bad);
    for (int v = 1; v < 3; v++) {
        const dv2_cpu_vec_ops *o = dv2_cpu_vec_get(names[v]);
        if (!o) {
            printf("skip vector kernels %s: this CPU does not have it\n", names[v]);
            continue;
        }
        int diff = 0;
        for (int len = 1; len <= VN; len = len < 70 ? len + 1 : VN) {
            for (int off = 0; off < 2; off++) {
                const float *xi = x + off + (len % 3), *gi = g + off;
                base->gelu(b[2], xi, (size_t)len), o->gelu(b[3], xi, (size_t)len);
                diff += memcmp(b[2], b[3], sizeof(float) * (size_t)len) != 0;
                for (int acc = 0; acc < 2; acc++) {
                    memcpy(b[2], g + 3, sizeof(float) * (size_t)len);
                    memcpy(b[3], g + 3, sizeof(float) * (size_t)len);
                    base->gelu_grad(b[2], gi, xi, (size_t)len, acc);
                    o->gelu_grad(b[3], gi, xi, (size_t)len, acc);
                    diff += memcmp(b[2], b[3], sizeof(float) * (size_t)len) != 0;
                }
                float m1 = base->max(gi, len), m2 = o->max(gi, len);
                diff += memcmp(&m1, &m2, sizeof m1) != 0;
                memcpy(b[2], gi, sizeof(float) * (size_t)len);
                memcpy(b[3], gi, sizeof(float) * (size_t)len);
                double s1 = base->exp_sum(b[2], len, m1), s2 = o->exp_sum(b[3], len, m1);
                diff += s1 != s2 || memcmp(b[2], b[3], sizeof(float) * (size_t)len) != 0;
                memcpy(b[4], xi, sizeof(float) * (size_t)len);
                memcpy(b[5], xi, sizeof(float) * (size_t)len);
                memcpy(b[6], gi, sizeof(float) * (size_t)len);
                memcpy(b[7], gi, sizeof(float) * (size_t)len);
                base->softmax_grad(b[6], b[4], len, 1.5f, 0.25f);
                o->softmax_grad(b[7], b[5], len, 1.5f, 0.25f);
                diff += memcmp(b[4], b[5], sizeof(float) * (size_t)len) != 0 ||
                        memcmp(b[6], b[7], sizeof(float) * (size_t)len) != 0;
                if (len <= 64) { /* column sums of 61 rows, ld 67: the plain loop's bits */
                    double a1[64], a2[64], a3[64];
                    for (int o = 0; o < len; o++) a1[o] = a2[o] = a3[o] = o;
                    base->colsum(a1, gi, 61, 67, len), o->colsum(a2, gi, 61, 67, len);
                    for (int o = 0; o < len; o++)
                        for (int n = 0; n < 61; n++) a3[o] += gi[n * 67 + o];
                    diff += memcmp(a1, a2, sizeof(double) * (size_t)len) != 0 ||
                            memcmp(a1, a3, sizeof(double) * (size_t)len) != 0;
                }
            }
            if (len == VN) break;
        }
        (*checks)++;
        printf("vector kernels %s: %s the bits of sse2\n", names[v], diff ? "NOT" : "gives");
        if (diff) {
            fprintf(stderr, "FAIL vector kernels %s: %d results differ from sse2\n", names[v], diff);
            bad++;
        }
    }
    for (int k = 0; k < NB; k++) free(b[k]);
    return bad;
}

int main(int argc, char **argv) {
    int perf = 0, reps = 20, list = 0, small = 0;
    const char *only = NULL, *require = "";
    const char *pick[16];
    int npick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--perf")) {
            perf = 1;
            if (i + 1 < argc && atoi(argv[i + 1]) > 0) reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--list")) {
            list = 1;
        } else if (!strcmp(argv[i], "--small")) {
            small = 1;
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            only = argv[++i];
        } else if (!strcmp(argv[i], "--require") && i + 1 < argc) {
            require = argv[++i];
        } else if (!strcmp(argv[i], "--case") && i + 1 < argc && npick < 16) {
            pick[npick++] = argv[++i];
        } else {
            fprintf(stderr, "usage: test_backend_ops [--perf [REPS]] [--list] [--only B,B] [--require B,B] [--small] [--case S]...\n"
                            "  --small: leave out the model-sized cases (for a memory checker)\n"
                            "  --only: check these backends (and cpu, the reference) only\n"
                            "  --require: fail, not skip, when one of these cannot be opened\n"
                            "  --case: only the cases whose name contains S (repeatable; a model-sized\n"
                            "          case picked by name runs even with --small)\n"
                            "  exit 0 ok, 1 a failure, 77 every backend asked for was skipped\n");
            return 2;
        }
    }
    /* bes[0] is "cpu", the reference; a backend this machine cannot open
     * (a CUDA build without a GPU) is skipped unless --require names it. */
    dv2_backend *bes[8] = {0};
    size_t nbe = 0, asked = 0;
    for (size_t b = 0; b < dv2_backend_count() && nbe < 8; b++) {
        const char *name = dv2_backend_name_at(b);
        if (b && only && !in_list(only, name)) continue;
        asked += b > 0;
        dv2_error err = {0};
        int rc = dv2_backend_open(&bes[nbe], name, NULL, 0, &err);
        if (rc == DV2_EUNSUPPORTED && !in_list(require, name)) {
            printf("skip backend %s: %s\n", name, err.msg);
            continue;
        }
        if (rc) {
            fprintf(stderr, "FAIL: cannot open backend %s: %s\n", name, err.msg);
            return 1;
        }
        nbe++;
    }
    if (asked && nbe == 1 && only) {
        printf("test_backend_ops: every backend of --only %s was skipped\n", only);
        return 77;
    }
    for (size_t b = 1; b < nbe; b++) {
        dv2_backend_info info;
        bes[b]->info(bes[b], &info);
        printf("backend %s: %s\n", bes[b]->name, info.device);
    }
    const dv2_backend *cpu = bes[0]; /* "cpu", the reference */
    if (list) {
        for (int k = 0; k < NCASES; k++) {
            printf("%s\n", k_cases[k].name);
            for (size_t b = 0; b < nbe; b++)
                if (bes[b] != cpu) {
                    tol t = tol_for(bes[b], k_cases[k].op);
                    printf("    %-9s atol %g·rms rtol %g nmse %g: %s\n", bes[b]->name, t.atol,
                           t.rtol, t.nmse, t.reason);
                }
        }
        return 0;
    }
    int checks = 0, failures = 0;
    for (size_t b = 0; b < nbe; b++) { /* the context: workspace, sticky status */
        failures += check_context(bes[b]->name);
        failures += check_compute_copy(bes[b]->name);
        checks += 2;
    }
    failures += check_vec_variants(&checks);
    /* worst: the largest |got-ref| as a fraction of its element bound;
     * nmse: the largest per-tensor NMSE */
    printf("%-40s %-9s %8s %9s %s\n", "case", "backend", "worst", "nmse", "outputs");
    for (int k = 0; k < NCASES; k++) {
        const op_case *oc = &k_cases[k];
        uint64_t seed = 1000 + (uint64_t)k;
        if (!picked(oc, small, pick, npick)) continue;
        run_ctx ref, again;
        if (run_case(&ref, cpu, oc, seed, 0) || run_case(&again, cpu, oc, seed, 0)) {
            fprintf(stderr, "FAIL %s: the CPU backend's memory entries failed\n", oc->name);
            failures++;
            run_free(&ref);
            run_free(&again);
            continue;
        }
        double w, nm;
        checks++;
        if (compare(oc, cpu, &ref, &again, k_exact, &w, &nm)) {
            fprintf(stderr, "FAIL %s: the CPU backend is not deterministic\n", oc->name);
            failures++;
        }
        run_free(&again);
        for (size_t b = 0; b < nbe; b++) {
            const dv2_backend *be = bes[b];
            if (be == cpu) continue;
            run_ctx got;
            checks++;
            if (run_case(&got, be, oc, seed, 0)) {
                fprintf(stderr, "FAIL %s on %s: a memory entry failed\n", oc->name, be->name);
                failures++;
            } else if (got.nout != ref.nout) {
                fprintf(stderr, "FAIL %s on %s: %d outputs, the CPU gave %d\n", oc->name, be->name,
                        got.nout, ref.nout);
                failures++;
            } else {
                tol t = tol_for(be, oc->op);
                if (compare(oc, be, &ref, &got, t, &w, &nm)) failures++;
                printf("%-40s %-9s %8.3g %9.3g %d\n", oc->name, be->name, w, nm, ref.nout);
            }
            run_free(&got);
        }
        run_free(&ref);
    }
    if (perf) { /* the entries only: mean ms per call over reps calls after a warm-up */
        printf("\n%-40s", "perf: ms per call of the case's entries");
        for (size_t b = 0; b < nbe; b++) printf(" %10s", bes[b]->name);
        if (nbe > 1) printf("   cpu/%s", bes[nbe - 1]->name);
        printf("\n");
        for (int k = 0; k < NCASES; k++) {
            if (!picked(&k_cases[k], small, pick, npick)) continue;
            printf("%-40s", k_cases[k].name);
            double ms0 = 0, ms = 0;
            for (size_t b = 0; b < nbe; b++) {
                run_ctx c;
                /* the CPU at the big sizes: fewer reps, its calls are long */
                int r = b == 0 && k_cases[k].big ? (reps + 9) / 10 : reps;
                run_case(&c, bes[b], &k_cases[k], 1000 + (uint64_t)k, r);
                ms = c.op_ms;
                if (b == 0) ms0 = ms;
                printf(" %10.4f", ms);
                run_free(&c);
            }
            if (nbe > 1 && ms > 0) printf(" %8.1fx", ms0 / ms);
            printf("\n");
        }
    }
    printf("test_backend_ops: %d cases x %zu backends, %d checks, %d failed\n", NCASES, nbe, checks, failures);
    for (size_t b = 0; b < nbe; b++) dv2_backend_close(bes[b]);
    return failures ? 1 : 0;
}
