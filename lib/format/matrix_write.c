/* matrix_write.c — the embedding matrix writer: packs rows (f32 or f16),
 * writes them plain or as one zstd stream, atomically to a named file or to
 * stdout, or in place for resumable appends; optionally mirrors the rows into
 * .npy files whose headers get the final count at close. */
#include "format/matrix.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "core/afile.h"
#include "core/lock.h"

enum { BLOCK_BYTES = 1 << 20, NPY_HDR = DV2_MATRIX_NPY_HEADER, ROWS_OFFSET = 32 };

struct dv2_matrix_writer {
    char *name;           /* path, or "stdout" */
    dv2_matrix_info info;
    size_t row_bytes;
    uint64_t rows;
    int append;
    long restarted;       /* append mode: bytes of a partial header discarded */
    dv2_afile af;         /* normal mode */
    FILE *f;              /* where bytes go: af.f, or the in-place file in append mode */
    int named;            /* a path, not stdout */
    ZSTD_CCtx *cctx;
    uint8_t *zout;
    size_t zout_cap;
    uint8_t *blk;         /* packed rows */
    size_t blk_rows;      /* capacity in rows */
    uint16_t *half;       /* f16 staging, dim entries */
    int npy;              /* mirroring into .npy */
    dv2_afile npy_af[3];  /* vectors, ids, labels */
    char *npy_names[3];
    dv2_lock lock;        /* append mode: one writer of the file */
};

static void put_u64le(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static const char *npy_descr[3] = {"<f4", "<u8", "<i4"};

static int npy_write_headers(dv2_matrix_writer *w, int rewind, dv2_error *err) {
    for (int k = 0; k < 3; k++) {
        uint8_t h[NPY_HDR];
        dv2_matrix_npy_header(h, npy_descr[k], w->rows, k == 0 ? w->info.dim : 0);
        FILE *f = w->npy_af[k].f;
        if ((rewind && fseeko(f, 0, SEEK_SET) != 0) || fwrite(h, 1, NPY_HDR, f) != NPY_HDR)
            return dv2_error_errno(err, DV2_EIO, errno, "%s: write failed", w->npy_names[k]);
    }
    return DV2_OK;
}

static int npy_write_rows(dv2_matrix_writer *w, const uint64_t *ids, const int32_t *labels,
                          const float *vecs, size_t n, dv2_error *err) {
    size_t dim = w->info.dim;
    int bad = n && fwrite(vecs, 4 * dim, n, w->npy_af[0].f) != n;
    bad = bad || (n && fwrite(ids, 8, n, w->npy_af[1].f) != n);
    if (!bad && labels) {
        bad = n && fwrite(labels, 4, n, w->npy_af[2].f) != n;
    } else if (!bad) {
        int32_t none = -1;
        for (size_t i = 0; i < n && !bad; i++) bad = fwrite(&none, 4, 1, w->npy_af[2].f) != 1;
    }
    if (bad) return dv2_error_errno(err, DV2_EIO, errno, "%s: write failed", w->npy_names[0]);
    return DV2_OK;
}

/* Raw bytes to the output, through zstd when compressing. */
static int out_bytes(dv2_matrix_writer *w, const void *p, size_t n, dv2_error *err) {
    if (!w->cctx) {
        if (n && fwrite(p, 1, n, w->f) != n)
            return dv2_error_errno(err, DV2_EIO, errno, "%s: write failed", w->name);
        return DV2_OK;
    }
    ZSTD_inBuffer in = {p, n, 0};
    while (in.pos < in.size) {
        ZSTD_outBuffer out = {w->zout, w->zout_cap, 0};
        size_t r = ZSTD_compressStream2(w->cctx, &out, &in, ZSTD_e_continue);
        if (ZSTD_isError(r))
            return dv2_error_set(err, DV2_EIO, "%s: zstd: %s", w->name, ZSTD_getErrorName(r));
        if (out.pos && fwrite(w->zout, 1, out.pos, w->f) != out.pos)
            return dv2_error_errno(err, DV2_EIO, errno, "%s: write failed", w->name);
    }
    return DV2_OK;
}

static int zstd_finish(dv2_matrix_writer *w, dv2_error *err) {
    size_t r;
    do {
        ZSTD_inBuffer in = {NULL, 0, 0};
        ZSTD_outBuffer out = {w->zout, w->zout_cap, 0};
        r = ZSTD_compressStream2(w->cctx, &out, &in, ZSTD_e_end);
        if (ZSTD_isError(r))
            return dv2_error_set(err, DV2_EIO, "%s: zstd: %s", w->name, ZSTD_getErrorName(r));
        if (out.pos && fwrite(w->zout, 1, out.pos, w->f) != out.pos)
            return dv2_error_errno(err, DV2_EIO, errno, "%s: write failed", w->name);
    } while (r != 0);
    return DV2_OK;
}

static void writer_free(dv2_matrix_writer *w) {
    if (!w) return;
    if (w->append) dv2_lock_release(&w->lock);
    ZSTD_freeCCtx(w->cctx);
    free(w->zout);
    free(w->blk);
    free(w->half);
    for (int k = 0; k < 3; k++) free(w->npy_names[k]);
    free(w->name);
    free(w);
}

/* Append mode: opens (or creates) path in place, validates it against info,
 * cuts a partial last row, and positions w->f at the end. */
static int open_append(dv2_matrix_writer *w, const char *path, dv2_error *err) {
    int lrc = dv2_lock_acquire(&w->lock, path, "the matrix", err); /* before anything is read */
    if (lrc) return lrc;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return dv2_error_errno(err, DV2_EIO, errno, "%s: cannot open", path);
    struct stat st;
    uint8_t *h = malloc(DV2_MATRIX_HEADER_SIZE);
    int rc = DV2_OK;
    if (!h) {
        rc = dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", path);
    } else if (fstat(fd, &st) != 0) {
        rc = dv2_error_errno(err, DV2_EIO, errno, "%s: stat failed", path);
    } else if (!S_ISREG(st.st_mode)) {
        rc = dv2_error_set(err, DV2_EINVAL, "%s: appending needs a regular file", path);
    } else {
        dv2_matrix_info old;
        long got = st.st_size == 0 ? 0 : dv2_read_full(fd, h, DV2_MATRIX_HEADER_SIZE);
        if (got < 0) {
            rc = dv2_error_errno(err, DV2_EIO, errno, "%s: read failed", path);
        } else if (got >= 4 && h[0] == 0x28 && h[1] == 0xb5 && h[2] == 0x2f && h[3] == 0xfd) {
            rc = dv2_error_set(err, DV2_EINVAL, "%s: cannot append to a compressed matrix", path);
        } else if (got < DV2_MATRIX_HEADER_SIZE) {
            /* Empty, or the first bytes of a header: a writer killed while
             * creating the file.  Nothing was kept, so start over. */
            if (memcmp(h, DV2_MATRIX_MAGIC, got < 8 ? (size_t)got : 8) != 0)
                rc = dv2_error_set(err, DV2_ECORRUPT, "%s: not a dv2 embedding matrix (bad magic)",
                                   path);
            else if ((rc = dv2_matrix_header_encode(h, &w->info, err)) != 0)
                dv2_error_prefix(err, "%s", path);
            else if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) < 0 ||
                     dv2_write_all(fd, h, DV2_MATRIX_HEADER_SIZE) != 0)
                rc = dv2_error_errno(err, DV2_EIO, errno, "%s: write failed", path);
            else
                w->restarted = got;
        } else if ((rc = dv2_matrix_header_decode(&old, h, path, err)) == 0) {
            if (old.dtype != w->info.dtype || old.dim != w->info.dim)
                rc = dv2_error_set(err, DV2_EINVAL,
                                   "%s: existing matrix is %s x %u, cannot append %s x %u rows",
                                   path, old.dtype == DV2_MATRIX_F32 ? "f32" : "f16", old.dim,
                                   w->info.dtype == DV2_MATRIX_F32 ? "f32" : "f16", w->info.dim);
            else if (!old.params[0] && w->info.params[0])
                rc = dv2_error_set(err, DV2_EINVAL,
                                   "%s: the rows there do not record what made them (matrix "
                                   "version %u), so new rows cannot be checked against them; "
                                   "write a new matrix",
                                   path, old.version);
            else if (old.params[0] || w->info.params[0])
                rc = dv2_matrix_check_same_params(&old, &w->info, path, err);
            else if (strcmp(old.model, w->info.model) || strcmp(old.features, w->info.features))
                rc = dv2_error_set(err, DV2_EINVAL,
                                   "%s: existing matrix holds model '%s' features '%s', not "
                                   "model '%s' features '%s'",
                                   path, old.model, old.features, w->info.model,
                                   w->info.features);
            if (!rc) {
                uint64_t body = (uint64_t)st.st_size - DV2_MATRIX_HEADER_SIZE;
                w->rows = body / w->row_bytes;
                off_t keep = (off_t)(DV2_MATRIX_HEADER_SIZE + w->rows * w->row_bytes);
                uint8_t unknown[8];
                put_u64le(unknown, DV2_MATRIX_ROWS_UNKNOWN);
                if (keep != st.st_size && ftruncate(fd, keep) != 0)
                    rc = dv2_error_errno(err, DV2_EIO, errno, "%s: truncate failed", path);
                else if (pwrite(fd, unknown, 8, ROWS_OFFSET) != 8)
                    rc = dv2_error_errno(err, DV2_EIO, errno, "%s: write failed", path);
                else if (lseek(fd, keep, SEEK_SET) < 0)
                    rc = dv2_error_errno(err, DV2_EIO, errno, "%s: seek failed", path);
            }
        }
    }
    free(h);
    if (!rc && !(w->f = fdopen(fd, "r+")))
        rc = dv2_error_errno(err, DV2_EIO, errno, "%s: fdopen failed", path);
    if (!rc && fseeko(w->f, 0, SEEK_END) != 0)
        rc = dv2_error_errno(err, DV2_EIO, errno, "%s: seek failed", path);
    if (rc && !w->f) close(fd);
    return rc;
}

/* Copies the rows kept by append mode into the fresh .npy files. */
static int npy_copy_existing(dv2_matrix_writer *w, const char *path, dv2_error *err) {
    if (w->rows == 0) return DV2_OK;
    if (fflush(w->f) != 0) return dv2_error_errno(err, DV2_EIO, errno, "%s: write failed", path);
    dv2_matrix_reader *r;
    int rc = dv2_matrix_reader_open(&r, path, err);
    if (rc) return rc;
    size_t cap = 4096, dim = w->info.dim;
    uint64_t *ids = malloc(cap * 8);
    int32_t *lab = malloc(cap * 4);
    float *v = dv2_malloc_array(cap, dim * 4);
    uint64_t left = w->rows;
    if (!ids || !lab || !v) rc = dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", path);
    while (!rc && left) {
        int64_t n = dv2_matrix_reader_read(r, ids, lab, v, left < cap ? (size_t)left : cap, err);
        if (n < 0) rc = (int)n;
        else if (n == 0) rc = dv2_error_set(err, DV2_ECORRUPT, "%s: rows vanished while reading", path);
        else {
            rc = npy_write_rows(w, ids, lab, v, (size_t)n, err);
            left -= (uint64_t)n;
        }
    }
    free(ids);
    free(lab);
    free(v);
    dv2_matrix_reader_close(r);
    return rc;
}

int dv2_matrix_writer_open(dv2_matrix_writer **wp, const char *path, const dv2_matrix_info *info,
                           const dv2_matrix_write_opts *opts, dv2_error *err) {
    dv2_matrix_write_opts o = {0};
    if (opts) o = *opts;
    *wp = NULL;
    int is_stdout = strcmp(path, "-") == 0;
    if (!is_stdout) dv2_afile_remove_stale(path);
    if (o.append && (is_stdout || o.zstd))
        return dv2_error_set(err, DV2_EINVAL, "%s: append mode needs a named uncompressed file",
                             is_stdout ? "stdout" : path);
    if (o.npy_path && strcmp(o.npy_path, "-") == 0)
        return dv2_error_set(err, DV2_EINVAL, ".npy output needs a file name, not stdout");
    dv2_matrix_writer *w = calloc(1, sizeof *w);
    if (!w) return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", path);
    uint8_t *h = malloc(DV2_MATRIX_HEADER_SIZE);
    w->name = strdup(is_stdout ? "stdout" : path);
    w->info = *info;
    w->info.rows = DV2_MATRIX_ROWS_UNKNOWN;
    w->append = o.append;
    w->named = !is_stdout;
    int rc = DV2_OK;
    if (!h || !w->name) {
        rc = dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if ((rc = dv2_matrix_header_encode(h, &w->info, err)) != 0) {
        dv2_error_prefix(err, "%s", w->name);
        goto fail;
    }
    w->row_bytes = dv2_matrix_row_bytes(info->dtype, info->dim);
    w->blk_rows = BLOCK_BYTES / w->row_bytes ? BLOCK_BYTES / w->row_bytes : 1;
    w->blk = dv2_malloc_array(w->blk_rows, w->row_bytes);
    if (info->dtype == DV2_MATRIX_F16) w->half = dv2_malloc_array(info->dim, 2);
    if (!w->blk || (info->dtype == DV2_MATRIX_F16 && !w->half)) {
        rc = dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (o.zstd) {
        w->cctx = ZSTD_createCCtx();
        w->zout_cap = ZSTD_CStreamOutSize();
        w->zout = malloc(w->zout_cap);
        if (!w->cctx || !w->zout) {
            rc = dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, o.zstd_level ? o.zstd_level : 3);
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
    }
    if (o.append) {
        if ((rc = open_append(w, path, err)) != 0) goto fail;
    } else {
        if ((rc = dv2_afile_open(&w->af, path, o.force, err)) != 0) goto fail;
        w->f = w->af.f;
        if ((rc = out_bytes(w, h, DV2_MATRIX_HEADER_SIZE, err)) != 0) goto fail;
    }
    if (o.npy_path) {
        const char *suffix[3] = {NULL, ".ids.npy", ".labels.npy"};
        for (int k = 0; k < 3 && !rc; k++) {
            w->npy_names[k] = k ? dv2_matrix_npy_name(o.npy_path, suffix[k]) : strdup(o.npy_path);
            if (!w->npy_names[k]) rc = dv2_error_set(err, DV2_ENOMEM, "out of memory");
            else rc = dv2_afile_open(&w->npy_af[k], w->npy_names[k], o.force, err);
            if (!rc) w->npy = k + 1;
        }
        if (!rc) rc = npy_write_headers(w, 0, err);
        if (!rc && o.append) rc = npy_copy_existing(w, path, err);
        if (rc) goto fail;
    }
    free(h);
    *wp = w;
    return DV2_OK;
fail:
    free(h);
    dv2_matrix_writer_abort(w);
    return rc;
}

int dv2_matrix_writer_write(dv2_matrix_writer *w, const uint64_t *ids, const int32_t *labels,
                            const float *vecs, size_t n, dv2_error *err) {
    size_t dim = w->info.dim, vbytes = w->row_bytes - 12;
    /* Refuse a NaN or infinity before anything of the call is written: such
     * a row poisons every distance computed from it, stages later.  f16
     * rounds |x| >= 65520 to infinity. */
    for (size_t j = 0; j < n; j++)
        for (size_t k = 0; k < dim; k++) {
            float x = vecs[j * dim + k];
            if (w->half ? !(fabsf(x) < 65520.0f) : !isfinite(x))
                return dv2_error_set(err, DV2_ECORRUPT,
                                     "%s: row of id %016llx: value %g at index %zu %s", w->name,
                                     (unsigned long long)ids[j], (double)x, k,
                                     isfinite(x) ? "overflows float16" : "is not finite");
        }
    for (size_t done = 0; done < n;) {
        size_t m = n - done < w->blk_rows ? n - done : w->blk_rows;
        for (size_t i = 0; i < m; i++) {
            uint8_t *row = w->blk + i * w->row_bytes;
            size_t j = done + i;
            int32_t lab = labels ? labels[j] : -1;
            put_u64le(row, ids[j]);
            memcpy(row + 8, &lab, 4); /* host is little-endian (x86-64, aarch64) */
            if (w->half) {
                dv2_matrix_f32_to_f16(w->half, vecs + j * dim, dim);
                memcpy(row + 12, w->half, vbytes);
            } else {
                memcpy(row + 12, vecs + j * dim, vbytes);
            }
        }
        int rc = out_bytes(w, w->blk, m * w->row_bytes, err);
        if (rc) return rc;
        done += m;
    }
    if (w->npy) {
        int rc = npy_write_rows(w, ids, labels, vecs, n, err);
        if (rc) return rc;
    }
    w->rows += n;
    return DV2_OK;
}

uint64_t dv2_matrix_writer_rows(const dv2_matrix_writer *w) { return w->rows; }

long dv2_matrix_writer_restarted(const dv2_matrix_writer *w) { return w->restarted; }

int dv2_matrix_writer_flush(dv2_matrix_writer *w, dv2_error *err) {
    if (w->cctx) {
        size_t r;
        do {
            ZSTD_inBuffer in = {NULL, 0, 0};
            ZSTD_outBuffer out = {w->zout, w->zout_cap, 0};
            r = ZSTD_compressStream2(w->cctx, &out, &in, ZSTD_e_flush);
            if (ZSTD_isError(r))
                return dv2_error_set(err, DV2_EIO, "%s: zstd: %s", w->name, ZSTD_getErrorName(r));
            if (out.pos && fwrite(w->zout, 1, out.pos, w->f) != out.pos)
                return dv2_error_errno(err, DV2_EIO, errno, "%s: write failed", w->name);
        } while (r != 0);
    }
    if (fflush(w->f) != 0) return dv2_error_errno(err, DV2_EIO, errno, "%s: write failed", w->name);
    if (w->named && fsync(fileno(w->f)) != 0)
        return dv2_error_errno(err, DV2_EIO, errno, "%s: fsync failed", w->name);
    return DV2_OK;
}

int dv2_matrix_writer_close(dv2_matrix_writer *w, dv2_error *err) {
    int rc = DV2_OK;
    uint8_t cnt[8];
    put_u64le(cnt, w->rows);
    if (w->cctx) rc = zstd_finish(w, err);
    if (!rc && w->named && !w->cctx) { /* record the row count (a hint for readers) */
        if (fflush(w->f) != 0 || pwrite(fileno(w->f), cnt, 8, ROWS_OFFSET) != 8)
            rc = dv2_error_errno(err, DV2_EIO, errno, "%s: write failed", w->name);
    }
    if (!rc && w->append) {
        if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0)
            rc = dv2_error_errno(err, DV2_EIO, errno, "%s: write failed", w->name);
        if (fclose(w->f) != 0 && !rc)
            rc = dv2_error_errno(err, DV2_EIO, errno, "%s: close failed", w->name);
        w->f = NULL;
    } else if (!rc) {
        rc = dv2_afile_commit(&w->af, err);
    }
    if (!rc && w->npy) {
        rc = npy_write_headers(w, 1, err);
        for (int k = 0; k < 3 && !rc; k++) rc = dv2_afile_commit(&w->npy_af[k], err);
    }
    if (rc) {
        dv2_matrix_writer_abort(w);
        return rc;
    }
    writer_free(w);
    return DV2_OK;
}

void dv2_matrix_writer_abort(dv2_matrix_writer *w) {
    if (!w) return;
    if (w->append) {
        /* The rows written so far stay: record their count (a hint), as close does. */
        uint8_t cnt[8];
        put_u64le(cnt, w->rows);
        int recorded = w->f && fflush(w->f) == 0 && pwrite(fileno(w->f), cnt, 8, ROWS_OFFSET) == 8;
        (void)recorded; /* a hint only: readers never rely on it */
        if (w->f) fclose(w->f);
    } else if (w->af.f || w->af.tmp) {
        dv2_afile_abort(&w->af);
    }
    for (int k = 0; k < w->npy; k++) dv2_afile_abort(&w->npy_af[k]);
    writer_free(w);
}
