/* resize.c — Pillow-exact bicubic and bilinear resampling (8-bit, fixed
 * point), the evaluation transform and the square transform.  See resize.h
 * for the contract; the numerics follow Pillow 9.4 Resample.c step by step:
 *   scale = (in1 - in0) / out, filterscale = max(scale, 1),
 *   support = s * filterscale (s = 2 cubic, 1 triangle),
 *   window [int(c - support + .5), int(c + support + .5)),
 *   weights filter((x - c + .5) / filterscale) normalized to sum 1, then
 *   rounded to 22-bit integers (away from zero); each pass accumulates from
 *   1 << 21 and clips (acc >> 22) to 0..255.
 * The horizontal pass covers only the source rows the vertical pass needs. */
#include "image/resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const float dv2_imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
const float dv2_imagenet_std[3] = {0.229f, 0.224f, 0.225f};

#define PRECISION_BITS (32 - 8 - 2)

static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Pillow's bilinear filter: the triangle of support 1. */
static double triangle(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

typedef struct filter {
    double (*fn)(double);
    double support;
} filter;

static const filter k_filters[] = {
    [DV2_RESIZE_BICUBIC] = {bicubic, 2.0},
    [DV2_RESIZE_BILINEAR] = {triangle, 1.0},
};

typedef struct coeffs {
    int ksize;
    int *bounds;  /* per output: first input index, count */
    int32_t *k;   /* per output: ksize fixed-point weights */
} coeffs;

static void coeffs_free(coeffs *c) {
    free(c->bounds);
    free(c->k);
}

/* Coefficients for outputs [o0, o0 + on) of a resize of in_size samples
 * (box [0, in_size)) to out_size. */
static int coeffs_make(coeffs *c, const filter *flt, int in_size, int out_size, int o0, int on) {
    float in0 = 0.0f, in1 = (float)in_size;
    double scale = (double)(in1 - in0) / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = flt->support * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    c->ksize = ksize;
    c->bounds = dv2_malloc_array((size_t)on, 2 * sizeof(int));
    c->k = dv2_calloc_array((size_t)on * ksize, sizeof(int32_t));
    double *w = dv2_malloc_array((size_t)ksize, sizeof(double));
    if (!c->bounds || !c->k || !w) {
        free(w);
        coeffs_free(c);
        return DV2_ENOMEM;
    }
    for (int i = 0; i < on; i++) {
        int xx = o0 + i;
        double center = in0 + (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        if (xmax > ksize) xmax = ksize; /* cannot happen; keeps indexing safe */
        for (int x = 0; x < xmax; x++) {
            w[x] = flt->fn((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? w[x] / ww : w[x];
            c->k[(size_t)i * ksize + x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                                                : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        c->bounds[2 * i] = xmin;
        c->bounds[2 * i + 1] = xmax;
    }
    free(w);
    return 0;
}

static inline uint8_t clip8(int32_t v) {
    v >>= PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

int dv2_resize_window(dv2_image *dst, const dv2_image *src, int flt, int x0, int y0, int cw, int ch,
                      int dw, int dh, int ox, int oy, int ow, int oh, dv2_error *err) {
    if (flt != DV2_RESIZE_BICUBIC && flt != DV2_RESIZE_BILINEAR)
        return dv2_error_set(err, DV2_EINVAL, "resize: unknown filter %d", flt);
    const filter *fl = &k_filters[flt];
    if (!src->rgb || cw <= 0 || ch <= 0 || x0 < 0 || y0 < 0 || x0 + cw > src->w || y0 + ch > src->h)
        return dv2_error_set(err, DV2_EINVAL, "resize: region %d,%d %dx%d outside the %dx%d image",
                             x0, y0, cw, ch, src->w, src->h);
    if (dw <= 0 || dh <= 0 || dw > DV2_IMAGE_MAX_SIDE || dh > DV2_IMAGE_MAX_SIDE || ox < 0 || oy < 0 ||
        ow <= 0 || oh <= 0 || ox + ow > dw || oy + oh > dh)
        return dv2_error_set(err, DV2_EINVAL, "resize: window %d,%d %dx%d outside the %dx%d output",
                             ox, oy, ow, oh, dw, dh);
    if (dst == src) return dv2_error_set(err, DV2_EINVAL, "resize: output must differ from input");
    int rc = dv2_image_resize_buffer(dst, ow, oh, err);
    if (rc) return rc;
    size_t sstride = (size_t)src->w * 3;
    const uint8_t *base = src->rgb + (size_t)y0 * sstride + (size_t)x0 * 3;
    int need_h = dw != cw, need_v = dh != ch;

    coeffs cv = {0}, chz = {0};
    uint8_t *tmp = NULL;
    rc = DV2_ENOMEM;
    if (need_v && coeffs_make(&cv, fl, ch, dh, oy, oh)) goto out;
    if (need_h && coeffs_make(&chz, fl, cw, dw, ox, ow)) goto out;

    /* Source rows used: [yfirst, ylast) of the region. */
    int yfirst = oy, ylast = oy + oh;
    if (need_v) {
        yfirst = cv.bounds[0];
        ylast = cv.bounds[2 * (oh - 1)] + cv.bounds[2 * (oh - 1) + 1];
    }
    const uint8_t *vin;  /* input of the vertical pass: rows [yfirst, ylast), ow columns */
    size_t vstride;
    if (need_h) {
        int th = ylast - yfirst;
        tmp = dv2_malloc_array((size_t)th * ow, 3);
        if (!tmp) goto out;
        for (int y = 0; y < th; y++) {
            const uint8_t *srow = base + (size_t)(y + yfirst) * sstride;
            uint8_t *trow = tmp + (size_t)y * ow * 3;
            for (int xx = 0; xx < ow; xx++) {
                int xmin = chz.bounds[2 * xx], xn = chz.bounds[2 * xx + 1];
                const int32_t *k = chz.k + (size_t)xx * chz.ksize;
                int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
                const uint8_t *p = srow + (size_t)xmin * 3;
                for (int x = 0; x < xn; x++) {
                    s0 += p[3 * x] * k[x];
                    s1 += p[3 * x + 1] * k[x];
                    s2 += p[3 * x + 2] * k[x];
                }
                trow[3 * xx] = clip8(s0);
                trow[3 * xx + 1] = clip8(s1);
                trow[3 * xx + 2] = clip8(s2);
            }
        }
        vin = tmp;
        vstride = (size_t)ow * 3;
    } else {
        vin = base + (size_t)yfirst * sstride + (size_t)ox * 3;
        vstride = sstride;
    }
    if (need_v) {
        for (int yy = 0; yy < oh; yy++) {
            int ymin = cv.bounds[2 * yy] - yfirst, yn = cv.bounds[2 * yy + 1];
            const int32_t *k = cv.k + (size_t)yy * cv.ksize;
            uint8_t *drow = dst->rgb + (size_t)yy * ow * 3;
            for (int xx = 0; xx < ow * 3; xx++) {
                int32_t s = 1 << (PRECISION_BITS - 1);
                const uint8_t *p = vin + (size_t)ymin * vstride + xx;
                for (int y = 0; y < yn; y++) s += p[(size_t)y * vstride] * k[y];
                drow[xx] = clip8(s);
            }
        }
    } else {
        for (int yy = 0; yy < oh; yy++)
            memcpy(dst->rgb + (size_t)yy * ow * 3, vin + (size_t)yy * vstride, (size_t)ow * 3);
    }
    rc = 0;
out:
    if (rc) dv2_error_set(err, rc, "resize: out of memory");
    free(tmp);
    coeffs_free(&cv);
    coeffs_free(&chz);
    return rc;
}

int dv2_resize_bicubic_window(dv2_image *dst, const dv2_image *src, int x0, int y0, int cw, int ch,
                              int dw, int dh, int ox, int oy, int ow, int oh, dv2_error *err) {
    return dv2_resize_window(dst, src, DV2_RESIZE_BICUBIC, x0, y0, cw, ch, dw, dh, ox, oy, ow, oh, err);
}

int dv2_resize_bicubic(dv2_image *dst, const dv2_image *src, int x0, int y0, int cw, int ch,
                       int dw, int dh, dv2_error *err) {
    return dv2_resize_window(dst, src, DV2_RESIZE_BICUBIC, x0, y0, cw, ch, dw, dh, 0, 0, dw, dh, err);
}

int dv2_resize_bilinear(dv2_image *dst, const dv2_image *src, int dw, int dh, dv2_error *err) {
    return dv2_resize_window(dst, src, DV2_RESIZE_BILINEAR, 0, 0, src->w, src->h, dw, dh, 0, 0, dw, dh, err);
}

void dv2_resize_short_side(int *ow, int *oh, int w, int h, int short_side) {
    int s = w <= h ? w : h, l = w <= h ? h : w;
    /* Python: int(requested * long / short), true division in double. */
    int nl = (int)((double)short_side * (double)l / (double)s);
    if (w <= h) { *ow = short_side; *oh = nl; }
    else { *ow = nl; *oh = short_side; }
}

void dv2_resize_to_tensor(float *out, const dv2_image *img) {
    size_t np = (size_t)img->w * img->h;
    for (int c = 0; c < 3; c++) {
        float m = dv2_imagenet_mean[c], sd = dv2_imagenet_std[c];
        float *o = out + (size_t)c * np;
        for (size_t i = 0; i < np; i++) o[i] = ((float)img->rgb[3 * i + c] / 255.0f - m) / sd;
    }
}

/* torchvision center_crop offset along one axis: negative when the image is
 * padded (crop larger than the image). */
static int center_offset(int size, int crop) {
    if (crop > size) return -((crop - size) / 2);
    return (int)rint((size - crop) / 2.0); /* Python round: half to even */
}

int dv2_resize_eval_transform(float *out, const dv2_image *src, int resize, int crop, dv2_image *tmp,
                              dv2_error *err) {
    if (crop <= 0 || crop > DV2_IMAGE_MAX_SIDE || resize < 0 || resize > DV2_IMAGE_MAX_SIDE)
        return dv2_error_set(err, DV2_EINVAL, "eval transform: bad sizes (resize %d, crop %d)", resize, crop);
    int rw = src->w, rh = src->h;
    if (resize > 0) dv2_resize_short_side(&rw, &rh, src->w, src->h, resize);
    if (rw <= 0 || rh <= 0)
        return dv2_error_set(err, DV2_EINVAL, "eval transform: %dx%d image resizes to nothing", src->w, src->h);
    int offx = center_offset(rw, crop), offy = center_offset(rh, crop);
    /* The part of the crop covered by the resized image. */
    int ix0 = offx < 0 ? 0 : offx, iy0 = offy < 0 ? 0 : offy;
    int ix1 = offx + crop < rw ? offx + crop : rw, iy1 = offy + crop < rh ? offy + crop : rh;
    int rc = dv2_resize_bicubic_window(tmp, src, 0, 0, src->w, src->h, rw, rh, ix0, iy0, ix1 - ix0,
                                       iy1 - iy0, err);
    if (rc) return rc;
    size_t np = (size_t)crop * crop;
    for (int c = 0; c < 3; c++) {
        float m = dv2_imagenet_mean[c], sd = dv2_imagenet_std[c], zero = (0.0f - m) / sd;
        float *o = out + (size_t)c * np;
        for (int y = 0; y < crop; y++) {
            int sy = y + offy;
            for (int x = 0; x < crop; x++) {
                int sx = x + offx;
                float v = zero;
                if (sy >= iy0 && sy < iy1 && sx >= ix0 && sx < ix1) {
                    uint8_t b = tmp->rgb[((size_t)(sy - iy0) * tmp->w + (sx - ix0)) * 3 + c];
                    v = ((float)b / 255.0f - m) / sd;
                }
                o[(size_t)y * crop + x] = v;
            }
        }
    }
    return 0;
}

int dv2_resize_square_transform(float *out, const dv2_image *src, int side, dv2_image *tmp,
                                dv2_error *err) {
    if (side <= 0 || side > DV2_IMAGE_MAX_SIDE)
        return dv2_error_set(err, DV2_EINVAL, "square transform: bad side %d", side);
    int rc = dv2_resize_bilinear(tmp, src, side, side, err);
    if (rc) return rc;
    dv2_resize_to_tensor(out, tmp);
    return 0;
}
