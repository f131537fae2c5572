/* image.c — JPEG (libjpeg-turbo), PNG (libpng) and binary PNM decoding into
 * RGB8, the image buffer helpers, and JPEG/PPM encoding of previews.
 *
 * The goal is PIL parity for Image.open(f).convert("RGB"):
 *  - JPEG: TurboJPEG with default flags (islow IDCT, fancy upsampling), the
 *    same libjpeg-turbo code PIL drives.  CMYK/YCCK files are read as PIL
 *    reads them (Adobe inverted CMYK, then PIL's cmyk2rgb).  A truncated file
 *    (libjpeg's "Premature end of JPEG file" warning) is an error, as in PIL;
 *    other recoverable warnings (extraneous bytes) are accepted, as in PIL.
 *  - PNG: libpng expands palettes and low bit depths; 16-bit samples keep
 *    the high byte (PIL's "RGB;16B" raw modes); alpha is dropped.
 *  - PNM: P5/P6; maxval 255 is copied, other maxvals are scaled with
 *    round(v / maxval * 255) as PIL's ppm decoder does for RGB. */
#include "image/image.h"

#include <limits.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

void dv2_image_init(dv2_image *img) { memset(img, 0, sizeof *img); }

void dv2_image_free(dv2_image *img) {
    if (!img) return;
    free(img->rgb);
    memset(img, 0, sizeof *img);
}

static int check_dims(int w, int h, dv2_error *err) {
    if (w <= 0 || h <= 0)
        return dv2_error_set(err, DV2_ECORRUPT, "image has an empty size %dx%d", w, h);
    if (w > DV2_IMAGE_MAX_SIDE || h > DV2_IMAGE_MAX_SIDE ||
        (uint64_t)w * (uint64_t)h > DV2_IMAGE_MAX_PIXELS)
        return dv2_error_set(err, DV2_ENOMEM, "image size %dx%d is beyond the limit (%d per side, %llu pixels)",
                             w, h, DV2_IMAGE_MAX_SIDE, (unsigned long long)DV2_IMAGE_MAX_PIXELS);
    return 0;
}

int dv2_image_resize_buffer(dv2_image *img, int w, int h, dv2_error *err) {
    int rc = check_dims(w, h, err);
    if (rc) return rc;
    size_t need = (size_t)w * (size_t)h * 3;
    if (need > img->cap) {
        uint8_t *p = realloc(img->rgb, need);
        if (!p) return dv2_error_set(err, DV2_ENOMEM, "out of memory for a %dx%d image", w, h);
        img->rgb = p;
        img->cap = need;
    }
    img->w = w;
    img->h = h;
    return 0;
}

int dv2_image_sniff(const void *data, size_t n) {
    const uint8_t *p = data;
    if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return DV2_IMAGE_JPEG;
    if (n >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) return DV2_IMAGE_PNG;
    if (n >= 3 && p[0] == 'P' && (p[1] == '5' || p[1] == '6') &&
        (p[2] == ' ' || p[2] == '\t' || p[2] == '\n' || p[2] == '\r' || p[2] == '#'))
        return DV2_IMAGE_PNM;
    return DV2_IMAGE_UNKNOWN;
}

/* ---- JPEG ------------------------------------------------------------- */

static int jpeg_header(tjhandle tj, int *w, int *h, int *cs, const void *data, size_t n,
                       dv2_error *err) {
    int subsamp = 0;
    if (n > ULONG_MAX) return dv2_error_set(err, DV2_ENOMEM, "JPEG: data too large");
    if (tjDecompressHeader3(tj, (const unsigned char *)data, (unsigned long)n, w, h, &subsamp, cs) != 0)
        return dv2_error_set(err, DV2_ECORRUPT, "JPEG: bad header: %s", tjGetErrorStr2(tj));
    return check_dims(*w, *h, err);
}

/* PIL's MULDIV255: a*b/255 rounded, in integers. */
static inline int muldiv255(int a, int b) {
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

static int decode_jpeg(dv2_image *img, const void *data, size_t n, dv2_error *err) {
    tjhandle tj = tjInitDecompress();
    if (!tj) return dv2_error_set(err, DV2_ENOMEM, "JPEG: cannot create a decoder");
    int w = 0, h = 0, cs = 0, rc;
    uint8_t *cmyk = NULL;
    if ((rc = jpeg_header(tj, &w, &h, &cs, data, n, err))) goto out;
    if ((rc = dv2_image_resize_buffer(img, w, h, err))) goto out;
    int is_cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
    uint8_t *dst = img->rgb;
    if (is_cmyk) {
        cmyk = dv2_malloc_array((size_t)w * (size_t)h, 4);
        if (!cmyk) { rc = dv2_error_set(err, DV2_ENOMEM, "JPEG: out of memory"); goto out; }
        dst = cmyk;
    }
    int r = tjDecompress2(tj, (const unsigned char *)data, (unsigned long)n, dst, w, 0, h,
                          is_cmyk ? TJPF_CMYK : TJPF_RGB, TJFLAG_LIMITSCANS);
    if (r != 0) {
        const char *msg = tjGetErrorStr2(tj);
        int fatal = tjGetErrorCode(tj) != TJERR_WARNING || strstr(msg, "Premature end") != NULL;
        if (fatal) {
            rc = dv2_error_set(err, DV2_ECORRUPT, "JPEG: %s", msg);
            goto out;
        }
    }
    if (is_cmyk) {
        /* PIL reads 4-component JPEGs as inverted (Adobe) CMYK, then converts
         * with its cmyk2rgb: nk = 255 - k; out = nk - nk*c/255. */
        size_t np = (size_t)w * (size_t)h;
        for (size_t i = 0; i < np; i++) {
            const uint8_t *s = cmyk + 4 * i;
            int nk = s[3]; /* 255 - (255 - raw k) */
            for (int c = 0; c < 3; c++) {
                int v = nk - muldiv255(255 - s[c], nk);
                img->rgb[3 * i + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    rc = 0;
out:
    free(cmyk);
    tjDestroy(tj);
    return rc;
}

/* ---- PNG -------------------------------------------------------------- */

typedef struct png_src {
    const uint8_t *p;
    size_t n, off;
    char msg[256];
} png_src;

static void png_read_mem(png_structp png, png_bytep out, png_size_t len) {
    png_src *s = png_get_io_ptr(png);
    if (len > s->n - s->off) png_error(png, "truncated data");
    memcpy(out, s->p + s->off, len);
    s->off += len;
}

static void png_on_error(png_structp png, png_const_charp msg) {
    png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

/* The setjmp part, kept apart so that no local of the caller is live across
 * longjmp.  Decodes into *buf (malloc'd here, freed by the caller) with
 * *channels samples of 8 bits per pixel. */
static int png_decode_raw(png_src *src, dv2_image *img, uint8_t **buf, png_bytep **rows,
                          int *channels, dv2_error *err) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, src, png_on_error, png_on_warning);
    if (!png) return dv2_error_set(err, DV2_ENOMEM, "PNG: cannot create a decoder");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return dv2_error_set(err, DV2_ENOMEM, "PNG: cannot create a decoder");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return dv2_error_set(err, DV2_ECORRUPT, "PNG: %s", src->msg[0] ? src->msg : "decoding failed");
    }
    png_set_user_limits(png, DV2_IMAGE_MAX_SIDE, DV2_IMAGE_MAX_SIDE);
    png_set_chunk_malloc_max(png, 64u << 20);
    png_set_read_fn(png, src, png_read_mem);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), ctype = png_get_color_type(png, info);
    if (check_dims((int)w, (int)h, err)) {
        png_destroy_read_struct(&png, &info, NULL);
        return err ? err->code : DV2_ECORRUPT;
    }
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png); /* keeps the high byte, as PIL's ;16B modes */
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    *channels = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (*channels < 1 || *channels > 4 || rowbytes != (size_t)w * (size_t)*channels) {
        png_destroy_read_struct(&png, &info, NULL);
        return dv2_error_set(err, DV2_EUNSUPPORTED, "PNG: unsupported layout (color type %d, depth %d)",
                             ctype, depth);
    }
    int rc = dv2_image_resize_buffer(img, (int)w, (int)h, err);
    if (!rc) {
        *buf = dv2_malloc_array((size_t)w * h, (size_t)*channels);
        *rows = dv2_malloc_array(h, sizeof(png_bytep));
        if (!*buf || !*rows) rc = dv2_error_set(err, DV2_ENOMEM, "PNG: out of memory");
    }
    if (rc) {
        png_destroy_read_struct(&png, &info, NULL);
        return rc;
    }
    for (png_uint_32 y = 0; y < h; y++) (*rows)[y] = *buf + (size_t)y * rowbytes;
    png_read_image(png, *rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

static int decode_png(dv2_image *img, const void *data, size_t n, dv2_error *err) {
    png_src src = {.p = data, .n = n, .off = 0, .msg = {0}};
    uint8_t *buf = NULL;
    png_bytep *rows = NULL;
    int channels = 0;
    int rc = png_decode_raw(&src, img, &buf, &rows, &channels, err);
    if (!rc) {
        size_t np = (size_t)img->w * (size_t)img->h;
        uint8_t *d = img->rgb;
        if (channels == 3) {
            memcpy(d, buf, np * 3);
        } else if (channels == 4) { /* strip_alpha is a no-op for some layouts */
            for (size_t i = 0; i < np; i++) memcpy(d + 3 * i, buf + 4 * i, 3);
        } else { /* gray or gray+alpha */
            for (size_t i = 0; i < np; i++) d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = buf[channels * i];
        }
    }
    free(rows);
    free(buf);
    return rc;
}

/* ---- PNM -------------------------------------------------------------- */

static int pnm_token(const uint8_t *p, size_t n, size_t *off, long *val) {
    size_t i = *off;
    for (;;) {
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r' || p[i] == '\v' || p[i] == '\f')) i++;
        if (i < n && p[i] == '#') {
            while (i < n && p[i] != '\n' && p[i] != '\r') i++;
            continue;
        }
        break;
    }
    if (i >= n || p[i] < '0' || p[i] > '9') return -1;
    long v = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        v = v * 10 + (p[i] - '0');
        if (v > 1000000) return -1;
        i++;
    }
    *val = v;
    *off = i;
    return 0;
}

static int decode_pnm(dv2_image *img, const void *data, size_t n, dv2_error *err) {
    const uint8_t *p = data;
    if (n < 3 || p[0] != 'P' || (p[1] != '5' && p[1] != '6'))
        return dv2_error_set(err, DV2_ECORRUPT, "PNM: not a binary P5/P6 file");
    int ch = p[1] == '6' ? 3 : 1;
    size_t off = 2;
    long w, h, maxval;
    if (pnm_token(p, n, &off, &w) || pnm_token(p, n, &off, &h) || pnm_token(p, n, &off, &maxval))
        return dv2_error_set(err, DV2_ECORRUPT, "PNM: bad header");
    if (off >= n || !(p[off] == ' ' || p[off] == '\t' || p[off] == '\n' || p[off] == '\r'))
        return dv2_error_set(err, DV2_ECORRUPT, "PNM: bad header");
    off++;
    if (maxval < 1 || maxval > 65535)
        return dv2_error_set(err, DV2_ECORRUPT, "PNM: maxval %ld out of range 1..65535", maxval);
    int rc = check_dims((int)w, (int)h, err);
    if (rc) return rc;
    size_t bps = maxval > 255 ? 2 : 1;
    size_t np = (size_t)w * (size_t)h, need = np * ch * bps;
    if (n - off < need)
        return dv2_error_set(err, DV2_ECORRUPT, "PNM: truncated raster (%zu of %zu bytes)", n - off, need);
    if ((rc = dv2_image_resize_buffer(img, (int)w, (int)h, err))) return rc;
    const uint8_t *s = p + off;
    uint8_t lut[256];
    if (bps == 1)
        for (int v = 0; v < 256; v++) {
            long c = v > maxval ? maxval : v;
            lut[v] = maxval == 255 ? (uint8_t)v : (uint8_t)rint((double)c / (double)maxval * 255.0);
        }
    for (size_t i = 0; i < np; i++) {
        for (int c = 0; c < 3; c++) {
            size_t k = i * ch + (ch == 3 ? c : 0);
            uint8_t v;
            if (bps == 1) {
                v = lut[s[k]];
            } else {
                long x = ((long)s[2 * k] << 8) | s[2 * k + 1];
                if (x > maxval) x = maxval;
                v = (uint8_t)rint((double)x / (double)maxval * 255.0);
            }
            img->rgb[3 * i + c] = v;
        }
    }
    return 0;
}

/* ---- dispatch ------------------------------------------------------- */

int dv2_image_info(int *w, int *h, int *format, const void *data, size_t n, dv2_error *err) {
    int f = dv2_image_sniff(data, n);
    *format = f;
    *w = *h = 0;
    if (f == DV2_IMAGE_JPEG) {
        tjhandle tj = tjInitDecompress();
        if (!tj) return dv2_error_set(err, DV2_ENOMEM, "JPEG: cannot create a decoder");
        int cs = 0, rc = jpeg_header(tj, w, h, &cs, data, n, err);
        tjDestroy(tj);
        return rc;
    }
    if (f == DV2_IMAGE_PNG) {
        const uint8_t *p = data;
        if (n < 24 || memcmp(p + 12, "IHDR", 4) != 0)
            return dv2_error_set(err, DV2_ECORRUPT, "PNG: missing IHDR");
        uint32_t ww = (uint32_t)p[16] << 24 | (uint32_t)p[17] << 16 | (uint32_t)p[18] << 8 | p[19];
        uint32_t hh = (uint32_t)p[20] << 24 | (uint32_t)p[21] << 16 | (uint32_t)p[22] << 8 | p[23];
        if (ww > INT_MAX || hh > INT_MAX) return dv2_error_set(err, DV2_ENOMEM, "PNG: size beyond limits");
        *w = (int)ww;
        *h = (int)hh;
        return check_dims(*w, *h, err);
    }
    if (f == DV2_IMAGE_PNM) {
        const uint8_t *p = data;
        size_t off = 2;
        long ww, hh;
        if (pnm_token(p, n, &off, &ww) || pnm_token(p, n, &off, &hh))
            return dv2_error_set(err, DV2_ECORRUPT, "PNM: bad header");
        *w = (int)ww;
        *h = (int)hh;
        return check_dims(*w, *h, err);
    }
    return dv2_error_set(err, DV2_ECORRUPT, "not a JPEG, PNG or PNM image");
}

int dv2_image_decode(dv2_image *img, const void *data, size_t n, dv2_error *err) {
    switch (dv2_image_sniff(data, n)) {
    case DV2_IMAGE_JPEG: return decode_jpeg(img, data, n, err);
    case DV2_IMAGE_PNG: return decode_png(img, data, n, err);
    case DV2_IMAGE_PNM: return decode_pnm(img, data, n, err);
    default: return dv2_error_set(err, DV2_ECORRUPT, "not a JPEG, PNG or PNM image");
    }
}

/* ---- encoding --------------------------------------------------------- */

int dv2_image_encode_jpeg_alloc(uint8_t **out, size_t *n, const dv2_image *img, int quality,
                                dv2_error *err) {
    *out = NULL;
    *n = 0;
    if (!img->rgb || check_dims(img->w, img->h, err)) return dv2_error_set(err, DV2_EINVAL, "JPEG: no image to encode");
    if (quality < 1 || quality > 100) return dv2_error_set(err, DV2_EINVAL, "JPEG: quality %d not in 1..100", quality);
    tjhandle tj = tjInitCompress();
    if (!tj) return dv2_error_set(err, DV2_ENOMEM, "JPEG: cannot create an encoder");
    unsigned char *buf = NULL;
    unsigned long len = 0;
    int r = tjCompress2(tj, img->rgb, img->w, 0, img->h, TJPF_RGB, &buf, &len, TJSAMP_420, quality, 0);
    if (r != 0) {
        int rc = dv2_error_set(err, DV2_EIO, "JPEG: encoding failed: %s", tjGetErrorStr2(tj));
        tjFree(buf);
        tjDestroy(tj);
        return rc;
    }
    tjDestroy(tj);
    /* Hand back a plain malloc'd copy so callers free() it like everything else. */
    *out = malloc(len);
    if (!*out) {
        tjFree(buf);
        return dv2_error_set(err, DV2_ENOMEM, "JPEG: out of memory");
    }
    memcpy(*out, buf, len);
    *n = len;
    tjFree(buf);
    return 0;
}

int dv2_image_encode_ppm_alloc(uint8_t **out, size_t *n, const dv2_image *img, dv2_error *err) {
    *out = NULL;
    *n = 0;
    if (!img->rgb || check_dims(img->w, img->h, err)) return dv2_error_set(err, DV2_EINVAL, "PPM: no image to encode");
    char head[64];
    int hl = snprintf(head, sizeof head, "P6\n%d %d\n255\n", img->w, img->h);
    size_t body = (size_t)img->w * img->h * 3;
    *out = malloc((size_t)hl + body);
    if (!*out) return dv2_error_set(err, DV2_ENOMEM, "PPM: out of memory");
    memcpy(*out, head, (size_t)hl);
    memcpy(*out + hl, img->rgb, body);
    *n = (size_t)hl + body;
    return 0;
}
