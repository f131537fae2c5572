/* resnet.c — the SSCD ResNet on the CPU (see resnet.h): loading with batch
 * norm folded, im2col + SGEMM convolutions over channel-first (C, N, H, W)
 * activations, grouped convolutions by group and image, max-pool,
 * bottlenecks, GeM, projection, L2 norm.
 *
 * Numerics against PyTorch (float32 everywhere): the folded weights round
 * once where PyTorch rounds the convolution and the normalisation
 * separately, and the GEMMs sum in another order; GeM and the L2 norm
 * accumulate in double.  tests/t_sscd.sh pins the end-to-end difference. */
#include "model/resnet.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"

#define BN_EPS 1e-5
#define SUB 8 /* images per sub-batch: GEMMs wide enough at 9x9, buffers ~35 MB per image at 288 */

typedef struct conv {
    int cin, cout, k, stride, pad, groups;
    float *w; /* (cout, cin/groups * k * k), batch norm folded */
    float *b; /* (cout) */
} conv;

typedef struct block {
    conv c1, c2, c3, down;
    int has_down;
} block;

struct dv2_resnet {
    dv2_resnet_arch arch;
    conv stem;
    block *blocks;
    int nblocks;
    int feat;      /* channels of the last stage (2048) */
    float *fc_w;   /* (dims, feat) */
    float *fc_b;   /* (dims) */
    /* buffers for sub-batches of nb images of h x w */
    int buf_n, buf_h, buf_w, buf_t; /* buf_t: threads the grouped slices of col were planned for */
    float *act[5]; /* x, t1, t2, out, scratch: (C, nb, H, W) each */
    float *col;    /* im2col */
};

void dv2_resnet_arch_sscd50(dv2_resnet_arch *a) {
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "sscd_resnet50");
    a->layers[0] = 3, a->layers[1] = 4, a->layers[2] = 6, a->layers[3] = 3;
    a->groups = 1;
    a->width = 64;
    a->dims = 512;
    a->gem_p = 3.0f;
}

int dv2_resnet_is_weights(const dv2_safetensors_file *f) {
    const char *a = dv2_safetensors_meta(f, "arch");
    return (a && !strncmp(a, "sscd_", 5)) || dv2_safetensors_meta(f, "resnet_layers") != NULL;
}

static int meta_int(const dv2_safetensors_file *f, const char *key, int lo, int hi, int *v, dv2_error *err) {
    const char *s = dv2_safetensors_meta(f, key);
    if (!s) return 0;
    char *end;
    long x = strtol(s, &end, 10);
    if (end == s || *end || x < lo || x > hi)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: metadata %s: expected %d..%d, got '%s'",
                             dv2_safetensors_path(f), key, lo, hi, s);
    *v = (int)x;
    return 0;
}

int dv2_resnet_arch_read(const dv2_safetensors_file *f, dv2_resnet_arch *a, dv2_error *err) {
    const char *P = dv2_safetensors_path(f);
    dv2_resnet_arch_sscd50(a);
    const char *name = dv2_safetensors_meta(f, "arch");
    if (name) {
        if (strlen(name) >= sizeof a->name)
            return dv2_error_set(err, DV2_ECORRUPT, "%s: metadata arch is too long", P);
        snprintf(a->name, sizeof a->name, "%s", name);
    }
    const char *l = dv2_safetensors_meta(f, "resnet_layers");
    if (l) {
        int n = 0, c = 0;
        if (sscanf(l, "%d,%d,%d,%d%n", &a->layers[0], &a->layers[1], &a->layers[2], &a->layers[3], &n) != 4 ||
            l[n])
            return dv2_error_set(err, DV2_ECORRUPT, "%s: metadata resnet_layers: expected 4 counts, got '%s'", P, l);
        for (int i = 0; i < 4; i++) c |= a->layers[i] < 1 || a->layers[i] > 64;
        if (c) return dv2_error_set(err, DV2_ECORRUPT, "%s: metadata resnet_layers: counts out of 1..64: '%s'", P, l);
    }
    int rc;
    if ((rc = meta_int(f, "resnet_groups", 1, 256, &a->groups, err)) ||
        (rc = meta_int(f, "resnet_width", 1, 1024, &a->width, err)) ||
        (rc = meta_int(f, "dims", 1, 65536, &a->dims, err)))
        return rc;
    const char *p = dv2_safetensors_meta(f, "gem_p");
    if (p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || *end || !(v >= 1.0 && v <= 16.0))
            return dv2_error_set(err, DV2_ECORRUPT, "%s: metadata gem_p: expected 1..16, got '%s'", P, p);
        a->gem_p = (float)v;
    }
    return 0;
}

const dv2_resnet_arch *dv2_resnet_get_arch(const dv2_resnet *r) { return &r->arch; }

/* ---- loading ------------------------------------------------------------- */

static int check_finite(const float *v, size_t n, const char *path, const char *name, dv2_error *err) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return dv2_error_set(err, DV2_ECORRUPT, "%s: tensor %s: element %zu is not finite", path, name, i);
    return 0;
}

static int load(const dv2_safetensors_file *f, const char *name, const int64_t *shape, int ndim, float *out,
                dv2_error *err) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    int rc = dv2_safetensors_load(f, name, shape, ndim, out, err);
    if (rc == DV2_ENOTFOUND)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: tensor %s is missing (not an SSCD ResNet converted by "
                             "scripts/convert-weights?)", dv2_safetensors_path(f), name);
    if (rc) return rc == DV2_EINVAL ? DV2_ECORRUPT : rc;
    return check_finite(out, n, dv2_safetensors_path(f), name, err);
}

/* Loads conv PREFIX.weight and the batch norm BN.* and folds them. */
static int conv_load(conv *c, const dv2_safetensors_file *f, const char *wname, const char *bn, int cin, int cout,
                     int k, int stride, int groups, dv2_error *err) {
    c->cin = cin, c->cout = cout, c->k = k, c->stride = stride, c->pad = k / 2, c->groups = groups;
    size_t K = (size_t)(cin / groups) * k * k;
    c->w = dv2_malloc_array((size_t)cout * K, sizeof(float));
    c->b = malloc((size_t)cout * sizeof(float));
    float *st = malloc((size_t)4 * cout * sizeof(float));
    if (!c->w || !c->b || !st) {
        free(st);
        return dv2_error_set(err, DV2_ENOMEM, "out of memory for the weights");
    }
    int64_t ws[4] = {cout, cin / groups, k, k}, vs[1] = {cout};
    static const char *const parts[4] = {"weight", "bias", "running_mean", "running_var"};
    int rc = load(f, wname, ws, 4, c->w, err);
    for (int i = 0; i < 4 && !rc; i++) {
        char n[160];
        snprintf(n, sizeof n, "%s.%s", bn, parts[i]);
        rc = load(f, n, vs, 1, st + (size_t)i * cout, err);
    }
    for (int o = 0; o < cout && !rc; o++) {
        double var = st[3 * cout + o];
        if (!(var >= 0)) {
            rc = dv2_error_set(err, DV2_ECORRUPT, "%s: tensor %s.running_var: negative variance at %d",
                               dv2_safetensors_path(f), bn, o);
            break;
        }
        double s = (double)st[o] / sqrt(var + BN_EPS);
        float *w = c->w + (size_t)o * K;
        for (size_t j = 0; j < K; j++) w[j] = (float)(w[j] * s);
        c->b[o] = (float)(st[cout + o] - st[2 * cout + o] * s);
    }
    free(st);
    return rc;
}

static void conv_free(conv *c) {
    free(c->w);
    free(c->b);
}

void dv2_resnet_free(dv2_resnet *r) {
    if (!r) return;
    conv_free(&r->stem);
    for (int i = 0; i < r->nblocks; i++) {
        conv_free(&r->blocks[i].c1);
        conv_free(&r->blocks[i].c2);
        conv_free(&r->blocks[i].c3);
        conv_free(&r->blocks[i].down);
    }
    free(r->blocks);
    free(r->fc_w);
    free(r->fc_b);
    for (int i = 0; i < 5; i++) free(r->act[i]);
    free(r->col);
    free(r);
}

int dv2_resnet_create(dv2_resnet **out, const dv2_resnet_arch *a, const dv2_safetensors_file *f, dv2_error *err) {
    *out = NULL;
    dv2_resnet *r = calloc(1, sizeof *r);
    if (!r) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    r->arch = *a;
    int rc = conv_load(&r->stem, f, "conv1.weight", "bn1", 3, 64, 7, 2, 1, err);
    if (!rc) {
        r->stem.pad = 3;
        r->nblocks = a->layers[0] + a->layers[1] + a->layers[2] + a->layers[3];
        if (!(r->blocks = calloc((size_t)r->nblocks, sizeof *r->blocks)))
            rc = dv2_error_set(err, DV2_ENOMEM, "out of memory");
    }
    int inplanes = 64, bi = 0;
    for (int s = 0; s < 4 && !rc; s++) {
        int planes = 64 << s, width = planes * a->width / 64 * a->groups;
        for (int j = 0; j < a->layers[s] && !rc; j++) {
            block *b = &r->blocks[bi++];
            int stride = j == 0 && s > 0 ? 2 : 1;
            char w[128], bn[128];
#define NAMES(c)                                                        \
    snprintf(w, sizeof w, "layer%d.%d.conv%d.weight", s + 1, j, c), \
        snprintf(bn, sizeof bn, "layer%d.%d.bn%d", s + 1, j, c)
            NAMES(1);
            rc = conv_load(&b->c1, f, w, bn, inplanes, width, 1, 1, 1, err);
            NAMES(2);
            if (!rc) rc = conv_load(&b->c2, f, w, bn, width, width, 3, stride, a->groups, err);
            NAMES(3);
            if (!rc) rc = conv_load(&b->c3, f, w, bn, width, planes * 4, 1, 1, 1, err);
#undef NAMES
            if (!rc && (stride != 1 || inplanes != planes * 4)) {
                b->has_down = 1;
                snprintf(w, sizeof w, "layer%d.%d.downsample.0.weight", s + 1, j);
                snprintf(bn, sizeof bn, "layer%d.%d.downsample.1", s + 1, j);
                rc = conv_load(&b->down, f, w, bn, inplanes, planes * 4, 1, stride, 1, err);
            }
            inplanes = planes * 4;
        }
    }
    r->feat = inplanes;
    if (!rc) {
        r->fc_w = dv2_malloc_array((size_t)a->dims * r->feat, sizeof(float));
        r->fc_b = malloc((size_t)a->dims * sizeof(float));
        if (!r->fc_w || !r->fc_b) rc = dv2_error_set(err, DV2_ENOMEM, "out of memory");
    }
    int64_t fs[2] = {a->dims, r->feat}, bs[1] = {a->dims};
    if (!rc) rc = load(f, "fc.weight", fs, 2, r->fc_w, err);
    if (!rc) rc = load(f, "fc.bias", bs, 1, r->fc_b, err);
    if (rc) {
        dv2_resnet_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

static void digest_conv(dv2_xxh64_state *h, const conv *c) {
    size_t K = (size_t)(c->cin / c->groups) * c->k * c->k;
    dv2_xxh64_update(h, c->w, (size_t)c->cout * K * sizeof(float));
    dv2_xxh64_update(h, c->b, (size_t)c->cout * sizeof(float));
}

unsigned long long dv2_resnet_digest(const dv2_resnet *r) {
    dv2_xxh64_state h;
    dv2_xxh64_init(&h, 0);
    digest_conv(&h, &r->stem);
    for (int i = 0; i < r->nblocks; i++) {
        digest_conv(&h, &r->blocks[i].c1);
        digest_conv(&h, &r->blocks[i].c2);
        digest_conv(&h, &r->blocks[i].c3);
        if (r->blocks[i].has_down) digest_conv(&h, &r->blocks[i].down);
    }
    dv2_xxh64_update(&h, r->fc_w, (size_t)r->arch.dims * r->feat * sizeof(float));
    dv2_xxh64_update(&h, r->fc_b, (size_t)r->arch.dims * sizeof(float));
    return (unsigned long long)dv2_xxh64_digest(&h);
}

/* ---- forward ------------------------------------------------------------- */

static int out_side(int s, int k, int stride, int pad) { return (s + 2 * pad - k) / stride + 1; }

/* col (k*k, ho*wo) from one plane x (h, w), zero padding. */
static void im2col_one(float *col, const float *x, int h, int w, int k, int stride, int pad, int ho, int wo) {
    for (int ky = 0; ky < k; ky++)
        for (int kx = 0; kx < k; kx++) {
            float *o = col + ((size_t)ky * k + kx) * ho * wo;
            for (int oy = 0; oy < ho; oy++) {
                int iy = oy * stride - pad + ky;
                float *orow = o + (size_t)oy * wo;
                if (iy < 0 || iy >= h) {
                    memset(orow, 0, (size_t)wo * sizeof(float));
                    continue;
                }
                /* ox in [lo, hi) read inside the row, the rest is padding */
                const float *xs = x + (size_t)iy * w - pad + kx;
                int lo = pad - kx > 0 ? (pad - kx + stride - 1) / stride : 0;
                int hi = w - 1 + pad - kx >= 0 ? (w - 1 + pad - kx) / stride + 1 : 0;
                if (hi > wo) hi = wo;
                if (lo > hi) lo = hi;
                for (int ox = 0; ox < lo; ox++) orow[ox] = 0.0f;
                if (stride == 1)
                    memcpy(orow + lo, xs + lo, (size_t)(hi - lo) * sizeof(float));
                else
                    for (int ox = lo; ox < hi; ox++) orow[ox] = xs[(size_t)ox * stride];
                for (int ox = hi; ox < wo; ox++) orow[ox] = 0.0f;
            }
        }
}

/* col (cin*k*k, n*ho*wo) from x (cin, n, h, w), zero padding. */
static void im2col(float *col, const float *x, int cin, int n, int h, int w, int k, int stride, int pad, int ho,
                   int wo) {
    size_t cols = (size_t)n * ho * wo;
#pragma omp parallel for schedule(static)
    for (int row = 0; row < cin * k * k; row++) {
        int c = row / (k * k), ky = row / k % k, kx = row % k;
        float *o = col + (size_t)row * cols;
        for (int i = 0; i < n; i++) {
            const float *xi = x + ((size_t)c * n + i) * h * w;
            for (int oy = 0; oy < ho; oy++) {
                int iy = oy * stride - pad + ky;
                float *orow = o + ((size_t)i * ho + oy) * wo;
                if (iy < 0 || iy >= h) {
                    memset(orow, 0, (size_t)wo * sizeof(float));
                    continue;
                }
                const float *xr = xi + (size_t)iy * w;
                if (stride == 1) {
                    int lo = pad - kx > 0 ? pad - kx : 0, hi = w + pad - kx < wo ? w + pad - kx : wo;
                    for (int ox = 0; ox < lo && ox < wo; ox++) orow[ox] = 0;
                    if (hi > lo) memcpy(orow + lo, xr + lo - pad + kx, (size_t)(hi - lo) * sizeof(float));
                    for (int ox = hi > lo ? hi : lo; ox < wo; ox++) orow[ox] = 0;
                } else {
                    for (int ox = 0; ox < wo; ox++) {
                        int ix = ox * stride - pad + kx;
                        orow[ox] = ix >= 0 && ix < w ? xr[ix] : 0.0f;
                    }
                }
            }
        }
    }
}

/* Grouped convolution (ResNeXt's 3x3: 32 groups) without BLAS: y (cout, n,
 * ho, wo) = conv(x (cin, n, h, w)) (+ y when accumulate), no bias.  One task
 * per (group, image): im2col of the group's cin/G channels for that image
 * into the thread's slice of col (K = cin/G * k * k rows of ho * wo), then
 * the (cout/G, K) x (K, ho * wo) product in chunks of GCH positions that stay
 * in L1, summed over K in order, in float32 like the GEMM.  Per-group SGEMMs
 * would be 32 products of 4..32 rows: too thin for BLAS, whose threads then
 * spend the time handing over; the im2col of all groups at once would be 9
 * times the activation.  col holds nthreads slices of grouped_col()
 * floats (planned for omp_get_max_threads()). */
#define GCH 128

static size_t grouped_col(const conv *c, int ho, int wo) {
    return (size_t)(c->cin / c->groups) * c->k * c->k * ho * wo;
}

/* GCC / Clang vector extension: 4 floats, one SSE register (wider vectors
 * without -mavx are split and spilled to the stack) */
typedef float v4f __attribute__((vector_size(16)));

static inline void store4(float *y, v4f a, int accumulate) {
    if (accumulate) {
        v4f t;
        memcpy(&t, y, sizeof t);
        a += t;
    }
    memcpy(y, &a, sizeof a);
}

/* Four rows yr[r][0..P) (= or += when accumulate) wr[r] (K) x cl (K, P):
 * blocks of 8 positions, the 4 x 8 sums in eight registers across K (each
 * column of cl loaded once for the four rows), then the P % 8 tail one by
 * one. */
static void product4(float *const yr[4], const float *const wr[4], const float *cl, int K, int P,
                     int accumulate) {
    int p = 0;
    for (; p + 8 <= P; p += 8) {
        v4f a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0}, a3 = {0}, b3 = {0};
        const float *cp = cl + p;
        for (int kk = 0; kk < K; kk++, cp += P) {
            v4f u, v;
            memcpy(&u, cp, sizeof u);
            memcpy(&v, cp + 4, sizeof v);
            float w0 = wr[0][kk], w1 = wr[1][kk], w2 = wr[2][kk], w3 = wr[3][kk];
            a0 += w0 * u, b0 += w0 * v;
            a1 += w1 * u, b1 += w1 * v;
            a2 += w2 * u, b2 += w2 * v;
            a3 += w3 * u, b3 += w3 * v;
        }
        store4(yr[0] + p, a0, accumulate), store4(yr[0] + p + 4, b0, accumulate);
        store4(yr[1] + p, a1, accumulate), store4(yr[1] + p + 4, b1, accumulate);
        store4(yr[2] + p, a2, accumulate), store4(yr[2] + p + 4, b2, accumulate);
        store4(yr[3] + p, a3, accumulate), store4(yr[3] + p + 4, b3, accumulate);
    }
    for (; p < P; p++)
        for (int r = 0; r < 4; r++) {
            float sum = 0;
            for (int kk = 0; kk < K; kk++) sum += wr[r][kk] * cl[(size_t)kk * P + p];
            yr[r][p] = accumulate ? yr[r][p] + sum : sum;
        }
}

static void conv_grouped(const conv *c, float *y, const float *x, float *col, int nthreads, int n, int h, int w,
                         int ho, int wo, int accumulate) {
    int G = c->groups, cog = c->cout / G, cig = c->cin / G, k = c->k;
    int K = cig * k * k, P = ho * wo;
    size_t slice = grouped_col(c, ho, wo);
#pragma omp parallel num_threads(nthreads)
    {
        float *cl = col + (size_t)omp_get_thread_num() * slice;
#pragma omp for schedule(dynamic, 1)
        for (int t = 0; t < G * n; t++) {
            int g = t / n, i = t % n;
            /* (cig, 1, h, w) planes of image i are n * h * w apart: im2col
             * them one channel at a time */
            for (int ci = 0; ci < cig; ci++)
                im2col_one(cl + (size_t)ci * k * k * P, x + ((size_t)(g * cig + ci) * n + i) * h * w, h, w, k,
                           c->stride, c->pad, ho, wo);
            int co0 = 0;
            for (; co0 + 4 <= cog; co0 += 4) {
                float *yr[4];
                const float *wr[4];
                for (int r = 0; r < 4; r++) {
                    int o = g * cog + co0 + r;
                    yr[r] = y + ((size_t)o * n + i) * P;
                    wr[r] = c->w + (size_t)o * K;
                }
                product4(yr, wr, cl, K, P, accumulate);
            }
            for (int p0 = 0; p0 < P && co0 < cog; p0 += GCH) { /* rows left over from the blocks of 4 */
                int np = P - p0 < GCH ? P - p0 : GCH;
                for (int co = co0; co < cog; co++) {
                    int o = g * cog + co;
                    float *yr = y + ((size_t)o * n + i) * P + p0;
                    const float *wr = c->w + (size_t)o * K;
                    float acc[GCH];
                    for (int j = 0; j < np; j++) acc[j] = accumulate ? yr[j] : 0.0f;
                    for (int kk = 0; kk < K; kk++) {
                        float a = wr[kk];
                        const float *cr = cl + (size_t)kk * P + p0;
#pragma omp simd
                        for (int j = 0; j < np; j++) acc[j] += a * cr[j];
                    }
                    memcpy(yr, acc, (size_t)np * sizeof(float));
                }
            }
        }
    }
}

/* y (cout, n, ho, wo) = conv(x) + bias (+ y when accumulate), then ReLU when
 * relu.  col is scratch for the im2col matrix. */
static void conv_forward(const conv *c, float *y, const float *x, float *col, int n, int h, int w, int *pho,
                         int *pwo, int accumulate, int relu) {
    int ho = out_side(h, c->k, c->stride, c->pad), wo = out_side(w, c->k, c->stride, c->pad);
    size_t cols = (size_t)n * ho * wo;
    if (c->groups > 1)
        conv_grouped(c, y, x, col, omp_get_max_threads(), n, h, w, ho, wo, accumulate);
    else {
        const float *b = x;
        if (c->k != 1 || c->stride != 1) {
            im2col(col, x, c->cin, n, h, w, c->k, c->stride, c->pad, ho, wo);
            b = col;
        }
        int K = c->cin * c->k * c->k;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->cout, (int)cols, K, 1.0f, c->w, K, b, (int)cols,
                    accumulate ? 1.0f : 0.0f, y, (int)cols);
    }
#pragma omp parallel for schedule(static)
    for (int o = 0; o < c->cout; o++) {
        float *r = y + (size_t)o * cols, bo = c->b[o];
        if (relu)
            for (size_t i = 0; i < cols; i++) {
                float v = r[i] + bo;
                r[i] = v > 0 ? v : 0;
            }
        else
            for (size_t i = 0; i < cols; i++) r[i] += bo;
    }
    *pho = ho;
    *pwo = wo;
}

/* 3x3, stride 2, padding 1 max-pool of x (c, n, h, w); padding never wins
 * (inputs are post-ReLU, and a window always holds a real sample). */
static void maxpool(float *y, const float *x, int c, int n, int h, int w, int *pho, int *pwo) {
    int ho = out_side(h, 3, 2, 1), wo = out_side(w, 3, 2, 1);
#pragma omp parallel for schedule(static)
    for (int p = 0; p < c * n; p++) {
        const float *xp = x + (size_t)p * h * w;
        float *yp = y + (size_t)p * ho * wo;
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++) {
                float m = -INFINITY;
                for (int dy = -1; dy <= 1; dy++) {
                    int iy = oy * 2 + dy;
                    if (iy < 0 || iy >= h) continue;
                    for (int dx = -1; dx <= 1; dx++) {
                        int ix = ox * 2 + dx;
                        if (ix >= 0 && ix < w && xp[(size_t)iy * w + ix] > m) m = xp[(size_t)iy * w + ix];
                    }
                }
                yp[(size_t)oy * wo + ox] = m;
            }
    }
    *pho = ho;
    *pwo = wo;
}

/* Largest activation and im2col sizes (floats) for nb images of h x w. */
static void plan(const dv2_resnet *r, int nb, int h, int w, size_t *act, size_t *col) {
    size_t a = (size_t)3 * nb * h * w, cl = 0;
    int ho = out_side(h, 7, 2, 3), wo = out_side(w, 7, 2, 3);
    cl = (size_t)3 * 49 * nb * ho * wo;
    if ((size_t)64 * nb * ho * wo > a) a = (size_t)64 * nb * ho * wo;
    h = out_side(ho, 3, 2, 1), w = out_side(wo, 3, 2, 1);
    for (int i = 0; i < r->nblocks; i++) {
        const block *b = &r->blocks[i];
        size_t in = (size_t)b->c1.cout * nb * h * w;
        if (in > a) a = in;
        int s = b->c2.stride;
        int h2 = out_side(h, 3, s, 1), w2 = out_side(w, 3, s, 1);
        size_t c2 = b->c2.groups > 1 ? grouped_col(&b->c2, h2, w2) * (size_t)omp_get_max_threads()
                                     : (size_t)b->c2.cin * 9 * nb * h2 * w2;
        if (c2 > cl) cl = c2;
        if (b->has_down && (size_t)b->down.cin * nb * h2 * w2 > cl) cl = (size_t)b->down.cin * nb * h2 * w2;
        size_t o = (size_t)b->c3.cout * nb * h2 * w2;
        if (o > a) a = o;
        if ((size_t)b->c1.cin * nb * h * w > a) a = (size_t)b->c1.cin * nb * h * w;
        h = h2, w = w2;
    }
    *act = a;
    *col = cl;
}

static int buffers(dv2_resnet *r, int nb, int h, int w, dv2_error *err) {
    if (r->buf_n >= nb && r->buf_h == h && r->buf_w == w && r->buf_t == omp_get_max_threads()) return 0;
    size_t act, col;
    plan(r, nb, h, w, &act, &col);
    for (int i = 0; i < 5; i++) {
        free(r->act[i]);
        r->act[i] = dv2_malloc_array(act, sizeof(float));
    }
    free(r->col);
    r->col = dv2_malloc_array(col ? col : 1, sizeof(float));
    r->buf_n = r->buf_h = r->buf_w = r->buf_t = 0;
    for (int i = 0; i < 5; i++)
        if (!r->act[i]) return dv2_error_set(err, DV2_ENOMEM, "resnet: out of memory for %d images of %dx%d", nb, w, h);
    if (!r->col) return dv2_error_set(err, DV2_ENOMEM, "resnet: out of memory for %d images of %dx%d", nb, w, h);
    r->buf_n = nb, r->buf_h = h, r->buf_w = w, r->buf_t = omp_get_max_threads();
    return 0;
}

/* Descriptors of nb images img (nb, 3, h, w) into out (nb, dims). */
static void forward_sub(dv2_resnet *r, float *out, const float *img, int nb, int h, int w) {
    float *x = r->act[0], *t1 = r->act[1], *t2 = r->act[2], *y = r->act[3], *tmp = r->act[4];
    /* (n, 3, h, w) -> (3, n, h, w) */
    size_t hw = (size_t)h * w;
    for (int i = 0; i < nb; i++)
        for (int c = 0; c < 3; c++) memcpy(tmp + ((size_t)c * nb + i) * hw, img + ((size_t)i * 3 + c) * hw, hw * sizeof(float));
    int ho, wo;
    conv_forward(&r->stem, t1, tmp, r->col, nb, h, w, &ho, &wo, 0, 1);
    maxpool(x, t1, 64, nb, ho, wo, &h, &w);
    for (int i = 0; i < r->nblocks; i++) {
        const block *b = &r->blocks[i];
        int h1, w1, h2, w2;
        conv_forward(&b->c1, t1, x, r->col, nb, h, w, &h1, &w1, 0, 1);
        conv_forward(&b->c2, t2, t1, r->col, nb, h1, w1, &h2, &w2, 0, 1);
        if (b->has_down) {
            int hd, wd;
            /* a strided 1x1 convolution: im2col subsamples into col */
            conv_forward(&b->down, y, x, r->col, nb, h, w, &hd, &wd, 0, 0);
        } else
            memcpy(y, x, (size_t)b->c3.cout * nb * h2 * w2 * sizeof(float));
        conv_forward(&b->c3, y, t2, r->col, nb, h2, w2, &h1, &w1, 1, 1);
        float *s = x;
        x = y;
        y = s;
        h = h2, w = w2;
    }
    /* GeM over h*w per channel and image: (mean clamp(x, 1e-6)^p)^(1/p) */
    int C = r->feat;
    double p = r->arch.gem_p;
    size_t n2 = (size_t)h * w;
    float *feat = tmp; /* (nb, C) */
#pragma omp parallel for schedule(static)
    for (int q = 0; q < C * nb; q++) {
        int c = q / nb, i = q % nb;
        const float *v = x + (size_t)q * n2;
        double s = 0;
        for (size_t j = 0; j < n2; j++) {
            double t = v[j] > 1e-6f ? v[j] : 1e-6f;
            s += p == 3.0 ? t * t * t : pow(t, p);
        }
        feat[(size_t)i * C + c] = (float)pow(s / (double)n2, 1.0 / p);
    }
    int D = r->arch.dims;
    for (int i = 0; i < nb; i++) memcpy(out + (size_t)i * D, r->fc_b, (size_t)D * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, D, C, 1.0f, feat, C, r->fc_w, C, 1.0f, out, D);
    for (int i = 0; i < nb; i++) { /* F.normalize: x / max(|x|, 1e-12) */
        float *o = out + (size_t)i * D;
        double s = 0;
        for (int j = 0; j < D; j++) s += (double)o[j] * o[j];
        double nrm = sqrt(s);
        if (nrm < 1e-12) nrm = 1e-12;
        for (int j = 0; j < D; j++) o[j] = (float)(o[j] / nrm);
    }
}

int dv2_resnet_forward(dv2_resnet *r, float *out, const float *img, int n, int h, int w, dv2_error *err) {
    if (n < 0 || h < 32 || w < 32 || h > 8192 || w > 8192)
        return dv2_error_set(err, DV2_EINVAL, "resnet: input %dx%d (at least 32x32)", w, h);
    int nb = n < SUB ? n : SUB;
    if (nb == 0) return 0;
    int rc = buffers(r, nb, h, w, err);
    if (rc) return rc;
    size_t per = (size_t)3 * h * w;
    for (int i = 0; i < n; i += nb) {
        int k = n - i < nb ? n - i : nb;
        forward_sub(r, out + (size_t)i * r->arch.dims, img + (size_t)i * per, k, h, w);
    }
    return 0;
}
