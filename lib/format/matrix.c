/* matrix.c — the embedding matrix format: header encode/decode, f16
 * conversion, the writer (atomic, zstd, append for resume) and the .npy
 * export.  Reading (streaming reader and whole-matrix loader) is in
 * matrix_read.c.  Layout and rules: matrix.h and man/dv2-matrix.5. */
#include "format/matrix.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "core/afile.h"

/* ---- little-endian helpers ------------------------------------------------- */

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const uint8_t *p) {
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

/* Header field offsets (matrix.h). */
enum { H_VERSION = 8, H_HSIZE = 12, H_DTYPE = 16, H_DIM = 20, H_ROWBYTES = 24, H_FLAGS = 28,
       H_ROWS = 32, H_FIXED_END = 40, H_MODEL = 256, H_FEATURES = 512, H_NOTE = 768,
       H_PARAMS = 1792, H_TEXT_END = 2816 };

void dv2_matrix_info_init(dv2_matrix_info *info, int dtype, uint32_t dim) {
    memset(info, 0, sizeof *info);
    info->dtype = dtype;
    info->dim = dim;
    info->rows = DV2_MATRIX_ROWS_UNKNOWN;
    info->version = DV2_MATRIX_VERSION;
}

int dv2_matrix_params_add(dv2_matrix_info *info, const char *key, const char *fmt, ...) {
    size_t used = strlen(info->params), cap = sizeof info->params, kn = strlen(key);
    for (size_t i = 0; i < kn; i++)
        if (!((key[i] >= 'a' && key[i] <= 'z') || (key[i] >= '0' && key[i] <= '9') || key[i] == '_'))
            return DV2_EINVAL;
    char val[DV2_MATRIX_PARAMS_MAX];
    va_list ap;
    va_start(ap, fmt);
    int vn = vsnprintf(val, sizeof val, fmt, ap);
    va_end(ap);
    if (!kn || vn < 0 || (size_t)vn >= sizeof val || strchr(val, '\n')) return DV2_EINVAL;
    if (used + kn + 1 + (size_t)vn + 1 >= cap) return DV2_EINVAL; /* NUL must fit too */
    snprintf(info->params + used, cap - used, "%s=%s\n", key, val);
    return DV2_OK;
}

/* The line of key in params: its value and length, or NULL. */
static const char *params_find(const char *params, const char *key, size_t *len) {
    size_t kn = strlen(key);
    for (const char *p = params; *p;) {
        const char *nl = strchr(p, '\n');
        size_t ln = nl ? (size_t)(nl - p) : strlen(p);
        if (ln > kn && p[kn] == '=' && strncmp(p, key, kn) == 0) {
            *len = ln - kn - 1;
            return p + kn + 1;
        }
        p += ln + (nl != NULL);
    }
    return NULL;
}

int dv2_matrix_params_get(const dv2_matrix_info *info, const char *key, char *out, size_t n) {
    size_t len;
    const char *v = params_find(info->params, key, &len);
    if (!v) return 0;
    if (n) {
        size_t c = len < n - 1 ? len : n - 1;
        memcpy(out, v, c);
        out[c] = 0;
    }
    return 1;
}

/* 1 with key set to the first key of a (in order) whose value in b differs or
 * is missing; 0 when there is none. */
static int params_first_diff(const char *a, const char *b, char *key, size_t keycap) {
    for (const char *p = a; *p;) {
        const char *nl = strchr(p, '\n'), *eq = strchr(p, '=');
        size_t ln = nl ? (size_t)(nl - p) : strlen(p);
        if (eq && eq < p + ln) {
            size_t kn = (size_t)(eq - p), la, lb;
            if (kn < keycap) {
                memcpy(key, p, kn);
                key[kn] = 0;
                const char *va = params_find(a, key, &la), *vb = params_find(b, key, &lb);
                if (!vb || la != lb || memcmp(va, vb, la) != 0) return 1;
            }
        }
        p += ln + (nl != NULL);
    }
    return 0;
}

int dv2_matrix_check_same_params(const dv2_matrix_info *have, const dv2_matrix_info *want,
                                 const char *name, dv2_error *err) {
    char key[DV2_MATRIX_PARAMS_MAX];
    if (!params_first_diff(want->params, have->params, key, sizeof key) &&
        !params_first_diff(have->params, want->params, key, sizeof key))
        return DV2_OK;
    char va[DV2_MATRIX_PARAMS_MAX] = "(none)", vb[DV2_MATRIX_PARAMS_MAX] = "(none)";
    dv2_matrix_params_get(have, key, va, sizeof va);
    dv2_matrix_params_get(want, key, vb, sizeof vb);
    return dv2_error_set(err, DV2_EINVAL,
                         "%s: the rows there were made with %s=%s, these would be made with %s=%s",
                         name, key, va, key, vb);
}

size_t dv2_matrix_row_bytes(int dtype, uint32_t dim) {
    if (dtype == DV2_MATRIX_F32) return 12 + (size_t)dim * 4;
    if (dtype == DV2_MATRIX_F16) return 12 + (size_t)dim * 2;
    return 0;
}

static int text_fits(const char *s, size_t cap) { return memchr(s, 0, cap) != NULL; }

int dv2_matrix_header_encode(uint8_t *out, const dv2_matrix_info *info, dv2_error *err) {
    if (info->dtype != DV2_MATRIX_F32 && info->dtype != DV2_MATRIX_F16)
        return dv2_error_set(err, DV2_EINVAL, "matrix: invalid dtype %d", info->dtype);
    if (info->dim < 1 || info->dim > DV2_MATRIX_MAX_DIM)
        return dv2_error_set(err, DV2_EINVAL, "matrix: dimension %u out of range 1..%u",
                             info->dim, DV2_MATRIX_MAX_DIM);
    if (!text_fits(info->model, sizeof info->model) ||
        !text_fits(info->features, sizeof info->features) ||
        !text_fits(info->note, sizeof info->note) || !text_fits(info->params, sizeof info->params))
        return dv2_error_set(err, DV2_EINVAL, "matrix: header text not terminated");
    memset(out, 0, DV2_MATRIX_HEADER_SIZE);
    memcpy(out, DV2_MATRIX_MAGIC, 8);
    put_u32(out + H_VERSION, DV2_MATRIX_VERSION);
    put_u32(out + H_HSIZE, DV2_MATRIX_HEADER_SIZE);
    put_u32(out + H_DTYPE, (uint32_t)info->dtype);
    put_u32(out + H_DIM, info->dim);
    put_u32(out + H_ROWBYTES, (uint32_t)dv2_matrix_row_bytes(info->dtype, info->dim));
    put_u32(out + H_FLAGS, 0);
    put_u64(out + H_ROWS, info->rows);
    memcpy(out + H_MODEL, info->model, strlen(info->model));
    memcpy(out + H_FEATURES, info->features, strlen(info->features));
    memcpy(out + H_NOTE, info->note, strlen(info->note));
    memcpy(out + H_PARAMS, info->params, strlen(info->params));
    return DV2_OK;
}

static int all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

/* A text field: NUL-terminated inside the field, zero after the NUL. */
static int decode_text(char *dst, const uint8_t *src, size_t cap) {
    const uint8_t *nul = memchr(src, 0, cap);
    if (!nul) return -1;
    size_t len = (size_t)(nul - src);
    if (!all_zero(nul, cap - len)) return -1;
    memcpy(dst, src, len + 1);
    return 0;
}

int dv2_matrix_header_decode(dv2_matrix_info *info, const uint8_t *in, const char *name,
                             dv2_error *err) {
    if (memcmp(in, DV2_MATRIX_MAGIC, 8) != 0)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: not a dv2 embedding matrix (bad magic)", name);
    uint32_t version = get_u32(in + H_VERSION);
    if (version < DV2_MATRIX_VERSION_MIN || version > DV2_MATRIX_VERSION)
        return dv2_error_set(err, DV2_ECORRUPT,
                             "%s: unsupported matrix version %u (this build reads versions %d to %d)",
                             name, version, DV2_MATRIX_VERSION_MIN, DV2_MATRIX_VERSION);
    uint32_t hsize = get_u32(in + H_HSIZE);
    if (hsize != DV2_MATRIX_HEADER_SIZE)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: header size %u, expected %d", name, hsize,
                             DV2_MATRIX_HEADER_SIZE);
    uint32_t dtype = get_u32(in + H_DTYPE);
    if (dtype != DV2_MATRIX_F32 && dtype != DV2_MATRIX_F16)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: unknown dtype %u (1 = f32, 2 = f16)", name,
                             dtype);
    uint32_t dim = get_u32(in + H_DIM);
    if (dim < 1 || dim > DV2_MATRIX_MAX_DIM)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: dimension %u out of range 1..%u", name, dim,
                             DV2_MATRIX_MAX_DIM);
    uint32_t row_bytes = get_u32(in + H_ROWBYTES);
    if (row_bytes != dv2_matrix_row_bytes((int)dtype, dim))
        return dv2_error_set(err, DV2_ECORRUPT,
                             "%s: row size %u does not match dimension %u and dtype %s", name,
                             row_bytes, dim, dtype == DV2_MATRIX_F32 ? "f32" : "f16");
    uint32_t flags = get_u32(in + H_FLAGS);
    if (flags != 0)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: unknown header flags 0x%x", name, flags);
    /* Version 1 has no params: its bytes there are reserved. */
    size_t text_end = version >= 2 ? H_TEXT_END : H_PARAMS;
    if (!all_zero(in + H_FIXED_END, H_MODEL - H_FIXED_END) ||
        !all_zero(in + text_end, DV2_MATRIX_HEADER_SIZE - text_end))
        return dv2_error_set(err, DV2_ECORRUPT, "%s: reserved header bytes are not zero", name);
    dv2_matrix_info tmp;
    dv2_matrix_info_init(&tmp, (int)dtype, dim);
    tmp.rows = get_u64(in + H_ROWS);
    tmp.version = version;
    if (decode_text(tmp.model, in + H_MODEL, DV2_MATRIX_MODEL_MAX) ||
        decode_text(tmp.features, in + H_FEATURES, DV2_MATRIX_FEATURES_MAX) ||
        decode_text(tmp.note, in + H_NOTE, DV2_MATRIX_NOTE_MAX) ||
        (version >= 2 && decode_text(tmp.params, in + H_PARAMS, DV2_MATRIX_PARAMS_MAX)))
        return dv2_error_set(err, DV2_ECORRUPT, "%s: header text field not NUL-terminated", name);
    *info = tmp;
    return DV2_OK;
}

int dv2_matrix_check_same_dim(const dv2_matrix_info *a, const char *name_a,
                              const dv2_matrix_info *b, const char *name_b, dv2_error *err) {
    if (a->dim != b->dim)
        return dv2_error_set(err, DV2_EINVAL, "%s: dimension %u does not match %s (%u)", name_b,
                             b->dim, name_a, a->dim);
    return DV2_OK;
}

int dv2_matrix_check_finite(const float *x, size_t ld, size_t dim, int64_t n, const uint64_t *ids,
                            int64_t first_row, const char *name, dv2_error *err) {
    for (int64_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++)
            if (!isfinite(x[(size_t)i * ld + j]))
                return dv2_error_set(err, DV2_ECORRUPT, "%s: row %lld (id %" PRIu64 "): vector contains NaN or infinity",
                                     name, (long long)(first_row + i), ids[i]);
    return DV2_OK;
}

/* ---- f16 ---------------------------------------------------------------------- */

/* Round to nearest even through integer arithmetic on the float's bits; tiny
 * values go through one float addition that lets the FPU do the rounding of
 * the subnormal mantissa. */
static uint16_t f32_to_f16_one(float fv) {
    const uint32_t f32_inf = 255u << 23;
    const uint32_t f16_overflow = (127u + 16u) << 23; /* 65536.0f */
    const uint32_t denorm_magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    uint32_t f;
    memcpy(&f, &fv, 4);
    uint32_t sign = f & 0x80000000u;
    f ^= sign;
    uint16_t o;
    if (f >= f16_overflow) {
        o = f > f32_inf ? 0x7e00 : 0x7c00; /* NaN stays NaN, the rest is inf */
    } else if (f < (113u << 23)) {         /* below 2^-14: subnormal half or zero */
        float a, m;
        memcpy(&a, &f, 4);
        memcpy(&m, &denorm_magic, 4);
        a += m;
        memcpy(&f, &a, 4);
        o = (uint16_t)(f - denorm_magic);
    } else {
        uint32_t odd = (f >> 13) & 1;
        f += ((uint32_t)(15 - 127) << 23) + 0xfff + odd;
        o = (uint16_t)(f >> 13);
    }
    return (uint16_t)(o | (sign >> 16));
}

static float f16_to_f32_one(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        float v = (float)mant * (1.0f / 16777216.0f); /* mant * 2^-24, exact */
        memcpy(&bits, &v, 4);
        bits |= sign;
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

void dv2_matrix_f32_to_f16(uint16_t *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = f32_to_f16_one(in[i]);
}
void dv2_matrix_f16_to_f32(float *out, const uint16_t *in, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = f16_to_f32_one(in[i]);
}

/* ---- .npy ------------------------------------------------------------------------ */

enum { NPY_HEADER = DV2_MATRIX_NPY_HEADER };

void dv2_matrix_npy_header(uint8_t *out, const char *descr, uint64_t rows, size_t cols) {
    char dict[NPY_HEADER];
    int n;
    if (cols)
        n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%llu, %zu), }",
                     descr, (unsigned long long)rows, cols);
    else
        n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%llu,), }",
                     descr, (unsigned long long)rows);
    memset(out, ' ', NPY_HEADER);
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (uint8_t)(NPY_HEADER - 10);
    out[9] = 0;
    memcpy(out + 10, dict, (size_t)n); /* n < 110 for any rows < 2^64, cols <= 2^20 */
    out[NPY_HEADER - 1] = '\n';
}

char *dv2_matrix_npy_name(const char *npy_path, const char *suffix) {
    size_t n = strlen(npy_path), s = strlen(suffix);
    if (n >= 4 && strcmp(npy_path + n - 4, ".npy") == 0) n -= 4;
    char *out = malloc(n + s + 1);
    if (!out) return NULL;
    memcpy(out, npy_path, n);
    memcpy(out + n, suffix, s + 1);
    return out;
}

int dv2_matrix_npy_write(const char *path, const char *descr, const void *data, size_t elem_size,
                         size_t rows, size_t cols, size_t ld, int force, dv2_error *err) {
    dv2_afile a;
    int rc = dv2_afile_open(&a, path, force, err);
    if (rc) return rc;
    uint8_t hdr[NPY_HEADER];
    dv2_matrix_npy_header(hdr, descr, rows, cols);
    int bad = fwrite(hdr, 1, NPY_HEADER, a.f) != NPY_HEADER;
    size_t w = cols ? cols : 1, stride = cols ? ld : 1;
    const uint8_t *p = data;
    if (!bad && (w == stride || rows <= 1)) {
        bad = rows && fwrite(p, elem_size * w, rows, a.f) != rows;
    } else {
        for (size_t i = 0; i < rows && !bad; i++)
            bad = fwrite(p + i * stride * elem_size, elem_size, w, a.f) != w;
    }
    if (bad) {
        int e = errno;
        dv2_afile_abort(&a);
        return dv2_error_errno(err, DV2_EIO, e, "%s: write failed", path);
    }
    return dv2_afile_commit(&a, err);
}

int dv2_matrix_write_npy(const dv2_matrix *m, const char *npy_path, int force, dv2_error *err) {
    char *ids_path = dv2_matrix_npy_name(npy_path, ".ids.npy");
    char *lab_path = dv2_matrix_npy_name(npy_path, ".labels.npy");
    int rc = DV2_ENOMEM;
    if (!ids_path || !lab_path) {
        dv2_error_set(err, rc, "%s: out of memory", npy_path);
    } else if (strcmp(npy_path, "-") == 0) {
        rc = dv2_error_set(err, DV2_EINVAL, ".npy output needs a file name, not stdout");
    } else {
        rc = dv2_matrix_npy_write(npy_path, "<f4", m->vecs, 4, m->rows, m->dim, m->ld, force, err);
        if (!rc) rc = dv2_matrix_npy_write(ids_path, "<u8", m->ids, 8, m->rows, 0, 1, force, err);
        if (!rc) rc = dv2_matrix_npy_write(lab_path, "<i4", m->labels, 4, m->rows, 0, 1, force, err);
    }
    free(ids_path);
    free(lab_path);
    return rc;
}
