/* mask.c — iBOT block masking (see mask.h).  Float widths follow the
 * reference: the ratio bounds are float32 tensors, so the ratio draw and
 * N·ratio are float32 before truncation; the generator's areas, aspects and
 * roundings are Python floats (double). */
#include "model/mask.h"

#include <math.h>
#include <string.h>

double dv2_mask_max_num_patches(int img_size, int patch_size) {
    double a = floor(0.5 * img_size / patch_size); /* (0.5·img) // p */
    return floor(a * img_size / patch_size);       /* (a·img) // p */
}

int dv2_mask_gen_init(dv2_mask_gen *g, int img_size, int patch_size, dv2_error *err) {
    if (patch_size <= 0 || img_size < patch_size || img_size > 65536)
        return dv2_error_set(err, DV2_EINVAL, "mask: bad crop size %d / patch %d", img_size, patch_size);
    g->h = g->w = img_size / patch_size;
    g->min_num_patches = 4;
    g->max_num_patches = dv2_mask_max_num_patches(img_size, patch_size);
    g->log_aspect_min = log(0.3);
    g->log_aspect_max = log(1 / 0.3);
    return DV2_OK;
}

/* Python round() to an int: half to even (rint in the default rounding mode). */
static int py_round(double x) { return (int)nearbyint(x); }

/* One placement: up to 10 attempts; returns the number of cells added. */
static int place(uint8_t *mask, const dv2_mask_gen *g, double budget, dv2_rng *r) {
    int delta = 0;
    for (int attempt = 0; attempt < 10; attempt++) {
        double area = dv2_rng_uniform_range(r, g->min_num_patches, budget);
        double aspect = exp(dv2_rng_uniform_range(r, g->log_aspect_min, g->log_aspect_max));
        int bh = py_round(sqrt(area * aspect)), bw = py_round(sqrt(area / aspect));
        if (bw < g->w && bh < g->h) {
            int top = (int)dv2_rng_randint(r, 0, g->h - bh);
            int left = (int)dv2_rng_randint(r, 0, g->w - bw);
            int already = 0;
            for (int i = top; i < top + bh; i++)
                for (int j = left; j < left + bw; j++) already += mask[i * g->w + j];
            int fresh = bh * bw - already;
            if (fresh > 0 && fresh <= budget)
                for (int i = top; i < top + bh; i++)
                    for (int j = left; j < left + bw; j++)
                        if (!mask[i * g->w + j]) { mask[i * g->w + j] = 1; delta++; }
        }
        if (delta > 0) break;
    }
    return delta;
}

int dv2_mask_block(uint8_t *mask, const dv2_mask_gen *g, int target, dv2_rng *r) {
    memset(mask, 0, (size_t)g->h * g->w);
    int count = 0;
    while (count < target) {
        double budget = target - count;
        if (budget > g->max_num_patches) budget = g->max_num_patches;
        int delta = place(mask, g, budget, r);
        if (delta == 0) break;
        count += delta;
    }
    return count;
}

float dv2_mask_linspace_f32(float start, float end, int steps, int i) {
    if (steps == 1) return start;
    float step = (end - start) / (float)(steps - 1);
    int half = steps / 2;
    return i < half ? start + step * (float)i : end - step * (float)(steps - i - 1);
}

static int n_masked_crops(int n_crops, double prob) { return (int)((double)n_crops * prob); }

int dv2_mask_upperbound(int n_crops, int N, double prob, float ratio_min, float ratio_max) {
    int n = n_masked_crops(n_crops, prob), ub = 0;
    for (int i = 0; i < n; i++) ub += (int)((float)N * dv2_mask_linspace_f32(ratio_min, ratio_max, n + 1, i + 1));
    return ub;
}

/* scratch: the masks in generation order (n_crops·N bytes, rounded up to a
 * multiple of 4), then the shuffled order (n_crops u32). */
static size_t list_bytes(int n_crops, int N) { return ((size_t)n_crops * (size_t)N + 3) / 4 * 4; }

size_t dv2_mask_batch_scratch_bytes(int n_crops, int N) {
    return list_bytes(n_crops, N) + (size_t)n_crops * sizeof(uint32_t);
}

int dv2_mask_batch(uint8_t *masks, int32_t *idx, float *weights, int *M, int *upperbound,
                   void *scratch, const dv2_mask_gen *g, int n_crops, double prob, float ratio_min,
                   float ratio_max, dv2_rng *r, dv2_error *err) {
    int N = g->h * g->w;
    if (n_crops <= 0 || !(prob >= 0 && prob <= 1) || !(ratio_min >= 0 && ratio_min <= ratio_max && ratio_max <= 1))
        return dv2_error_set(err, DV2_EINVAL, "mask: bad batch parameters (%d crops, prob %g, ratios %g..%g)",
                             n_crops, prob, (double)ratio_min, (double)ratio_max);
    /* the list of masks in generation order, then a shuffled order */
    uint8_t *list = scratch;
    uint32_t *order = (uint32_t *)(list + list_bytes(n_crops, N));
    int n = n_masked_crops(n_crops, prob), ub = 0;
    for (int i = 0; i < n; i++) {
        float pmin = dv2_mask_linspace_f32(ratio_min, ratio_max, n + 1, i);
        float pmax = dv2_mask_linspace_f32(ratio_min, ratio_max, n + 1, i + 1);
        float ratio = pmin + (pmax - pmin) * (float)dv2_rng_uniform(r);
        dv2_mask_block(list + (size_t)i * N, g, (int)((float)N * ratio), r);
        ub += (int)((float)N * pmax);
    }
    memset(list + (size_t)n * N, 0, (size_t)(n_crops - n) * N);
    for (int i = 0; i < n_crops; i++) order[i] = (uint32_t)i;
    dv2_rng_shuffle_u32(r, order, (size_t)n_crops);
    int m = 0;
    for (int row = 0; row < n_crops; row++) {
        const uint8_t *src = list + (size_t)order[row] * N;
        uint8_t *dst = masks + (size_t)row * N;
        int cnt = 0;
        for (int j = 0; j < N; j++) cnt += (dst[j] = src[j] ? 1 : 0);
        float wgt = 1.0f / (float)(cnt > 1 ? cnt : 1);
        for (int j = 0; j < N; j++)
            if (dst[j]) { idx[m] = row * N + j; weights[m] = wgt; m++; }
    }
    *M = m;
    *upperbound = ub;
    return DV2_OK;
}
