/* augment.h — the DINOv2 training augmentations on RGB8 images, each
 * deterministic operation matching its PIL / torchvision (0.14) counterpart
 * given the same parameters, and the multi-crop function that draws those
 * parameters from a dv2_rng (the draws themselves are ours, not Python's).
 *
 * Operations work in place on a dv2_image unless they change its size.
 * Tolerances against torchvision (pinned in tests/t_image_parity.sh):
 * resized crop, flip, brightness, contrast, saturation, hue, grayscale and
 * solarize are bit-exact; the Gaussian blur may differ by 1 level on pixels
 * whose float sum lands within rounding noise of a .5 boundary (torch sums
 * 81 float products in its own order, we sum 9+9 in double). */
#ifndef DV2_AUGMENT_H
#define DV2_AUGMENT_H

#include "core/dv2.h"
#include "image/image.h"
#include "core/rng.h"

/* ---- deterministic operations (PIL / torchvision semantics) ---- */

void dv2_augment_flip(dv2_image *img);                       /* horizontal flip */
void dv2_augment_brightness(dv2_image *img, float factor);   /* ImageEnhance.Brightness */
void dv2_augment_contrast(dv2_image *img, float factor);     /* ImageEnhance.Contrast */
void dv2_augment_saturation(dv2_image *img, float factor);   /* ImageEnhance.Color */
void dv2_augment_hue(dv2_image *img, double hue);            /* F.adjust_hue, hue in [-0.5, 0.5] */
void dv2_augment_grayscale(dv2_image *img);                  /* convert("L"), 3 channels */
void dv2_augment_solarize(dv2_image *img, int threshold);    /* ImageOps.solarize */
/* torchvision gaussian_blur with an odd kernel size and one sigma for both
 * axes, reflect padding, rounding back to uint8.  tmp is scratch. */
int dv2_augment_gaussian_blur(dv2_image *img, int ksize, float sigma, dv2_image *tmp, dv2_error *err);

/* RandomResizedCrop.get_params: a box (x, y, w, h) of a W x H image with area
 * fraction in [smin, smax] and aspect ratio log-uniform in [3/4, 4/3]; 10
 * attempts, then the central fallback crop. */
void dv2_augment_rrc_box(int *x, int *y, int *w, int *h, int W, int H, double smin, double smax,
                         dv2_rng *rng);

/* ---- the DINOv2 multi-crop ---- */

typedef struct dv2_multicrop_cfg {
    int global_size;        /* S_g, 224 */
    int local_size;         /* S_l, 96 (98 for patch 14) */
    int n_local;            /* 8; 0 for none */
    double global_scale[2]; /* (0.32, 1.0) */
    double local_scale[2];  /* (0.05, 0.32) */
} dv2_multicrop_cfg;

void dv2_multicrop_cfg_default(dv2_multicrop_cfg *cfg);

/* Scratch images reused across calls (one per worker thread). */
typedef struct dv2_augment_work {
    dv2_image a, b;
} dv2_augment_work;
void dv2_augment_work_init(dv2_augment_work *w);
void dv2_augment_work_free(dv2_augment_work *w);

/* The random choices of one crop, drawn by dv2_augment_draw and applied by
 * dv2_augment_apply (recorded so tests can replay them with torchvision). */
typedef struct dv2_augment_params {
    int x, y, w, h;        /* RandomResizedCrop box in the source image */
    int size;              /* output side */
    int flip;              /* horizontal flip */
    int jitter;            /* color jitter applied */
    int order[4];          /* 0 brightness, 1 contrast, 2 saturation, 3 hue */
    float brightness, contrast, saturation;
    double hue;
    int gray;              /* grayscale */
    int blur;              /* Gaussian blur (kernel 9) with sigma */
    float sigma;
    int solarize;          /* solarize at 128 */
} dv2_augment_params;

/* Draws the parameters of one crop of a W x H image: random resized crop to
 * size x size (scale in [smin, smax]), flip p = 0.5, color jitter p = 0.8
 * (brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1, random order),
 * grayscale p = 0.2, blur with probability p_blur (sigma U(0.1, 2), kernel
 * 9), solarize with probability p_solarize. */
void dv2_augment_draw(dv2_augment_params *p, int W, int H, int size, double smin, double smax,
                      double p_blur, double p_solarize, dv2_rng *rng);
/* Applies p to src: resized crop, flip, jitter in p->order, grayscale, blur,
 * solarize, then normalized float CHW into out (3*size*size). */
int dv2_augment_apply(float *out, const dv2_image *src, const dv2_augment_params *p,
                      dv2_augment_work *w, dv2_error *err);
/* The same, stopping before the normalisation: u8 RGB (size, size, 3) into
 * out, which dv2_resize_to_tensor (or a backend's pixels_forward) turns into
 * exactly dv2_augment_apply's floats. */
int dv2_augment_apply_u8(uint8_t *out, const dv2_image *src, const dv2_augment_params *p,
                         dv2_augment_work *w, dv2_error *err);

/* DINOv2 DataAugmentationDINO with the effective (released) blur
 * probabilities: global crop 1 never blurred, global crop 2 blurred with p =
 * 0.9 and solarized with p = 0.2, local crops blurred with p = 0.5.
 * global: 2*3*S_g*S_g floats (crop 1 then crop 2); local: n_local*3*S_l*S_l. */
int dv2_augment_multicrop(float *global, float *local, const dv2_image *src,
                          const dv2_multicrop_cfg *cfg, dv2_rng *rng, dv2_augment_work *w,
                          dv2_error *err);
/* The same crops as u8 RGB pixels, (S, S, 3) each, in the same order: what
 * the training loader sends to the device, where they are normalised. */
int dv2_augment_multicrop_u8(uint8_t *global, uint8_t *local, const dv2_image *src,
                             const dv2_multicrop_cfg *cfg, dv2_rng *rng, dv2_augment_work *w,
                             dv2_error *err);
/* The same, recording each crop's parameters in rec[2 + n_local] (global 1,
 * global 2, then the locals); rec may be NULL. */
int dv2_augment_multicrop_rec(float *global, float *local, dv2_augment_params *rec,
                              const dv2_image *src, const dv2_multicrop_cfg *cfg, dv2_rng *rng,
                              dv2_augment_work *w, dv2_error *err);

#endif
