/* copydesc.c — the model-free copy descriptor (see copydesc.h). */
#include "embed/copydesc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/resize.h"

#define G DV2_COPYDESC_GRID
#define K DV2_COPYDESC_K

/* a (G, n): row o averages input samples [o n/G, (o+1) n/G) weighted by
 * their overlap (the area filter; exact for any n >= 1). */
static void area_weights(double *a, int n) {
    memset(a, 0, sizeof(double) * G * (size_t)n);
    double step = (double)n / G;
    for (int o = 0; o < G; o++) {
        double lo = o * step, hi = (o + 1) * step;
        for (int i = (int)floor(lo); i < n && i < hi; i++) {
            double w = fmin(hi, i + 1.0) - fmax(lo, (double)i);
            if (w > 0) a[(size_t)o * n + i] = w / step;
        }
    }
}

void dv2_copydesc_compute(float *out, const float *img, int size) {
    size_t ss = (size_t)size * size;
    double *gray = malloc(sizeof(double) * ss), *a = malloc(sizeof(double) * G * (size_t)size);
    double *tmp = malloc(sizeof(double) * G * (size_t)size);
    double g[G][G], d[K][G], t[K][G], c[K][K];
    if (!gray || !a || !tmp) {
        /* a zero row matches nothing (cosine 0) */
        memset(out, 0, sizeof(float) * DV2_COPYDESC_DIM);
        free(gray), free(a), free(tmp);
        return;
    }
    /* luma of the un-normalized RGB (Rec. 601 weights) */
    static const double lw[3] = {0.299, 0.587, 0.114};
    for (size_t p = 0; p < ss; p++) {
        double v = 0;
        for (int ch = 0; ch < 3; ch++)
            v += lw[ch] * (img[ch * ss + p] * dv2_imagenet_std[ch] + dv2_imagenet_mean[ch]);
        gray[p] = v;
    }
    /* area resampling to G x G: tmp = a gray (G, size), g = tmp a^T */
    area_weights(a, size);
    for (int o = 0; o < G; o++)
        for (int x = 0; x < size; x++) {
            double s = 0;
            for (int y = 0; y < size; y++) s += a[(size_t)o * size + y] * gray[(size_t)y * size + x];
            tmp[(size_t)o * size + x] = s;
        }
    double mean = 0;
    for (int o = 0; o < G; o++)
        for (int q = 0; q < G; q++) {
            double s = 0;
            for (int x = 0; x < size; x++) s += tmp[(size_t)o * size + x] * a[(size_t)q * size + x];
            g[o][q] = s;
            mean += s;
        }
    free(gray), free(a), free(tmp);
    /* per-image standardisation (two passes) */
    mean /= G * G;
    double var = 0;
    for (int o = 0; o < G; o++)
        for (int q = 0; q < G; q++) var += (g[o][q] - mean) * (g[o][q] - mean);
    double inv = 1.0 / (sqrt(var / (G * G)) + 1e-3);
    for (int o = 0; o < G; o++)
        for (int q = 0; q < G; q++) g[o][q] = (g[o][q] - mean) * inv;
    /* orthonormal DCT-II basis, the first K frequencies: c = d g d^T */
    for (int k = 0; k < K; k++)
        for (int n = 0; n < G; n++)
            d[k][n] = (k ? sqrt(2.0 / G) : sqrt(1.0 / G)) * cos(M_PI * (n + 0.5) * k / G);
    for (int k = 0; k < K; k++)
        for (int q = 0; q < G; q++) {
            double s = 0;
            for (int o = 0; o < G; o++) s += d[k][o] * g[o][q];
            t[k][q] = s;
        }
    for (int ky = 0; ky < K; ky++)
        for (int kx = 0; kx < K; kx++) {
            double s = 0;
            for (int q = 0; q < G; q++) s += t[ky][q] * d[kx][q];
            c[ky][kx] = s;
        }
    /* flip: odd horizontal frequencies take the sign of c(0,1) */
    double sgn = c[0][1] < 0 ? -1.0 : 1.0;
    double norm = 0;
    int j = 0;
    for (int ky = 0; ky < K; ky++)
        for (int kx = 0; kx < K; kx++) {
            if (!ky && !kx) continue;
            double v = c[ky][kx];
            if (kx & 1) v *= sgn;
            out[j++] = (float)v;
            norm += v * v;
        }
    float s = norm > 0 ? (float)(1.0 / sqrt(norm)) : 0.f;
    for (int i = 0; i < DV2_COPYDESC_DIM; i++) out[i] *= s;
}

static int copy_forward(dv2_embed_model *m, float *out, float *patch, const float *img, int n,
                        dv2_error *err) {
    (void)patch;
    (void)err;
    size_t per = (size_t)3 * m->size * m->size;
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < n; i++) dv2_copydesc_compute(out + (size_t)i * m->dim, img + (size_t)i * per, m->size);
    return 0;
}

static void copy_free(dv2_embed_model *m) { free(m); }

static const dv2_embed_model_ops copy_ops = {copy_forward, copy_free};

int dv2_embed_model_copy(dv2_embed_model **out, int size, dv2_error *err) {
    *out = NULL;
    if (size < 8 || size > 4096) return dv2_error_set(err, DV2_EINVAL, "copy descriptor: bad size %d (8..4096)", size);
    dv2_embed_model *m = calloc(1, sizeof *m);
    if (!m) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    m->ops = &copy_ops;
    m->size = size;
    m->dim = DV2_COPYDESC_DIM;
    snprintf(m->name, sizeof m->name, "copydesc");
    snprintf(m->features, sizeof m->features,
             "copy gray%d dct%dx%d flip-symmetric; dedup-threshold %.2f against-threshold %.2f", G, K, K,
             DV2_COPYDESC_THRESHOLD, DV2_COPYDESC_AGAINST_THRESHOLD);
    *out = m;
    return 0;
}

int dv2_copydesc_threshold(const char *features, const char *key, double *t) {
    const char *p = features ? strstr(features, key) : NULL;
    if (!p) return 0;
    p += strlen(key);
    char *end;
    double v = strtod(p, &end);
    if (end == p || v < -1 || v > 1) return 0;
    *t = v;
    return 1;
}
