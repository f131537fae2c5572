/* idx.c — IDX reader.  The header's dimensions are range-checked, and the
 * buffer grows with the bytes actually read (never beyond what the header
 * declares), so a lying header cannot make us allocate what the file does
 * not hold. */
#include "format/idx.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads exactly total bytes after the header into a growing buffer. */
static int read_body(gzFile g, uint64_t total, uint8_t **out, const char *path, dv2_error *err) {
    uint8_t *buf = NULL;
    uint64_t have = 0, cap = 0;
    while (have < total) {
        if (have == cap) {
            cap = cap ? cap * 2 : (1u << 20);
            if (cap > total) cap = total;
            uint8_t *b = realloc(buf, (size_t)cap);
            if (!b) { free(buf); return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", path); }
            buf = b;
        }
        uint64_t want = cap - have;
        if (want > (1u << 30)) want = 1u << 30;
        int k = gzread(g, buf + have, (unsigned)want);
        if (k < 0) {
            int e;
            const char *m = gzerror(g, &e);
            free(buf);
            return dv2_error_set(err, DV2_ECORRUPT, "%s: %s", path, m);
        }
        if (k == 0) {
            free(buf);
            return dv2_error_set(err, DV2_ECORRUPT, "%s: truncated: %llu of %llu data bytes", path,
                                 (unsigned long long)have, (unsigned long long)total);
        }
        have += (uint64_t)k;
    }
    *out = buf;
    return 0;
}

static int open_header(gzFile *g, const char *path, uint8_t *h, size_t n, dv2_error *err) {
    *g = gzopen(path, "rb");
    if (!*g) return dv2_error_set(err, DV2_EIO, "%s: cannot open", path);
    if (gzread(*g, h, (unsigned)n) != (int)n) {
        gzclose(*g);
        return dv2_error_set(err, DV2_ECORRUPT, "%s: truncated IDX header", path);
    }
    return 0;
}

int dv2_idx_read_images(dv2_idx_images *im, const char *path, dv2_error *err) {
    memset(im, 0, sizeof *im);
    uint8_t h[16];
    gzFile g;
    int rc = open_header(&g, path, h, 16, err);
    if (rc < 0) return rc;
    uint32_t magic = be32(h), n = be32(h + 4), rows = be32(h + 8), cols = be32(h + 12);
    if (magic != 0x00000803) rc = dv2_error_set(err, DV2_ECORRUPT, "%s: not an IDX image file "
                                                "(magic %08x, want 00000803)", path, magic);
    else if (n > DV2_IDX_MAX_ITEMS || rows < 1 || cols < 1 || rows > DV2_IDX_MAX_SIDE ||
             cols > DV2_IDX_MAX_SIDE)
        rc = dv2_error_set(err, DV2_ECORRUPT, "%s: bad IDX dimensions %u x %u x %u", path, n, rows, cols);
    else if (n)
        rc = read_body(g, (uint64_t)n * rows * cols, &im->pixels, path, err);
    gzclose(g);
    if (rc < 0) return rc;
    im->n = n;
    im->rows = rows;
    im->cols = cols;
    return 0;
}

void dv2_idx_images_free(dv2_idx_images *im) {
    if (!im) return;
    free(im->pixels);
    memset(im, 0, sizeof *im);
}

int dv2_idx_read_labels(uint8_t **labels, uint32_t *nout, const char *path, dv2_error *err) {
    *labels = NULL;
    *nout = 0;
    uint8_t h[8];
    gzFile g;
    int rc = open_header(&g, path, h, 8, err);
    if (rc < 0) return rc;
    uint32_t magic = be32(h), n = be32(h + 4);
    if (magic != 0x00000801) rc = dv2_error_set(err, DV2_ECORRUPT, "%s: not an IDX label file "
                                                "(magic %08x, want 00000801)", path, magic);
    else if (n > DV2_IDX_MAX_ITEMS) rc = dv2_error_set(err, DV2_ECORRUPT, "%s: %u labels", path, n);
    else if (n) rc = read_body(g, n, labels, path, err);
    gzclose(g);
    if (rc == 0) *nout = n;
    return rc;
}

int dv2_idx_sniff(const char *path) {
    gzFile g = gzopen(path, "rb");
    if (!g) return 0;
    uint8_t h[4];
    int k = gzread(g, h, 4);
    gzclose(g);
    return k == 4 && h[0] == 0 && h[1] == 0 && h[2] == 8 && h[3] >= 1 && h[3] <= 3;
}

uint32_t dv2_idx_count(const char *path) {
    gzFile g = gzopen(path, "rb");
    if (!g) return 0;
    uint8_t h[8];
    int k = gzread(g, h, 8);
    gzclose(g);
    return k == 8 ? be32(h + 4) : 0;
}
