/* idlist.c — reading and searching id lists (see idlist.h). */
#include "format/idlist.h"

#include <stdlib.h>
#include <string.h>

#include "core/afile.h"

int dv2_idlist_parse_id(const char *s, size_t len, uint64_t *out) {
    uint64_t v = 0;
    size_t i = 0;
    if (len == 0) return DV2_EINVAL;
    if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        if (len > 18) return DV2_EINVAL;
        for (i = 2; i < len; i++) {
            char c = s[i];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) return DV2_EINVAL;
            v = v << 4 | (uint64_t)d;
        }
    } else {
        for (i = 0; i < len; i++) {
            char c = s[i];
            if (c < '0' || c > '9') return DV2_EINVAL;
            uint64_t d = (uint64_t)(c - '0');
            if (v > (UINT64_MAX - d) / 10) return DV2_EINVAL;
            v = v * 10 + d;
        }
    }
    *out = v;
    return 0;
}

int dv2_idlist_read(dv2_idlist *l, const char *path, dv2_error *err) {
    l->ids = NULL;
    l->n = 0;
    char *text;
    size_t n;
    int rc = dv2_read_file(path, (size_t)1 << 40, &text, &n, err);
    if (rc < 0) return rc;
    size_t cap = 1024, line = 0;
    l->ids = malloc(cap * sizeof *l->ids);
    if (!l->ids) {
        free(text);
        return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", path);
    }
    const char *name = strcmp(path, "-") == 0 ? "stdin" : path;
    size_t i = 0;
    while (i < n) {
        size_t e = i;
        while (e < n && text[e] != '\n') e++;
        line++;
        size_t f = i;
        while (f < e && text[f] != '\t' && text[f] != ' ' && text[f] != '\r') f++;
        if (f > i && text[i] != '#') {
            uint64_t id;
            if (dv2_idlist_parse_id(text + i, f - i, &id) < 0) {
                int len = (int)(f - i < 40 ? f - i : 40);
                rc = dv2_error_set(err, DV2_ECORRUPT, "%s: line %zu: not an id: '%.*s'", name, line, len, text + i);
                dv2_idlist_free(l);
                free(text);
                return rc;
            }
            if (l->n == cap) {
                uint64_t *g = realloc(l->ids, 2 * cap * sizeof *g);
                if (!g) {
                    dv2_idlist_free(l);
                    free(text);
                    return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory at line %zu", name, line);
                }
                l->ids = g;
                cap *= 2;
            }
            l->ids[l->n++] = id;
        }
        i = e + 1;
    }
    free(text);
    return 0;
}

void dv2_idlist_free(dv2_idlist *l) {
    free(l->ids);
    l->ids = NULL;
    l->n = 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

size_t dv2_idlist_sort_unique(dv2_idlist *l) {
    if (l->n == 0) return 0;
    qsort(l->ids, l->n, sizeof *l->ids, cmp_u64);
    size_t o = 1;
    for (size_t i = 1; i < l->n; i++)
        if (l->ids[i] != l->ids[o - 1]) l->ids[o++] = l->ids[i];
    size_t dropped = l->n - o;
    l->n = o;
    return dropped;
}

int dv2_idlist_contains(const dv2_idlist *l, uint64_t id) {
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->n && l->ids[lo] == id;
}

typedef struct id_row { uint64_t id; int64_t row; } id_row;

static int cmp_id_row(const void *a, const void *b) { /* by id, then row */
    const id_row *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int dv2_idlist_first_rows(const uint64_t *ids, int64_t n, int64_t *rows, int64_t *nrows, dv2_error *err) {
    *nrows = 0;
    if (n <= 0) return 0;
    id_row *t = dv2_malloc_array((size_t)n, sizeof *t);
    if (!t) return dv2_error_set(err, DV2_ENOMEM, "out of memory for %lld ids", (long long)n);
    for (int64_t i = 0; i < n; i++) t[i] = (id_row){ids[i], i};
    qsort(t, (size_t)n, sizeof *t, cmp_id_row);
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (i == 0 || t[i].id != t[i - 1].id) rows[k++] = t[i].row;
    free(t);
    qsort(rows, (size_t)k, sizeof *rows, cmp_i64);
    *nrows = k;
    return 0;
}
