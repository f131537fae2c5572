/* embsrc.c — embedding matrices as search sources: a read-only mapping of
 * uncompressed files (f32 and f16), whole loading otherwise (see embsrc.h). */
#include "search/embsrc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Names the file, row and id of the first non-finite vector in out (the
 * rows start..start+count-1), after dv2_knn_normalize refused the block. */
static int row_error(const dv2_embsrc *e, const float *out, int64_t start, int64_t count, dv2_error *err) {
    int rc = dv2_matrix_check_finite(out, (size_t)e->dim, (size_t)e->dim, count, e->ids + start, start, e->name, err);
    return rc ? rc : dv2_error_prefix(err, "%s", e->name);
}

static int mapped_read(const dv2_vecsrc *src, float *out, int64_t start, int64_t count, dv2_error *err) {
    const dv2_embsrc *e = src->ctx;
    int dim = e->dim;
    const uint8_t *base = e->rows_ + (size_t)start * e->row_bytes_ + 12;
#pragma omp parallel for schedule(static) if (count * (int64_t)dim > 65536)
    for (int64_t i = 0; i < count; i++) {
        const uint8_t *r = base + (size_t)i * e->row_bytes_;
        if (e->info.dtype == DV2_MATRIX_F16)
            dv2_matrix_f16_to_f32(out + i * dim, (const uint16_t *)(const void *)r, (size_t)dim);
        else
            memcpy(out + i * dim, r, sizeof(float) * (size_t)dim);
    }
    int rc = dv2_knn_normalize(out, count, dim, start, err);
    return rc < 0 ? row_error(e, out, start, count, err) : 0;
}

static int loaded_read(const dv2_vecsrc *src, float *out, int64_t start, int64_t count, dv2_error *err) {
    const dv2_embsrc *e = src->ctx;
    int dim = e->dim;
    for (int64_t i = 0; i < count; i++)
        memcpy(out + i * dim, e->m_.vecs + (size_t)(start + i) * e->m_.ld, sizeof(float) * (size_t)dim);
    int rc = dv2_knn_normalize(out, count, dim, start, err);
    return rc < 0 ? row_error(e, out, start, count, err) : 0;
}

/* Returns 1 when mapped, 0 when the file must be loaded instead. */
static int try_map(dv2_embsrc *e, const char *path, dv2_error *err) {
    if (strcmp(path, "-") == 0) return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dv2_error_errno(err, DV2_EIO, errno, "%s: cannot open", path);
    struct stat st;
    uint8_t h[DV2_MATRIX_HEADER_SIZE];
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < DV2_MATRIX_HEADER_SIZE) goto out;
    if (pread(fd, h, sizeof h, 0) != (ssize_t)sizeof h) goto out;
    if (h[0] == 0x28 && h[1] == 0xb5 && h[2] == 0x2f && h[3] == 0xfd) goto out; /* zstd: load */
    if ((rc = dv2_matrix_header_decode(&e->info, h, path, err)) < 0) goto out;
    size_t rb = dv2_matrix_row_bytes(e->info.dtype, e->info.dim);
    uint64_t body = (uint64_t)st.st_size - DV2_MATRIX_HEADER_SIZE, rows = body / rb;
    if (body % rb) {
        rc = dv2_error_set(err, DV2_ECORRUPT, "%s: truncated row %llu at offset %llu", path,
                           (unsigned long long)rows, (unsigned long long)(DV2_MATRIX_HEADER_SIZE + rows * rb));
        goto out;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        rc = dv2_error_errno(err, DV2_EIO, errno, "%s: mmap failed", path);
        goto out;
    }
    e->own_ids_ = dv2_malloc_array(rows ? rows : 1, sizeof(uint64_t));
    e->own_labels_ = dv2_malloc_array(rows ? rows : 1, sizeof(int32_t));
    if (!e->own_ids_ || !e->own_labels_) {
        munmap(map, (size_t)st.st_size);
        rc = dv2_error_set(err, DV2_ENOMEM, "%s: out of memory for the ids of %llu rows", path,
                           (unsigned long long)rows);
        goto out;
    }
    e->map_ = map;
    e->map_len_ = (size_t)st.st_size;
    e->rows_ = (const uint8_t *)map + DV2_MATRIX_HEADER_SIZE;
    e->row_bytes_ = rb;
    for (uint64_t i = 0; i < rows; i++) {
        memcpy(&e->own_ids_[i], e->rows_ + i * rb, 8);
        memcpy(&e->own_labels_[i], e->rows_ + i * rb + 8, 4);
    }
    e->n = (int64_t)rows;
    e->dim = (int)e->info.dim;
    e->mapped = 1;
    madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
    rc = 1;
out:
    close(fd);
    return rc;
}

int dv2_embsrc_open(dv2_embsrc *e, const char *path, dv2_error *err) {
    memset(e, 0, sizeof *e);
    e->name = strcmp(path, "-") == 0 ? "stdin" : path;
    int rc = try_map(e, path, err);
    if (rc < 0) {
        dv2_embsrc_close(e);
        return rc;
    }
    if (rc == 1) {
        e->ids = e->own_ids_;
        e->labels = e->own_labels_;
        e->src.read = mapped_read;
    } else {
        rc = dv2_matrix_load(&e->m_, path, 0, err);
        if (rc < 0) return rc;
        e->info = e->m_.info;
        e->n = (int64_t)e->m_.rows;
        e->dim = (int)e->m_.dim;
        e->ids = e->m_.ids;
        e->labels = e->m_.labels;
        e->src.read = loaded_read;
    }
    e->src.n = e->n;
    e->src.dim = e->dim;
    e->src.ctx = e;
    return 0;
}

void dv2_embsrc_close(dv2_embsrc *e) {
    if (e->map_) munmap(e->map_, e->map_len_);
    free(e->own_ids_);
    free(e->own_labels_);
    dv2_matrix_free(&e->m_);
    memset(e, 0, sizeof *e);
}
