/* pngenc.c — PNG encoding through libpng into memory, and the image header
 * check used by dv2-pack (JPEG header via turbojpeg, PNG signature + IHDR). */
#include "image/pngenc.h"

#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <zlib.h>

typedef struct membuf { uint8_t *p; size_t n, cap; int oom; } membuf;

static void mem_write(png_structp png, png_bytep data, png_size_t len) {
    membuf *m = png_get_io_ptr(png);
    if (m->oom) return;
    if (m->n + len > m->cap) {
        size_t c = m->cap ? m->cap : 1024;
        while (c < m->n + len) c *= 2;
        uint8_t *q = realloc(m->p, c);
        if (!q) { m->oom = 1; return; }
        m->p = q;
        m->cap = c;
    }
    memcpy(m->p + m->n, data, len);
    m->n += len;
}

static void mem_flush(png_structp png) { (void)png; }

int dv2_png_encode_gray8(uint8_t **out, size_t *n, const uint8_t *pixels, int w, int h,
                         dv2_error *err) {
    *out = NULL;
    *n = 0;
    membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *rows = malloc((size_t)(h > 0 ? h : 1) * sizeof *rows);
    if (!png || !info || !rows) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        return dv2_error_set(err, DV2_ENOMEM, "png: out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        free(m.p);
        return dv2_error_set(err, DV2_EIO, "png: encoding failed");
    }
    png_set_write_fn(png, &m, mem_write, mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 9);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)(pixels + (size_t)y * (size_t)w);
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    if (m.oom) { free(m.p); return dv2_error_set(err, DV2_ENOMEM, "png: out of memory"); }
    *out = m.p;
    *n = m.n;
    return 0;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int dv2_png_check_image(const uint8_t *data, size_t n, const char *what, dv2_error *err) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && memcmp(data, sig, 8) == 0) {
        if (n < 33 || be32(data + 8) != 13 || memcmp(data + 12, "IHDR", 4) != 0)
            return dv2_error_set(err, DV2_ECORRUPT, "%s: PNG without an IHDR chunk", what);
        uint32_t crc = (uint32_t)crc32(0, data + 12, 17);
        uint32_t w = be32(data + 16), h = be32(data + 20);
        if (crc != be32(data + 29) || w == 0 || h == 0 || w > 0x7fffffffu || h > 0x7fffffffu)
            return dv2_error_set(err, DV2_ECORRUPT, "%s: damaged PNG header", what);
        return 0;
    }
    if (n >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) {
        tjhandle tj = tjInitDecompress();
        if (!tj) return dv2_error_set(err, DV2_ENOMEM, "%s: turbojpeg: cannot initialize", what);
        int w, h, sub, cs;
        int rc = tjDecompressHeader3(tj, data, (unsigned long)n, &w, &h, &sub, &cs);
        char msg[200];
        if (rc != 0) snprintf(msg, sizeof msg, "%s", tjGetErrorStr2(tj));
        tjDestroy(tj);
        if (rc != 0) return dv2_error_set(err, DV2_ECORRUPT, "%s: bad JPEG header: %s", what, msg);
        return 0;
    }
    return dv2_error_set(err, DV2_ECORRUPT, "%s: not a JPEG or PNG image", what);
}
