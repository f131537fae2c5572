/* augment.c — DINOv2 training augmentations on RGB8 images (see augment.h).
 *
 * The numerics copy what PIL 9.4 / torchvision 0.14 compute, including their
 * types, because the results are stored back as uint8 and any difference in
 * rounding shows up as a different level:
 *  - ImageEnhance blends: out = (uint8)(a + f*(b - a)) in float32, truncating;
 *    factors outside [0, 1] clip to 0..255 first.
 *  - Grayscale: L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16 (PIL's
 *    rounded fixed-point form of 0.299/0.587/0.114).
 *  - Hue: RGB -> HSV -> H + uint8(hue*255) (wrapping) -> RGB with PIL's
 *    float/double mix in its converters.
 *  - Blur: float32 kernel exp(-x^2 / (2 sigma^2)) normalized, reflect
 *    padding, round half to even. */
#include "image/augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image/resize.h"

void dv2_augment_flip(dv2_image *img) {
    for (int y = 0; y < img->h; y++) {
        uint8_t *row = img->rgb + (size_t)y * img->w * 3;
        for (int a = 0, b = img->w - 1; a < b; a++, b--)
            for (int c = 0; c < 3; c++) {
                uint8_t t = row[3 * a + c];
                row[3 * a + c] = row[3 * b + c];
                row[3 * b + c] = t;
            }
    }
}

/* Image.blend(degenerate, img, alpha) for one sample. */
static inline uint8_t blend1(int deg, int v, float alpha) {
    float t = (float)deg + alpha * (float)(v - deg);
    if (alpha >= 0.0f && alpha <= 1.0f) return (uint8_t)t;
    if (t <= 0.0f) return 0;
    if (t >= 255.0f) return 255;
    return (uint8_t)t;
}

static inline uint8_t luma(const uint8_t *p) {
    return (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
}

void dv2_augment_brightness(dv2_image *img, float factor) {
    if (factor == 1.0f) return;
    size_t n = (size_t)img->w * img->h * 3;
    if (factor == 0.0f) { memset(img->rgb, 0, n); return; }
    uint8_t lut[256];
    for (int v = 0; v < 256; v++) lut[v] = blend1(0, v, factor);
    for (size_t i = 0; i < n; i++) img->rgb[i] = lut[img->rgb[i]];
}

void dv2_augment_contrast(dv2_image *img, float factor) {
    size_t np = (size_t)img->w * img->h;
    if (np == 0) return;
    uint64_t sum = 0;
    for (size_t i = 0; i < np; i++) sum += luma(img->rgb + 3 * i);
    /* ImageStat mean of the L image, then int(mean + 0.5). */
    int mean = (int)((double)sum / (double)np + 0.5);
    if (factor == 1.0f) return;
    uint8_t lut[256];
    for (int v = 0; v < 256; v++) lut[v] = factor == 0.0f ? (uint8_t)mean : blend1(mean, v, factor);
    for (size_t i = 0; i < np * 3; i++) img->rgb[i] = lut[img->rgb[i]];
}

void dv2_augment_saturation(dv2_image *img, float factor) {
    if (factor == 1.0f) return;
    size_t np = (size_t)img->w * img->h;
    for (size_t i = 0; i < np; i++) {
        uint8_t *p = img->rgb + 3 * i;
        int l = luma(p);
        for (int c = 0; c < 3; c++) p[c] = factor == 0.0f ? (uint8_t)l : blend1(l, p[c], factor);
    }
}

void dv2_augment_grayscale(dv2_image *img) {
    size_t np = (size_t)img->w * img->h;
    for (size_t i = 0; i < np; i++) {
        uint8_t *p = img->rgb + 3 * i;
        p[0] = p[1] = p[2] = luma(p);
    }
}

void dv2_augment_solarize(dv2_image *img, int threshold) {
    size_t n = (size_t)img->w * img->h * 3;
    for (size_t i = 0; i < n; i++)
        if (img->rgb[i] >= threshold) img->rgb[i] = (uint8_t)(255 - img->rgb[i]);
}

static inline uint8_t clip8i(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

/* PIL's RGB -> HSV for one pixel (colorsys formulas, float with double steps). */
static void to_hsv(uint8_t hsv[3], const uint8_t *p) {
    uint8_t r = p[0], g = p[1], b = p[2];
    uint8_t mx = r > g ? (r > b ? r : b) : (g > b ? g : b);
    uint8_t mn = r < g ? (r < b ? r : b) : (g < b ? g : b);
    hsv[2] = mx;
    if (mx == mn) { hsv[0] = hsv[1] = 0; return; }
    float range = (float)(mx - mn);
    float s = range / (float)mx;
    float rc = (float)(mx - r) / range, gc = (float)(mx - g) / range, bc = (float)(mx - b) / range;
    float h;
    if (r == mx) h = bc - gc;
    else if (g == mx) h = (float)(2.0 + (double)rc - (double)bc);
    else h = (float)(4.0 + (double)gc - (double)rc);
    h = (float)fmod((double)h / 6.0 + 1.0, 1.0);
    hsv[0] = clip8i((int)((double)h * 255.0));
    hsv[1] = clip8i((int)((double)s * 255.0));
}

/* PIL's HSV -> RGB for one pixel. */
static void from_hsv(uint8_t *p, const uint8_t hsv[3]) {
    uint8_t h = hsv[0], s = hsv[1], v = hsv[2];
    if (s == 0) { p[0] = p[1] = p[2] = v; return; }
    double h6 = (double)(float)h * 6.0 / 255.0;
    int i = (int)floor(h6);
    float f = (float)(h6 - (double)(float)i);
    float fs = (float)((double)(float)s / 255.0);
    float fsf = fs * f; /* float product, as in PIL */
    uint8_t P = clip8i((int)round((double)(float)v * (1.0 - (double)fs)));
    uint8_t Q = clip8i((int)round((double)(float)v * (1.0 - (double)fsf)));
    uint8_t T = clip8i((int)round((double)(float)v * (1.0 - (double)fs * (1.0 - (double)f))));
    switch (i % 6) {
    case 0: p[0] = v; p[1] = T; p[2] = P; break;
    case 1: p[0] = Q; p[1] = v; p[2] = P; break;
    case 2: p[0] = P; p[1] = v; p[2] = T; break;
    case 3: p[0] = P; p[1] = Q; p[2] = v; break;
    case 4: p[0] = T; p[1] = P; p[2] = v; break;
    default: p[0] = v; p[1] = P; p[2] = Q; break;
    }
}

void dv2_augment_hue(dv2_image *img, double hue) {
    /* np.uint8(hue * 255): truncation toward zero, then wrap modulo 256. */
    uint8_t shift = (uint8_t)(int)(hue * 255.0);
    size_t np = (size_t)img->w * img->h;
    for (size_t i = 0; i < np; i++) {
        uint8_t hsv[3];
        to_hsv(hsv, img->rgb + 3 * i);
        hsv[0] = (uint8_t)(hsv[0] + shift);
        from_hsv(img->rgb + 3 * i, hsv);
    }
}

static inline int reflect(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) {
        if (i < 0) i = -i;
        if (i >= n) i = 2 * (n - 1) - i;
    }
    return i;
}

int dv2_augment_gaussian_blur(dv2_image *img, int ksize, float sigma, dv2_image *tmp, dv2_error *err) {
    if (ksize < 1 || ksize > 63 || !(ksize & 1) || !(sigma > 0.0f))
        return dv2_error_set(err, DV2_EINVAL, "blur: kernel %d / sigma %g not valid", ksize, (double)sigma);
    float k[63], sum = 0.0f;
    int half = ksize / 2;
    for (int i = 0; i < ksize; i++) {
        float x = (float)(i - half) / sigma;
        k[i] = expf(-0.5f * (x * x));
        sum += k[i];
    }
    for (int i = 0; i < ksize; i++) k[i] = k[i] / sum;
    int w = img->w, h = img->h;
    /* Horizontal pass into a double buffer held in tmp (as raw bytes). */
    size_t need = (size_t)w * h * 3 * sizeof(double);
    if (need / sizeof(double) / 3 != (size_t)w * h) return dv2_error_set(err, DV2_ENOMEM, "blur: image too large");
    if (tmp->cap < need) {
        uint8_t *p = realloc(tmp->rgb, need);
        if (!p) return dv2_error_set(err, DV2_ENOMEM, "blur: out of memory");
        tmp->rgb = p;
        tmp->cap = need;
    }
    double *hb = (double *)(void *)tmp->rgb;
    for (int y = 0; y < h; y++) {
        const uint8_t *row = img->rgb + (size_t)y * w * 3;
        double *orow = hb + (size_t)y * w * 3;
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                double s = 0.0;
                for (int t = 0; t < ksize; t++) s += (double)k[t] * row[3 * reflect(x + t - half, w) + c];
                orow[3 * x + c] = s;
            }
    }
    for (int y = 0; y < h; y++) {
        uint8_t *orow = img->rgb + (size_t)y * w * 3;
        for (int x = 0; x < w * 3; x++) {
            double s = 0.0;
            for (int t = 0; t < ksize; t++) s += (double)k[t] * hb[(size_t)reflect(y + t - half, h) * w * 3 + x];
            double r = rint(s);
            orow[x] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
        }
    }
    return 0;
}

void dv2_augment_rrc_box(int *x, int *y, int *w, int *h, int W, int H, double smin, double smax,
                         dv2_rng *rng) {
    double area = (double)W * (double)H;
    double lr0 = log(3.0 / 4.0), lr1 = log(4.0 / 3.0);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * dv2_rng_uniform_range(rng, smin, smax);
        double ratio = exp(dv2_rng_uniform_range(rng, lr0, lr1));
        int cw = (int)rint(sqrt(target * ratio)), ch = (int)rint(sqrt(target / ratio));
        if (cw > 0 && cw <= W && ch > 0 && ch <= H) {
            *y = (int)dv2_rng_randint(rng, 0, H - ch);
            *x = (int)dv2_rng_randint(rng, 0, W - cw);
            *w = cw;
            *h = ch;
            return;
        }
    }
    double in_ratio = (double)W / (double)H;
    int cw = W, ch = H;
    if (in_ratio < 3.0 / 4.0) ch = (int)rint(cw / (3.0 / 4.0));
    else if (in_ratio > 4.0 / 3.0) cw = (int)rint(ch * (4.0 / 3.0));
    if (ch > H) ch = H;
    if (cw > W) cw = W;
    *w = cw;
    *h = ch;
    *y = (H - ch) / 2;
    *x = (W - cw) / 2;
}

void dv2_multicrop_cfg_default(dv2_multicrop_cfg *cfg) {
    cfg->global_size = 224;
    cfg->local_size = 96;
    cfg->n_local = 8;
    cfg->global_scale[0] = 0.32;
    cfg->global_scale[1] = 1.0;
    cfg->local_scale[0] = 0.05;
    cfg->local_scale[1] = 0.32;
}

void dv2_augment_work_init(dv2_augment_work *w) {
    dv2_image_init(&w->a);
    dv2_image_init(&w->b);
}

void dv2_augment_work_free(dv2_augment_work *w) {
    if (!w) return;
    dv2_image_free(&w->a);
    dv2_image_free(&w->b);
}

void dv2_augment_draw(dv2_augment_params *p, int W, int H, int size, double smin, double smax,
                      double p_blur, double p_solarize, dv2_rng *rng) {
    memset(p, 0, sizeof *p);
    p->size = size;
    dv2_augment_rrc_box(&p->x, &p->y, &p->w, &p->h, W, H, smin, smax, rng);
    p->flip = dv2_rng_uniform(rng) < 0.5;
    p->jitter = dv2_rng_uniform(rng) < 0.8;
    if (p->jitter) {
        /* ColorJitter(0.4, 0.4, 0.2, 0.1): a random order, then the factors. */
        uint32_t order[4] = {0, 1, 2, 3};
        dv2_rng_shuffle_u32(rng, order, 4);
        for (int i = 0; i < 4; i++) p->order[i] = (int)order[i];
        p->brightness = (float)dv2_rng_uniform_range(rng, 0.6, 1.4);
        p->contrast = (float)dv2_rng_uniform_range(rng, 0.6, 1.4);
        p->saturation = (float)dv2_rng_uniform_range(rng, 0.8, 1.2);
        p->hue = dv2_rng_uniform_range(rng, -0.1, 0.1);
    }
    p->gray = dv2_rng_uniform(rng) < 0.2;
    p->blur = p_blur > 0 && dv2_rng_uniform(rng) < p_blur;
    if (p->blur) p->sigma = (float)dv2_rng_uniform_range(rng, 0.1, 2.0);
    p->solarize = p_solarize > 0 && dv2_rng_uniform(rng) < p_solarize;
}

/* The augmented crop of src in w->a (u8 RGB, size x size). */
static int augment_image(const dv2_image *src, const dv2_augment_params *p, dv2_augment_work *w,
                         dv2_error *err) {
    int rc = dv2_resize_bicubic(&w->a, src, p->x, p->y, p->w, p->h, p->size, p->size, err);
    if (rc) return rc;
    dv2_image *img = &w->a;
    if (p->flip) dv2_augment_flip(img);
    if (p->jitter)
        for (int i = 0; i < 4; i++) {
            switch (p->order[i]) {
            case 0: dv2_augment_brightness(img, p->brightness); break;
            case 1: dv2_augment_contrast(img, p->contrast); break;
            case 2: dv2_augment_saturation(img, p->saturation); break;
            default: dv2_augment_hue(img, p->hue); break;
            }
        }
    if (p->gray) dv2_augment_grayscale(img);
    if (p->blur && (rc = dv2_augment_gaussian_blur(img, 9, p->sigma, &w->b, err))) return rc;
    if (p->solarize) dv2_augment_solarize(img, 128);
    return 0;
}

int dv2_augment_apply(float *out, const dv2_image *src, const dv2_augment_params *p,
                      dv2_augment_work *w, dv2_error *err) {
    int rc = augment_image(src, p, w, err);
    if (rc) return rc;
    dv2_resize_to_tensor(out, &w->a);
    return 0;
}

int dv2_augment_apply_u8(uint8_t *out, const dv2_image *src, const dv2_augment_params *p,
                         dv2_augment_work *w, dv2_error *err) {
    int rc = augment_image(src, p, w, err);
    if (rc) return rc;
    memcpy(out, w->a.rgb, (size_t)3 * p->size * p->size);
    return 0;
}

int dv2_augment_multicrop(float *global, float *local, const dv2_image *src,
                          const dv2_multicrop_cfg *cfg, dv2_rng *rng, dv2_augment_work *w,
                          dv2_error *err) {
    return dv2_augment_multicrop_rec(global, local, NULL, src, cfg, rng, w, err);
}

/* The crops into float tensors (gf, lf) or u8 pixels (gu, lu): the same
 * draws either way. */
static int multicrop(float *gf, float *lf, uint8_t *gu, uint8_t *lu, dv2_augment_params *rec,
                     const dv2_image *src, const dv2_multicrop_cfg *cfg, dv2_rng *rng,
                     dv2_augment_work *w, dv2_error *err) {
    if (!src->rgb || src->w <= 0 || src->h <= 0 || cfg->global_size <= 0 ||
        (cfg->n_local > 0 && cfg->local_size <= 0))
        return dv2_error_set(err, DV2_EINVAL, "multicrop: empty image or bad crop sizes");
    size_t gn = (size_t)3 * cfg->global_size * cfg->global_size;
    size_t ln = (size_t)3 * cfg->local_size * cfg->local_size;
    int rc;
    for (int i = 0; i < 2 + cfg->n_local; i++) {
        /* Effective blur probabilities of the released code (spec §4.2
         * quirk): global 1 never, global 2 0.9 (+ solarize 0.2), locals 0.5. */
        int g = i < 2;
        dv2_augment_params p;
        dv2_augment_draw(&p, src->w, src->h, g ? cfg->global_size : cfg->local_size,
                         g ? cfg->global_scale[0] : cfg->local_scale[0],
                         g ? cfg->global_scale[1] : cfg->local_scale[1],
                         i == 0 ? 0.0 : i == 1 ? 0.9 : 0.5, i == 1 ? 0.2 : 0.0, rng);
        if (rec) rec[i] = p;
        size_t off = g ? (size_t)i * gn : (size_t)(i - 2) * ln;
        if (gu) rc = dv2_augment_apply_u8((g ? gu : lu) + off, src, &p, w, err);
        else rc = dv2_augment_apply((g ? gf : lf) + off, src, &p, w, err);
        if (rc) return rc;
    }
    return 0;
}

int dv2_augment_multicrop_rec(float *global, float *local, dv2_augment_params *rec,
                              const dv2_image *src, const dv2_multicrop_cfg *cfg, dv2_rng *rng,
                              dv2_augment_work *w, dv2_error *err) {
    return multicrop(global, local, NULL, NULL, rec, src, cfg, rng, w, err);
}

int dv2_augment_multicrop_u8(uint8_t *global, uint8_t *local, const dv2_image *src,
                             const dv2_multicrop_cfg *cfg, dv2_rng *rng, dv2_augment_work *w,
                             dv2_error *err) {
    return multicrop(NULL, NULL, global, local, NULL, src, cfg, rng, w, err);
}
