/* image.h — decoding of encoded images (JPEG, PNG, binary PNM) into 8-bit
 * interleaved RGB, and JPEG encoding of small previews.
 *
 * Every decoder produces what PIL gives for Image.open(f).convert("RGB"):
 * grayscale is replicated to three channels, alpha is dropped (not
 * composited), palettes are expanded, 16-bit samples keep their high byte.
 * JPEG goes through libjpeg-turbo with its default (islow DCT, fancy
 * upsampling) settings, the same code path PIL uses, so pixels are identical.
 * Sizes are checked against DV2_IMAGE_MAX_* before any allocation, and damaged
 * or truncated data is an error (DV2_ECORRUPT), never a crash.
 * One deliberate difference: a 16-bit grayscale PNG also keeps its high byte,
 * where PIL opens it as mode "I" and its RGB conversion clips values above
 * 255 (making most such images white). */
#ifndef DV2_IMAGE_H
#define DV2_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include "core/dv2.h"

#define DV2_IMAGE_MAX_SIDE 65500             /* JPEG's own limit is 65500 */
#define DV2_IMAGE_MAX_PIXELS (1ull << 27)    /* 134M pixels = 402 MB of RGB */

enum {
    DV2_IMAGE_UNKNOWN = 0,
    DV2_IMAGE_JPEG = 1,
    DV2_IMAGE_PNG = 2,
    DV2_IMAGE_PNM = 3,
};

/* An RGB8 image: pixel (x, y) channel c is rgb[(y*w + x)*3 + c].  cap is the
 * allocated size of rgb in bytes, so one image can be decoded into again and
 * again without reallocating. */
typedef struct dv2_image {
    int w, h;
    uint8_t *rgb;
    size_t cap;
} dv2_image;

void dv2_image_init(dv2_image *img);
void dv2_image_free(dv2_image *img); /* frees rgb; img may be NULL */
/* Sets w, h and makes rgb hold w*h*3 bytes (contents undefined). */
int dv2_image_resize_buffer(dv2_image *img, int w, int h, dv2_error *err);

/* Guesses the format from the first bytes; DV2_IMAGE_UNKNOWN if none fits. */
int dv2_image_sniff(const void *data, size_t n);

/* Reads only the header: dimensions and format.  DV2_ECORRUPT for an
 * unreadable header, DV2_ENOMEM past the size limits. */
int dv2_image_info(int *w, int *h, int *format, const void *data, size_t n, dv2_error *err);

/* Decodes data (any supported format) into img, growing img->rgb as needed. */
int dv2_image_decode(dv2_image *img, const void *data, size_t n, dv2_error *err);

/* Encodes img as a baseline JPEG (4:2:0, quality 1..100) into a malloc'd
 * buffer *out of *n bytes; the caller frees it with free(). */
int dv2_image_encode_jpeg_alloc(uint8_t **out, size_t *n, const dv2_image *img, int quality,
                                dv2_error *err);
/* Encodes img as binary PPM (P6) into a malloc'd buffer. */
int dv2_image_encode_ppm_alloc(uint8_t **out, size_t *n, const dv2_image *img, dv2_error *err);

#endif
