/* test_copydesc.c — the copy descriptor of dv2-embed --copy
 * (lib/embed/copydesc.h): unit length and 255 dims, the same vector for a
 * horizontal flip and for a brightness/contrast change, different vectors
 * for different images, the header thresholds, and bad sizes refused. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/rng.h"
#include "embed/copydesc.h"
#include "image/resize.h"
#include "testutil.h"

/* a smooth random image (a few random blobs) in [0, 1], then the ImageNet
 * normalization the engine applies: img (3, s, s) */
static void make_image(float *img, int s, uint64_t seed, double gain, double bias, int flip) {
    dv2_rng r;
    dv2_rng_seed(&r, seed, 0);
    double cx[6], cy[6], w[6], rad[6];
    for (int b = 0; b < 6; b++)
        cx[b] = dv2_rng_uniform(&r) * s, cy[b] = dv2_rng_uniform(&r) * s, w[b] = dv2_rng_uniform(&r),
        rad[b] = 3 + dv2_rng_uniform(&r) * s / 4;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < s; y++)
            for (int x = 0; x < s; x++) {
                int xs = flip ? s - 1 - x : x;
                double v = 0.2;
                for (int b = 0; b < 6; b++) {
                    double dx = xs - cx[b], dy = y - cy[b];
                    v += 0.5 * w[b] * exp(-(dx * dx + dy * dy) / (2 * rad[b] * rad[b])) * (1 + 0.2 * c);
                }
                v = gain * v + bias;
                img[((size_t)c * s + y) * s + x] = (float)((v - dv2_imagenet_mean[c]) / dv2_imagenet_std[c]);
            }
}

static double dot(const float *a, const float *b) {
    double s = 0;
    for (int i = 0; i < DV2_COPYDESC_DIM; i++) s += (double)a[i] * b[i];
    return s;
}

int main(void) {
    const int sizes[] = {64, 37, 8};
    for (int si = 0; si < 3; si++) {
        int s = sizes[si];
        float *img = malloc(sizeof(float) * 3 * s * s), *alt = malloc(sizeof(float) * 3 * s * s);
        float a[DV2_COPYDESC_DIM], b[DV2_COPYDESC_DIM];
        make_image(img, s, 1, 1.0, 0.0, 0);
        dv2_copydesc_compute(a, img, s);
        CHECKF(fabs(dot(a, a) - 1) < 1e-5, "size %d: |v|^2 = %g", s, dot(a, a));
        make_image(alt, s, 1, 1.0, 0.0, 1);
        dv2_copydesc_compute(b, alt, s);
        CHECKF(dot(a, b) > 1 - 1e-5, "size %d: flip cosine %.7f", s, dot(a, b));
        make_image(alt, s, 1, 0.75, 0.1, 0);
        dv2_copydesc_compute(b, alt, s);
        CHECKF(dot(a, b) > 1 - 1e-4, "size %d: brightness/contrast cosine %.7f", s, dot(a, b));
        make_image(alt, s, 2, 1.0, 0.0, 0);
        dv2_copydesc_compute(b, alt, s);
        CHECKF(dot(a, b) < 0.9, "size %d: two different images at cosine %.4f", s, dot(a, b));
        free(img);
        free(alt);
    }
    dv2_embed_model *m = NULL;
    dv2_error err = {0};
    CHECK(dv2_embed_model_copy(&m, 64, &err) == 0 && m && m->dim == DV2_COPYDESC_DIM);
    double t = 0;
    CHECK(m && dv2_copydesc_threshold(m->features, "dedup-threshold ", &t) && fabs(t - DV2_COPYDESC_THRESHOLD) < 1e-9);
    CHECK(m && dv2_copydesc_threshold(m->features, "against-threshold ", &t) &&
          fabs(t - DV2_COPYDESC_AGAINST_THRESHOLD) < 1e-9);
    CHECK(!dv2_copydesc_threshold("pixels 32x32 normalized", "dedup-threshold ", &t));
    dv2_embed_model_free(m);
    CHECK(dv2_embed_model_copy(&m, 4, &err) == DV2_EINVAL && m == NULL);
    return tu_finish("test_copydesc");
}
