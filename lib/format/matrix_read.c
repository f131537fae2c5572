/* matrix_read.c — reading embedding matrices: a streaming reader (file or
 * stdin, plain or zstd, told apart by the first bytes) that unpacks rows in
 * blocks into caller buffers, and a loader that maps an uncompressed f32 file
 * in place or reads anything else into memory. */
#include "format/matrix.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "core/afile.h"

enum { IN_CAP = 1 << 17, BLOCK_BYTES = 1 << 20 };

struct dv2_matrix_reader {
    int fd;
    int own_fd;
    char *name;
    dv2_matrix_info info;
    size_t row_bytes;
    uint64_t rows_read;
    uint8_t *in;          /* raw input buffer */
    size_t in_pos, in_len;
    int in_eof;
    ZSTD_DCtx *dctx;      /* non-NULL: the input is zstd */
    size_t zret;          /* last ZSTD_decompressStream result: 0 = at a frame end */
    uint8_t *blk;         /* packed rows */
    size_t blk_rows;
};

static int is_zstd_magic(const uint8_t *p) {
    uint32_t m = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return m == 0xFD2FB528u || (m & 0xFFFFFFF0u) == 0x184D2A50u; /* frame or skippable frame */
}

static int refill(dv2_matrix_reader *r, dv2_error *err) {
    r->in_pos = r->in_len = 0;
    for (;;) {
        ssize_t n = read(r->fd, r->in, IN_CAP);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return dv2_error_errno(err, DV2_EIO, errno, "%s: read failed", r->name);
        if (n == 0) r->in_eof = 1;
        r->in_len = (size_t)n;
        return DV2_OK;
    }
}

/* Fills dst[0..n) with decoded bytes; *got < n only at the end of input. */
static int src_read(dv2_matrix_reader *r, uint8_t *dst, size_t n, size_t *got, dv2_error *err) {
    size_t pos = 0;
    int rc;
    if (!r->dctx) {
        size_t take = r->in_len - r->in_pos < n ? r->in_len - r->in_pos : n;
        memcpy(dst, r->in + r->in_pos, take);
        r->in_pos += take;
        pos = take;
        if (pos < n && !r->in_eof) { /* large reads go straight to the caller's buffer */
            long m = dv2_read_full(r->fd, dst + pos, n - pos);
            if (m < 0) return dv2_error_errno(err, DV2_EIO, errno, "%s: read failed", r->name);
            pos += (size_t)m;
            if (pos < n) r->in_eof = 1;
        }
        *got = pos;
        return DV2_OK;
    }
    ZSTD_outBuffer out = {dst, n, 0};
    while (out.pos < out.size) {
        if (r->in_pos == r->in_len && !r->in_eof && (rc = refill(r, err)) != 0) return rc;
        ZSTD_inBuffer in = {r->in, r->in_len, r->in_pos};
        size_t before = out.pos, in_before = in.pos;
        size_t z = ZSTD_decompressStream(r->dctx, &out, &in);
        r->in_pos = in.pos;
        if (ZSTD_isError(z))
            return dv2_error_set(err, DV2_ECORRUPT, "%s: zstd: %s", r->name, ZSTD_getErrorName(z));
        /* A call that moved nothing says nothing about the stream (after a
         * frame's end it would announce the next frame): keep the last answer,
         * and at the end of input stop there. */
        if (out.pos == before && in.pos == in_before) {
            if (r->in_eof && r->in_pos == r->in_len) break;
            continue;
        }
        r->zret = z;
    }
    if (out.pos < n && r->zret != 0)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: truncated zstd stream", r->name);
    *got = out.pos;
    return DV2_OK;
}

static int reader_init_fd(dv2_matrix_reader *r, dv2_error *err) {
    int rc;
    r->in = malloc(IN_CAP);
    if (!r->in) return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", r->name);
    /* Peek at least 4 bytes to tell zstd from plain. */
    while (r->in_len < 4 && !r->in_eof) {
        ssize_t n = read(r->fd, r->in + r->in_len, IN_CAP - r->in_len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return dv2_error_errno(err, DV2_EIO, errno, "%s: read failed", r->name);
        if (n == 0) r->in_eof = 1;
        r->in_len += (size_t)n;
    }
    if (r->in_len == 0)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: empty input, not a dv2 embedding matrix",
                             r->name);
    if (r->in_len >= 4 && is_zstd_magic(r->in)) {
        r->dctx = ZSTD_createDCtx();
        if (!r->dctx) return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", r->name);
        r->zret = 1;
    }
    uint8_t *h = malloc(DV2_MATRIX_HEADER_SIZE);
    if (!h) return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", r->name);
    size_t got = 0;
    rc = src_read(r, h, DV2_MATRIX_HEADER_SIZE, &got, err);
    if (!rc && got < DV2_MATRIX_HEADER_SIZE) {
        if (got >= 8 && memcmp(h, DV2_MATRIX_MAGIC, 8) != 0)
            rc = dv2_error_set(err, DV2_ECORRUPT, "%s: not a dv2 embedding matrix (bad magic)",
                               r->name);
        else
            rc = dv2_error_set(err, DV2_ECORRUPT, "%s: truncated header (%zu of %d bytes)",
                               r->name, got, DV2_MATRIX_HEADER_SIZE);
    }
    if (!rc) rc = dv2_matrix_header_decode(&r->info, h, r->name, err);
    free(h);
    if (rc) return rc;
    r->row_bytes = dv2_matrix_row_bytes(r->info.dtype, r->info.dim);
    r->blk_rows = BLOCK_BYTES / r->row_bytes ? BLOCK_BYTES / r->row_bytes : 1;
    r->blk = dv2_malloc_array(r->blk_rows, r->row_bytes);
    if (!r->blk) return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", r->name);
    return DV2_OK;
}

int dv2_matrix_reader_open(dv2_matrix_reader **rp, const char *path, dv2_error *err) {
    *rp = NULL;
    dv2_matrix_reader *r = calloc(1, sizeof *r);
    if (!r) return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", path);
    int is_stdin = strcmp(path, "-") == 0;
    r->name = strdup(is_stdin ? "stdin" : path);
    if (!r->name) {
        free(r);
        return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", path);
    }
    int rc = DV2_OK;
    if (is_stdin) {
        r->fd = 0;
    } else {
        r->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (r->fd < 0) rc = dv2_error_errno(err, DV2_EIO, errno, "%s: cannot open", path);
        else r->own_fd = 1;
    }
    if (!rc) rc = reader_init_fd(r, err);
    if (rc) {
        dv2_matrix_reader_close(r);
        return rc;
    }
    *rp = r;
    return DV2_OK;
}

const dv2_matrix_info *dv2_matrix_reader_info(const dv2_matrix_reader *r) { return &r->info; }
const char *dv2_matrix_reader_name(const dv2_matrix_reader *r) { return r->name; }
uint64_t dv2_matrix_reader_rows_read(const dv2_matrix_reader *r) { return r->rows_read; }

int64_t dv2_matrix_reader_read(dv2_matrix_reader *r, uint64_t *ids, int32_t *labels, float *vecs,
                               size_t cap, dv2_error *err) {
    size_t dim = r->info.dim, total = 0;
    while (total < cap) {
        size_t want = cap - total < r->blk_rows ? cap - total : r->blk_rows, got = 0;
        int rc = src_read(r, r->blk, want * r->row_bytes, &got, err);
        if (rc) return rc;
        size_t m = got / r->row_bytes;
        if (got % r->row_bytes)
            return dv2_error_set(err, DV2_ECORRUPT,
                                 "%s: truncated row %llu at offset %llu (%zu of %zu bytes)",
                                 r->name, (unsigned long long)(r->rows_read + m),
                                 (unsigned long long)(DV2_MATRIX_HEADER_SIZE +
                                                      (r->rows_read + m) * r->row_bytes),
                                 got % r->row_bytes, r->row_bytes);
        for (size_t i = 0; i < m; i++) {
            const uint8_t *row = r->blk + i * r->row_bytes;
            size_t j = total + i;
            if (ids) memcpy(&ids[j], row, 8); /* little-endian host */
            if (labels) memcpy(&labels[j], row + 8, 4);
            if (!vecs) continue;
            if (r->info.dtype == DV2_MATRIX_F32) {
                memcpy(vecs + j * dim, row + 12, dim * 4);
            } else {
                uint16_t hb[256];
                for (size_t k = 0; k < dim; k += 256) {
                    size_t c = dim - k < 256 ? dim - k : 256;
                    memcpy(hb, row + 12 + 2 * k, 2 * c);
                    dv2_matrix_f16_to_f32(vecs + j * dim + k, hb, c);
                }
            }
        }
        total += m;
        r->rows_read += m;
        if (m < want) break; /* end of input */
    }
    return (int64_t)total;
}

void dv2_matrix_reader_close(dv2_matrix_reader *r) {
    if (!r) return;
    if (r->own_fd) close(r->fd);
    ZSTD_freeDCtx(r->dctx);
    free(r->in);
    free(r->blk);
    free(r->name);
    free(r);
}

/* ---- loader ------------------------------------------------------------------------ */

/* Maps an uncompressed f32 regular file.  Returns 1 when mapped, 0 when the
 * file is of another kind (the caller streams it), or a negative status. */
static int load_mapped(dv2_matrix *m, const char *path, unsigned flags, dv2_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dv2_error_errno(err, DV2_EIO, errno, "%s: cannot open", path);
    struct stat st;
    uint8_t h[DV2_MATRIX_HEADER_SIZE];
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = dv2_error_errno(err, DV2_EIO, errno, "%s: stat failed", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < DV2_MATRIX_HEADER_SIZE) goto out;
    if (pread(fd, h, sizeof h, 0) != (ssize_t)sizeof h) {
        rc = dv2_error_errno(err, DV2_EIO, errno, "%s: read failed", path);
        goto out;
    }
    if (is_zstd_magic(h)) goto out;
    if ((rc = dv2_matrix_header_decode(&m->info, h, path, err)) != 0) goto out;
    if (m->info.dtype != DV2_MATRIX_F32) goto out;
    size_t rb = dv2_matrix_row_bytes(m->info.dtype, m->info.dim);
    uint64_t body = (uint64_t)st.st_size - DV2_MATRIX_HEADER_SIZE, rows = body / rb;
    if (body % rb) {
        rc = dv2_error_set(err, DV2_ECORRUPT,
                           "%s: truncated row %llu at offset %llu (%llu of %zu bytes)", path,
                           (unsigned long long)rows,
                           (unsigned long long)(DV2_MATRIX_HEADER_SIZE + rows * rb),
                           (unsigned long long)(body % rb), rb);
        goto out;
    }
    int prot = PROT_READ | ((flags & DV2_MATRIX_LOAD_WRITABLE) ? PROT_WRITE : 0);
    void *map = mmap(NULL, (size_t)st.st_size, prot, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        rc = dv2_error_errno(err, DV2_EIO, errno, "%s: mmap failed", path);
        goto out;
    }
    m->ids = dv2_malloc_array(rows ? rows : 1, 8);
    m->labels = dv2_malloc_array(rows ? rows : 1, 4);
    if (!m->ids || !m->labels) {
        munmap(map, (size_t)st.st_size);
        rc = dv2_error_set(err, DV2_ENOMEM, "%s: out of memory for %llu rows", path,
                           (unsigned long long)rows);
        goto out;
    }
    const uint8_t *base = (const uint8_t *)map + DV2_MATRIX_HEADER_SIZE;
    for (uint64_t i = 0; i < rows; i++) {
        memcpy(&m->ids[i], base + i * rb, 8);
        memcpy(&m->labels[i], base + i * rb + 8, 4);
    }
    m->map_ = map;
    m->map_len_ = (size_t)st.st_size;
    m->mapped = 1;
    m->rows = (size_t)rows;
    m->dim = m->info.dim;
    m->ld = rb / 4;
    m->vecs = (float *)(void *)((uint8_t *)map + DV2_MATRIX_HEADER_SIZE + 12);
    rc = 1;
out:
    close(fd);
    return rc;
}

int dv2_matrix_load(dv2_matrix *m, const char *path, unsigned flags, dv2_error *err) {
    memset(m, 0, sizeof *m);
    int rc;
    if (strcmp(path, "-") != 0 && !(flags & DV2_MATRIX_LOAD_NOMAP)) {
        rc = load_mapped(m, path, flags, err);
        if (rc == 1) return DV2_OK;
        if (rc < 0) {
            dv2_matrix_free(m);
            return rc;
        }
    }
    dv2_matrix_reader *r;
    if ((rc = dv2_matrix_reader_open(&r, path, err)) != 0) {
        memset(m, 0, sizeof *m);
        return rc;
    }
    m->info = r->info;
    m->dim = m->ld = r->info.dim;
    size_t cap = 0, n = 0, dim = m->dim;
    /* Size hint: the exact count of an uncompressed regular file; otherwise grow. */
    struct stat st;
    if (!r->dctx && r->own_fd && fstat(r->fd, &st) == 0 && S_ISREG(st.st_mode))
        cap = ((uint64_t)st.st_size - DV2_MATRIX_HEADER_SIZE) / r->row_bytes + 1;
    if (cap < 1024) cap = 1024;
    for (;;) {
        if (n == cap || !m->owned_) {
            size_t nc = m->owned_ ? cap * 2 : cap;
            if (nc > SIZE_MAX / 8 / dim) {
                rc = dv2_error_set(err, DV2_ENOMEM, "%s: matrix too large", r->name);
                break;
            }
            float *v = realloc(m->owned_, nc * dim * 4);
            uint64_t *ni = v ? realloc(m->ids, nc * 8) : NULL;
            if (ni) m->ids = ni;
            int32_t *nl = ni ? realloc(m->labels, nc * 4) : NULL;
            if (nl) m->labels = nl;
            if (v) m->owned_ = v;
            if (!v || !ni || !nl) {
                rc = dv2_error_set(err, DV2_ENOMEM, "%s: out of memory for %zu rows", r->name, nc);
                break;
            }
            cap = nc;
        }
        int64_t got = dv2_matrix_reader_read(r, m->ids + n, m->labels + n, m->owned_ + n * dim,
                                             cap - n, err);
        if (got < 0) {
            rc = (int)got;
            break;
        }
        n += (size_t)got;
        if (n < cap) break; /* the reader stops short only at the end */
    }
    dv2_matrix_reader_close(r);
    if (rc) {
        dv2_matrix_free(m);
        return rc;
    }
    m->rows = n;
    m->vecs = m->owned_;
    return DV2_OK;
}

void dv2_matrix_free(dv2_matrix *m) {
    if (!m) return;
    if (m->map_) munmap(m->map_, m->map_len_);
    free(m->owned_);
    free(m->ids);
    free(m->labels);
    memset(m, 0, sizeof *m);
}
