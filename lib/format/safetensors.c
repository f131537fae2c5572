/* safetensors.c — validated safetensors reader (mmap), atomic F32 writer,
 * dtype conversion to float32, and backbone-name canonicalization.
 * Architecture inference lives in safetensors_arch.c. */
#include "format/safetensors.h"
#include "core/afile.h"
#include "core/json.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct dv2_safetensors_file {
    char *path;
    void *map;
    size_t map_size;
    const unsigned char *data; /* start of the data section */
    uint64_t data_size;
    dv2_safetensors_tensor *t;
    size_t n;
    char **meta_k, **meta_v;
    size_t nmeta;
    char *names; /* all tensor names, NUL-separated */
};

static const struct { const char *name; size_t size; } dtypes[] = {
    [DV2_ST_F32] = {"F32", 4}, [DV2_ST_F16] = {"F16", 2}, [DV2_ST_BF16] = {"BF16", 2},
    [DV2_ST_F64] = {"F64", 8}, [DV2_ST_I64] = {"I64", 8}, [DV2_ST_I32] = {"I32", 4},
    [DV2_ST_I16] = {"I16", 2}, [DV2_ST_I8] = {"I8", 1}, [DV2_ST_U8] = {"U8", 1},
    [DV2_ST_BOOL] = {"BOOL", 1}, [DV2_ST_U16] = {"U16", 2}, [DV2_ST_U32] = {"U32", 4},
    [DV2_ST_U64] = {"U64", 8}, [DV2_ST_F8_E4M3] = {"F8_E4M3", 1}, [DV2_ST_F8_E5M2] = {"F8_E5M2", 1},
};
#define NDTYPES (int)(sizeof dtypes / sizeof dtypes[0])

size_t dv2_safetensors_dtype_size(int dtype) {
    return dtype >= 0 && dtype < NDTYPES ? dtypes[dtype].size : 0;
}

static uint64_t rd_u64le(const unsigned char *p) {
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--) v = (v << 8) | p[k];
    return v;
}

static void file_free(dv2_safetensors_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->map_size);
    for (size_t i = 0; i < f->nmeta; i++) { free(f->meta_k[i]); free(f->meta_v[i]); }
    free(f->meta_k);
    free(f->meta_v);
    free(f->t);
    free(f->names);
    free(f->path);
    free(f);
}

void dv2_safetensors_close(dv2_safetensors_file *f) { file_free(f); }

static int cmp_begin(const void *a, const void *b) {
    const dv2_safetensors_tensor *x = *(dv2_safetensors_tensor *const *)a;
    const dv2_safetensors_tensor *y = *(dv2_safetensors_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

#define BAD(...) dv2_error_set(err, DV2_ECORRUPT, __VA_ARGS__)

static int parse_entry(dv2_safetensors_file *f, dv2_safetensors_tensor *t, const char *key,
                       const dv2_json *v, dv2_error *err) {
    const char *P = f->path;
    if (dv2_json_type(v) != DV2_JSON_OBJECT) return BAD("%s: tensor '%s': entry is not an object", P, key);
    for (size_t i = 0; i < dv2_json_len(v); i++) {
        const char *k = dv2_json_key(v, i);
        if (strcmp(k, "dtype") && strcmp(k, "shape") && strcmp(k, "data_offsets"))
            return BAD("%s: tensor '%s': unknown field '%s'", P, key, k);
    }
    const dv2_json *dt = dv2_json_get(v, "dtype"), *sh = dv2_json_get(v, "shape"),
                   *off = dv2_json_get(v, "data_offsets");
    if (!dt || !sh || !off) return BAD("%s: tensor '%s': missing dtype, shape or data_offsets", P, key);
    const char *ds = dv2_json_str(dt);
    if (!ds) return BAD("%s: tensor '%s': dtype is not a string", P, key);
    t->dtype = -1;
    for (int d = 0; d < NDTYPES; d++)
        if (!strcmp(ds, dtypes[d].name)) t->dtype = d;
    if (t->dtype < 0) return BAD("%s: tensor '%s': unknown dtype '%.40s'", P, key, ds);
    if (dv2_json_type(sh) != DV2_JSON_ARRAY) return BAD("%s: tensor '%s': shape is not an array", P, key);
    if (dv2_json_len(sh) > DV2_SAFETENSORS_MAX_DIMS)
        return BAD("%s: tensor '%s': %zu dimensions (at most %d)", P, key, dv2_json_len(sh),
                   DV2_SAFETENSORS_MAX_DIMS);
    t->ndim = (int)dv2_json_len(sh);
    uint64_t numel = 1, esize = dtypes[t->dtype].size;
    for (int d = 0; d < t->ndim; d++) {
        int64_t s;
        if (!dv2_json_int(dv2_json_at(sh, (size_t)d), &s) || s < 0)
            return BAD("%s: tensor '%s': shape[%d] is not a non-negative integer", P, key, d);
        t->shape[d] = s;
        if (s != 0 && numel > (UINT64_MAX / 8) / (uint64_t)s)
            return BAD("%s: tensor '%s': shape product overflows", P, key);
        numel *= (uint64_t)s;
    }
    if (numel > SIZE_MAX / 8) return BAD("%s: tensor '%s': too many elements", P, key);
    t->numel = (size_t)numel;
    int64_t b, e;
    if (dv2_json_type(off) != DV2_JSON_ARRAY || dv2_json_len(off) != 2 ||
        !dv2_json_int(dv2_json_at(off, 0), &b) || !dv2_json_int(dv2_json_at(off, 1), &e) || b < 0 || e < b)
        return BAD("%s: tensor '%s': data_offsets is not [begin, end] with 0 <= begin <= end", P, key);
    t->begin = (uint64_t)b;
    t->end = (uint64_t)e;
    if (t->end > f->data_size)
        return BAD("%s: tensor '%s': data_offsets [%llu, %llu] past the end of the data (%llu bytes)", P,
                   key, (unsigned long long)t->begin, (unsigned long long)t->end,
                   (unsigned long long)f->data_size);
    if (t->end - t->begin != numel * esize)
        return BAD("%s: tensor '%s': %llu bytes in data_offsets, shape and dtype %s need %llu", P, key,
                   (unsigned long long)(t->end - t->begin), ds, (unsigned long long)(numel * esize));
    return 0;
}

static int parse_meta(dv2_safetensors_file *f, const dv2_json *m, dv2_error *err) {
    if (dv2_json_type(m) != DV2_JSON_OBJECT) return BAD("%s: __metadata__ is not an object", f->path);
    size_t n = dv2_json_len(m);
    f->meta_k = calloc(n + 1, sizeof(char *));
    f->meta_v = calloc(n + 1, sizeof(char *));
    if (!f->meta_k || !f->meta_v) return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", f->path);
    for (size_t i = 0; i < n; i++) {
        const dv2_json *v = dv2_json_at(m, i);
        if (dv2_json_type(v) != DV2_JSON_STRING)
            return BAD("%s: __metadata__ value of '%s' is not a string", f->path, dv2_json_key(m, i));
        f->meta_k[i] = strdup(dv2_json_key(m, i));
        f->meta_v[i] = strdup(dv2_json_str(v));
        f->nmeta = i + 1;
        if (!f->meta_k[i] || !f->meta_v[i]) return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", f->path);
    }
    return 0;
}

/* Validates buf[0..n) as a safetensors file and fills f (f->path set). */
static int parse(dv2_safetensors_file *f, const unsigned char *buf, size_t n, dv2_error *err) {
    const char *P = f->path;
    if (n < 8) return BAD("%s: %zu bytes, too short for a safetensors header", P, n);
    uint64_t hl = rd_u64le(buf);
    if (hl > DV2_SAFETENSORS_MAX_HEADER)
        return BAD("%s: header length %llu exceeds the limit of %u bytes", P, (unsigned long long)hl,
                   DV2_SAFETENSORS_MAX_HEADER);
    if (hl > n - 8)
        return BAD("%s: header length %llu past the end of the file (%zu bytes): truncated?", P,
                   (unsigned long long)hl, n);
    if (hl < 2 || buf[8] != '{') return BAD("%s: header does not start with '{'", P);
    f->data = buf + 8 + hl;
    f->data_size = n - 8 - hl;
    dv2_json_doc *doc;
    dv2_error jerr;
    int rc = dv2_json_parse(&doc, (const char *)buf + 8, (size_t)hl, 0, &jerr);
    if (rc < 0) return dv2_error_set(err, rc, "%s: header: %s", P, jerr.msg);
    const dv2_json *root = dv2_json_root(doc);
    if (dv2_json_type(root) != DV2_JSON_OBJECT) { dv2_json_free(doc); return BAD("%s: header is not a JSON object", P); }
    size_t nk = dv2_json_len(root), names_len = 0;
    for (size_t i = 0; i < nk; i++) names_len += strlen(dv2_json_key(root, i)) + 1;
    f->t = calloc(nk + 1, sizeof *f->t);
    f->names = malloc(names_len + 1);
    dv2_safetensors_tensor **order = calloc(nk + 1, sizeof *order);
    if (!f->t || !f->names || !order) { rc = dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", P); goto out; }
    size_t pos = 0;
    for (size_t i = 0; i < nk; i++) {
        const char *key = dv2_json_key(root, i);
        const dv2_json *v = dv2_json_at(root, i);
        if (!strcmp(key, "__metadata__")) {
            if ((rc = parse_meta(f, v, err)) < 0) goto out;
            continue;
        }
        if (!*key) { rc = BAD("%s: tensor with an empty name", P); goto out; }
        dv2_safetensors_tensor *t = &f->t[f->n];
        size_t kl = strlen(key);
        memcpy(f->names + pos, key, kl + 1);
        t->name = f->names + pos;
        pos += kl + 1;
        if ((rc = parse_entry(f, t, key, v, err)) < 0) goto out;
        order[f->n] = t;
        f->n++;
    }
    qsort(order, f->n, sizeof *order, cmp_begin);
    for (size_t i = 1; i < f->n; i++)
        if (order[i]->begin < order[i - 1]->end) {
            rc = BAD("%s: tensors '%s' and '%s' overlap in the data section", P, order[i - 1]->name,
                     order[i]->name);
            goto out;
        }
    rc = 0;
out:
    free(order);
    dv2_json_free(doc);
    return rc;
}

static dv2_safetensors_file *new_file(const char *path) {
    dv2_safetensors_file *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->path = strdup(path ? path : "(memory)");
    if (!f->path) { free(f); return NULL; }
    return f;
}

int dv2_safetensors_open_mem(dv2_safetensors_file **out, const void *buf, size_t n, const char *name,
                             dv2_error *err) {
    *out = NULL;
    dv2_safetensors_file *f = new_file(name);
    if (!f) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    int rc = parse(f, buf, n, err);
    if (rc < 0) { file_free(f); return rc; }
    *out = f;
    return DV2_OK;
}

int dv2_safetensors_open(dv2_safetensors_file **out, const char *path, dv2_error *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dv2_error_errno(err, DV2_EIO, errno, "%s", path);
    struct stat st;
    if (fstat(fd, &st) < 0) { int e = errno; close(fd); return dv2_error_errno(err, DV2_EIO, e, "%s", path); }
    if (!S_ISREG(st.st_mode)) { close(fd); return dv2_error_set(err, DV2_EINVAL, "%s: not a regular file", path); }
    dv2_safetensors_file *f = new_file(path);
    if (!f) { close(fd); return dv2_error_set(err, DV2_ENOMEM, "out of memory"); }
    size_t n = (size_t)st.st_size;
    if (n > 0) {
        void *m = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            file_free(f);
            return dv2_error_errno(err, DV2_EIO, e, "%s: mmap", path);
        }
        f->map = m;
        f->map_size = n;
    }
    close(fd);
    int rc = parse(f, f->map ? f->map : (const void *)"", n, err);
    if (rc < 0) { file_free(f); return rc; }
    *out = f;
    return DV2_OK;
}

size_t dv2_safetensors_count(const dv2_safetensors_file *f) { return f->n; }
const char *dv2_safetensors_path(const dv2_safetensors_file *f) { return f->path; }
const dv2_safetensors_tensor *dv2_safetensors_at(const dv2_safetensors_file *f, size_t i) {
    return i < f->n ? &f->t[i] : NULL;
}
const dv2_safetensors_tensor *dv2_safetensors_find(const dv2_safetensors_file *f, const char *name) {
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}
const char *dv2_safetensors_meta(const dv2_safetensors_file *f, const char *key) {
    for (size_t i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta_k[i], key)) return f->meta_v[i];
    return NULL;
}
size_t dv2_safetensors_meta_count(const dv2_safetensors_file *f) { return f->nmeta; }
const char *dv2_safetensors_meta_key(const dv2_safetensors_file *f, size_t i) { return i < f->nmeta ? f->meta_k[i] : NULL; }
const char *dv2_safetensors_meta_val(const dv2_safetensors_file *f, size_t i) { return i < f->nmeta ? f->meta_v[i] : NULL; }

/* IEEE half -> float, exact (subnormals, inf, NaN included). */
static float half_to_float(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1F, m = h & 0x3FF, u;
    if (e == 0) {
        if (m == 0) u = s;
        else { /* subnormal: value m * 2^-24 */
            float v = (float)m * 0x1p-24f;
            return s ? -v : v;
        }
    } else if (e == 31) u = s | 0x7F800000u | (m << 13);
    else u = s | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

int dv2_safetensors_read_f32(const dv2_safetensors_file *f, const dv2_safetensors_tensor *t, float *out,
                             size_t n, dv2_error *err) {
    if (n != t->numel)
        return dv2_error_set(err, DV2_EINVAL, "%s: tensor '%s': %zu elements, caller expects %zu", f->path,
                             t->name, t->numel, n);
    const unsigned char *p = f->data + t->begin;
    switch (t->dtype) {
    case DV2_ST_F32:
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                         (uint32_t)p[4 * i + 3] << 24;
            memcpy(&out[i], &u, 4);
        }
        return 0;
    case DV2_ST_F16:
        for (size_t i = 0; i < n; i++) out[i] = half_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    case DV2_ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16;
            memcpy(&out[i], &u, 4);
        }
        return 0;
    case DV2_ST_F64:
        for (size_t i = 0; i < n; i++) {
            uint64_t u = rd_u64le(p + 8 * i);
            double d;
            memcpy(&d, &u, 8);
            out[i] = (float)d;
        }
        return 0;
    default:
        return dv2_error_set(err, DV2_EUNSUPPORTED, "%s: tensor '%s': dtype %s is not a float type", f->path,
                             t->name, dtypes[t->dtype].name);
    }
}

static void fmt_shape(char *b, size_t bs, const int64_t *s, int nd) {
    size_t o = 0;
    o += (size_t)snprintf(b + o, bs - o, "[");
    for (int d = 0; d < nd && o < bs; d++) o += (size_t)snprintf(b + o, bs - o, d ? ", %lld" : "%lld", (long long)s[d]);
    if (o < bs) snprintf(b + o, bs - o, "]");
}

int dv2_safetensors_load(const dv2_safetensors_file *f, const char *name, const int64_t *shape, int ndim,
                         float *out, dv2_error *err) {
    const dv2_safetensors_tensor *t = dv2_safetensors_find(f, name);
    if (!t) return dv2_error_set(err, DV2_ENOTFOUND, "%s: no tensor '%s'", f->path, name);
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
    if (!same) {
        char a[160], b[160];
        fmt_shape(a, sizeof a, t->shape, t->ndim);
        fmt_shape(b, sizeof b, shape, ndim);
        return BAD("%s: tensor '%s' has shape %s, expected %s", f->path, name, a, b);
    }
    return dv2_safetensors_read_f32(f, t, out, t->numel, err);
}

/* ---- writer ------------------------------------------------------------- */

typedef struct { char *b; size_t n, cap; int oom; } sbuf;

static void sb_put(sbuf *s, const char *p, size_t n) {
    if (s->oom) return;
    if (s->n + n + 1 > s->cap) {
        size_t c = s->cap ? s->cap : 1024;
        while (c < s->n + n + 1) c *= 2;
        char *nb = realloc(s->b, c);
        if (!nb) { s->oom = 1; return; }
        s->b = nb;
        s->cap = c;
    }
    memcpy(s->b + s->n, p, n);
    s->n += n;
    s->b[s->n] = '\0';
}
static void sb_str(sbuf *s, const char *p) { sb_put(s, p, strlen(p)); }

static void sb_json_string(sbuf *s, const char *p) {
    sb_put(s, "\"", 1);
    for (; *p; p++) {
        unsigned char c = (unsigned char)*p;
        char e[8];
        if (c == '"' || c == '\\') { e[0] = '\\'; e[1] = (char)c; sb_put(s, e, 2); }
        else if (c < 0x20) { snprintf(e, sizeof e, "\\u%04x", c); sb_put(s, e, 6); }
        else sb_put(s, (const char *)&c, 1);
    }
    sb_put(s, "\"", 1);
}

int dv2_safetensors_write(const char *path, int force, const dv2_safetensors_entry *t, size_t n,
                          const char *const *meta_keys, const char *const *meta_vals, size_t nmeta,
                          dv2_error *err) {
    for (size_t i = 0; i < n; i++) {
        if (!t[i].name || !*t[i].name || !strcmp(t[i].name, "__metadata__"))
            return dv2_error_set(err, DV2_EINVAL, "%s: tensor %zu: empty or reserved name", path, i);
        if (t[i].ndim < 0 || t[i].ndim > DV2_SAFETENSORS_MAX_DIMS)
            return dv2_error_set(err, DV2_EINVAL, "%s: tensor '%s': bad ndim %d", path, t[i].name, t[i].ndim);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(t[i].name, t[j].name))
                return dv2_error_set(err, DV2_EINVAL, "%s: duplicate tensor name '%s'", path, t[i].name);
    }
    for (size_t i = 0; i < nmeta; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(meta_keys[i], meta_keys[j]))
                return dv2_error_set(err, DV2_EINVAL, "%s: duplicate metadata key '%s'", path, meta_keys[i]);
    sbuf h = {0};
    char num[64];
    uint64_t off = 0;
    sb_str(&h, "{");
    if (nmeta) {
        sb_str(&h, "\"__metadata__\":{");
        for (size_t i = 0; i < nmeta; i++) {
            if (i) sb_str(&h, ",");
            sb_json_string(&h, meta_keys[i]);
            sb_str(&h, ":");
            sb_json_string(&h, meta_vals[i]);
        }
        sb_str(&h, "}");
    }
    size_t *numel = calloc(n + 1, sizeof *numel);
    if (!numel) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t ne = 1;
        for (int d = 0; d < t[i].ndim; d++) {
            if (t[i].shape[d] < 0 || (t[i].shape[d] && ne > (SIZE_MAX / 8) / (size_t)t[i].shape[d])) {
                free(numel);
                free(h.b);
                return dv2_error_set(err, DV2_EINVAL, "%s: tensor '%s': bad shape", path, t[i].name);
            }
            ne *= (size_t)t[i].shape[d];
        }
        numel[i] = ne;
        if (nmeta || i) sb_str(&h, ",");
        sb_json_string(&h, t[i].name);
        sb_str(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t[i].ndim; d++) {
            snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)t[i].shape[d]);
            sb_str(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + 4 * (uint64_t)ne));
        sb_str(&h, num);
        off += 4 * (uint64_t)ne;
    }
    sb_str(&h, "}");
    while (h.n % 8) sb_str(&h, " ");
    if (h.oom) { free(numel); free(h.b); return dv2_error_set(err, DV2_ENOMEM, "out of memory"); }

    dv2_afile a;
    int rc = dv2_afile_open(&a, path, force, err);
    if (rc < 0) { free(numel); free(h.b); return rc; }
    unsigned char len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (unsigned char)((uint64_t)h.n >> (8 * k));
    int bad = fwrite(len8, 1, 8, a.f) != 8 || fwrite(h.b, 1, h.n, a.f) != h.n;
    unsigned char chunk[4096];
    for (size_t i = 0; i < n && !bad; i++) {
        for (size_t j = 0; j < numel[i] && !bad;) {
            size_t m = 0;
            for (; m < sizeof chunk / 4 && j < numel[i]; m++, j++) {
                uint32_t u;
                memcpy(&u, &t[i].data[j], 4);
                for (int k = 0; k < 4; k++) chunk[4 * m + (size_t)k] = (unsigned char)(u >> (8 * k));
            }
            bad = fwrite(chunk, 1, 4 * m, a.f) != 4 * m;
        }
    }
    free(numel);
    free(h.b);
    if (bad) {
        int e = errno;
        dv2_afile_abort(&a);
        return dv2_error_errno(err, DV2_EIO, e, "%s: write", path);
    }
    return dv2_afile_commit(&a, err);
}
