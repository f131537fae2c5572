/* resize.h — PIL-exact bicubic and bilinear resampling of RGB8 images, the
 * official evaluation transform (resize the shorter side, center crop,
 * to-tensor, ImageNet mean/std) and the square transform of SSCD (bilinear
 * resize to side x side, to-tensor, ImageNet mean/std) that produce the float
 * CHW input of a model.
 *
 * The resampler reproduces Pillow 9.4's Resample.c for 8-bit images: a
 * separable convolution with the cubic kernel (a = -0.5, support 2) or the
 * triangle (bilinear, support 1), whose support is widened by the scale when
 * downsampling (antialiasing), coefficients in 22-bit fixed point, a
 * horizontal pass first (rounded and clipped to uint8), then a vertical pass.
 * Results are bit-identical to PIL's Image.resize(size, BICUBIC or BILINEAR)
 * on an RGB image. */
#ifndef DV2_RESIZE_H
#define DV2_RESIZE_H

#include "core/dv2.h"
#include "image/image.h"

/* ImageNet statistics used by every DINOv2 evaluation and augmentation. */
extern const float dv2_imagenet_mean[3];
extern const float dv2_imagenet_std[3];

enum { DV2_RESIZE_BICUBIC = 0, DV2_RESIZE_BILINEAR = 1 };

/* Resamples with filter (DV2_RESIZE_*) the region (x0, y0, cw, ch) of src — as if it had been cropped
 * out first, so the filter never reads outside it — to dw x dh, and writes
 * the output window (ox, oy, ow, oh) of that resized image to dst (resized to
 * ow x oh).  The whole result is window (0, 0, dw, dh).  The region must lie
 * inside src and the window inside dw x dh. */
int dv2_resize_window(dv2_image *dst, const dv2_image *src, int filter, int x0, int y0, int cw, int ch,
                      int dw, int dh, int ox, int oy, int ow, int oh, dv2_error *err);
/* dv2_resize_window with the bicubic filter. */
int dv2_resize_bicubic_window(dv2_image *dst, const dv2_image *src, int x0, int y0, int cw, int ch,
                              int dw, int dh, int ox, int oy, int ow, int oh, dv2_error *err);
/* dst = src region (x0, y0, cw, ch) resized to dw x dh (torchvision
 * resized_crop on a PIL image with BICUBIC). */
int dv2_resize_bicubic(dv2_image *dst, const dv2_image *src, int x0, int y0, int cw, int ch,
                       int dw, int dh, dv2_error *err);

/* dst = the whole of src resized to dw x dh with PIL's BILINEAR filter. */
int dv2_resize_bilinear(dv2_image *dst, const dv2_image *src, int dw, int dh, dv2_error *err);

/* torchvision Resize(short) output size: the shorter side becomes `short_side`,
 * the longer int(short_side * long / short). */
void dv2_resize_short_side(int *ow, int *oh, int w, int h, int short_side);

/* Converts img to float CHW, (v/255 - mean[c]) / std[c] (torchvision
 * ToTensor + Normalize, same float32 operations).  out holds 3*w*h floats. */
void dv2_resize_to_tensor(float *out, const dv2_image *img);

/* The evaluation transform: Resize(resize, BICUBIC) (skipped when resize is
 * 0), CenterCrop(crop) with torchvision's rounding and zero padding when the
 * image is smaller than the crop, ToTensor, Normalize.  out holds 3*crop*crop
 * floats; tmp is a scratch image reused across calls. */
int dv2_resize_eval_transform(float *out, const dv2_image *src, int resize, int crop, dv2_image *tmp,
                              dv2_error *err);

/* SSCD's square transform: Resize([side, side]) (PIL BILINEAR, the aspect
 * ratio not kept), ToTensor, Normalize.  out holds 3*side*side floats. */
int dv2_resize_square_transform(float *out, const dv2_image *src, int side, dv2_image *tmp,
                                dv2_error *err);

#endif
