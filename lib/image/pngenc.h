/* pngenc.h — lossless PNG encoding of 8-bit grayscale pixels (IDX images
 * are stored as PNG so that every record of a shard is an encoded image),
 * and the cheap header check dv2-pack applies to every image it packs. */
#ifndef DV2_PNGENC_H
#define DV2_PNGENC_H

#include <stddef.h>
#include <stdint.h>
#include "core/dv2.h"

/* Encodes w x h gray pixels (row-major) as PNG into a malloc'd *out of *n
 * bytes.  Deterministic for a given libpng/zlib. */
int dv2_png_encode_gray8(uint8_t **out, size_t *n, const uint8_t *pixels, int w, int h,
                         dv2_error *err);

/* Checks that data is a JPEG whose header parses (libjpeg-turbo) or a PNG
 * with a valid signature and IHDR chunk (CRC included).  what names the
 * image in the message.  0 or DV2_ECORRUPT. */
int dv2_png_check_image(const uint8_t *data, size_t n, const char *what, dv2_error *err);

#endif
