/* dataset.c — datasets (a directory of shards plus manifest.json): the
 * manifest reader and writer, and one reader over a directory, a single
 * shard file or a stream, with sequential and random access. */
#include "format/dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/afile.h"
#include "core/json.h"

#define MANIFEST_MAX (64u << 20)

void dv2_manifest_init(dv2_manifest *m) { memset(m, 0, sizeof *m); }

void dv2_manifest_free(dv2_manifest *m) {
    if (!m) return;
    for (size_t i = 0; i < m->nshards; i++) free(m->shards[i].name);
    for (size_t i = 0; i < m->nclasses; i++) free(m->classes[i]);
    free(m->shards);
    free(m->classes);
    memset(m, 0, sizeof *m);
}

void dv2_dataset_shard_name(char *buf, size_t n, uint64_t index) {
    snprintf(buf, n, "shard-%06llu%s", (unsigned long long)index, DV2_SHARD_EXT);
}

size_t dv2_key_clean(char *key) {
    size_t out = 0; /* key[0..out) is the clean prefix; components never grow */
    for (char *p = key; *p;) {
        char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == 2 && p[0] == '.' && p[1] == '.') { /* drop the last kept component */
            while (out > 0 && key[out - 1] != '/') out--;
            if (out > 0) out--;
        } else if (l > 0 && !(l == 1 && p[0] == '.')) {
            if (out > 0) key[out++] = '/';
            for (size_t i = 0; i < l; i++) key[out++] = (unsigned char)p[i] < 0x20 ? '_' : p[i];
        }
        if (!e) break;
        p = e + 1;
    }
    key[out] = 0;
    return out;
}

int dv2_key_is_clean(const char *key) {
    if (!key[0]) return 0;
    for (const char *p = key;;) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.')) return 0;
        for (size_t i = 0; i < l; i++)
            if ((unsigned char)p[i] < 0x20) return 0;
        if (!e) return 1;
        p = e + 1;
    }
}

int dv2_manifest_add_shard(dv2_manifest *m, const char *name, uint64_t records, uint64_t bytes,
                           dv2_error *err) {
    dv2_manifest_shard *s = realloc(m->shards, (m->nshards + 1) * sizeof *s);
    if (!s) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    m->shards = s;
    if (!(s[m->nshards].name = strdup(name))) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    s[m->nshards].records = records;
    s[m->nshards].bytes = bytes;
    m->nshards++;
    m->records += records;
    m->bytes += bytes;
    return 0;
}

/* JSON text must be UTF-8: class names come from directory names, which
 * need not be. */
static int utf8_valid(const unsigned char *s) {
    while (*s) {
        int n = *s < 0x80 ? 0 : (*s & 0xe0) == 0xc0 ? 1 : (*s & 0xf0) == 0xe0 ? 2 : (*s & 0xf8) == 0xf0 ? 3 : -1;
        if (n < 0 || (n == 1 && *s < 0xc2)) return 0;
        s++;
        for (int i = 0; i < n; i++, s++)
            if ((*s & 0xc0) != 0x80) return 0;
    }
    return 1;
}

int dv2_manifest_add_class(dv2_manifest *m, const char *name, dv2_error *err) {
    if (!utf8_valid((const unsigned char *)name))
        return dv2_error_set(err, DV2_EINVAL, "class name '%s' is not UTF-8", name);
    char **c = realloc(m->classes, (m->nclasses + 1) * sizeof *c);
    if (!c) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    m->classes = c;
    if (!(c[m->nclasses] = strdup(name))) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    m->nclasses++;
    return 0;
}

int dv2_manifest_write(const dv2_manifest *m, const char *dir, dv2_error *err) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    fprintf(f, "{\n  \"format\": \"dv2-dataset\",\n  \"version\": 1,\n  \"records\": %llu,\n"
            "  \"bytes\": %llu,\n  \"shards\": [", (unsigned long long)m->records,
            (unsigned long long)m->bytes);
    for (size_t i = 0; i < m->nshards; i++) {
        fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
        dv2_json_write_string(f, m->shards[i].name);
        fprintf(f, ", \"records\": %llu, \"bytes\": %llu}", (unsigned long long)m->shards[i].records,
                (unsigned long long)m->shards[i].bytes);
    }
    fprintf(f, "%s],\n  \"classes\": [", m->nshards ? "\n  " : "");
    for (size_t i = 0; i < m->nclasses; i++) {
        fputs(i ? ", " : "", f);
        dv2_json_write_string(f, m->classes[i]);
    }
    fputs("]\n}\n", f);
    fclose(f);
    char *path = malloc(strlen(dir) + sizeof DV2_MANIFEST_NAME + 2);
    if (!path) { free(text); return dv2_error_set(err, DV2_ENOMEM, "out of memory"); }
    sprintf(path, "%s/%s", dir, DV2_MANIFEST_NAME);
    int rc = dv2_write_file_atomic(path, text, len, err);
    free(path);
    free(text);
    return rc;
}

static int get_u64(const dv2_json *o, const char *key, uint64_t *out) {
    int64_t v;
    const dv2_json *x = o ? dv2_json_get(o, key) : NULL;
    if (!x || !dv2_json_int(x, &v) || v < 0) return -1;
    *out = (uint64_t)v;
    return 0;
}

static int plain_name(const char *s) {
    return s[0] && s[0] != '.' && !strchr(s, '/') && strlen(s) < 256;
}

int dv2_manifest_read(dv2_manifest *m, const char *dir, dv2_error *err) {
    dv2_manifest_init(m);
    char *path = malloc(strlen(dir) + sizeof DV2_MANIFEST_NAME + 2), *text = NULL;
    if (!path) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    sprintf(path, "%s/%s", dir, DV2_MANIFEST_NAME);
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) {
        dv2_error_set(err, DV2_ENOTFOUND, "%s: no %s (not a dataset, or an unfinished write)", dir,
                      DV2_MANIFEST_NAME);
        free(path);
        return DV2_ENOTFOUND;
    }
    size_t n;
    int rc = dv2_read_file(path, MANIFEST_MAX, &text, &n, err);
    dv2_json_doc *doc = NULL;
    if (rc == 0 && (rc = dv2_json_parse(&doc, text, n, 0, err)) < 0) dv2_error_prefix(err, "%s", path);
    if (rc < 0) goto out;
    const dv2_json *root = dv2_json_root(doc), *v;
    uint64_t records, bytes, ver;
    v = dv2_json_type(root) == DV2_JSON_OBJECT ? dv2_json_get(root, "format") : NULL;
    if (!v || dv2_json_type(v) != DV2_JSON_STRING || strcmp(dv2_json_str(v), "dv2-dataset") != 0 ||
        get_u64(root, "version", &ver) < 0 || get_u64(root, "records", &records) < 0 ||
        get_u64(root, "bytes", &bytes) < 0) {
        rc = dv2_error_set(err, DV2_ECORRUPT, "%s: not a dv2 dataset manifest", path);
        goto out;
    }
    if (ver != 1) {
        rc = dv2_error_set(err, DV2_EUNSUPPORTED, "%s: manifest version %llu", path,
                           (unsigned long long)ver);
        goto out;
    }
    const dv2_json *sh = dv2_json_get(root, "shards"), *cl = dv2_json_get(root, "classes");
    if (!sh || dv2_json_type(sh) != DV2_JSON_ARRAY || (cl && dv2_json_type(cl) != DV2_JSON_ARRAY)) {
        rc = dv2_error_set(err, DV2_ECORRUPT, "%s: bad \"shards\" or \"classes\"", path);
        goto out;
    }
    for (size_t i = 0; i < dv2_json_len(sh) && rc == 0; i++) {
        const dv2_json *s = dv2_json_at(sh, i), *nm = dv2_json_get(s, "name");
        uint64_t r, b;
        if (dv2_json_type(s) != DV2_JSON_OBJECT || !nm || dv2_json_type(nm) != DV2_JSON_STRING ||
            !plain_name(dv2_json_str(nm)) || get_u64(s, "records", &r) < 0 || get_u64(s, "bytes", &b) < 0)
            rc = dv2_error_set(err, DV2_ECORRUPT, "%s: bad shard entry %zu", path, i);
        else
            rc = dv2_manifest_add_shard(m, dv2_json_str(nm), r, b, err);
    }
    for (size_t i = 0; cl && i < dv2_json_len(cl) && rc == 0; i++) {
        const dv2_json *c = dv2_json_at(cl, i);
        if (dv2_json_type(c) != DV2_JSON_STRING)
            rc = dv2_error_set(err, DV2_ECORRUPT, "%s: bad class name %zu", path, i);
        else
            rc = dv2_manifest_add_class(m, dv2_json_str(c), err);
    }
    if (rc == 0 && (m->records != records || m->bytes != bytes))
        rc = dv2_error_set(err, DV2_ECORRUPT, "%s: totals do not match the shard list", path);
out:
    if (rc < 0) dv2_manifest_free(m);
    dv2_json_free(doc);
    free(text);
    free(path);
    return rc;
}

/* ---- the dataset reader ------------------------------------------------------- */

struct dv2_dataset {
    char *dir;                   /* NULL for a single shard or a stream */
    dv2_manifest m;              /* one shard entry for a single file */
    dv2_shard_reader **readers;  /* random access: one per shard */
    uint64_t *start;             /* first record number of each shard (+ total) */
    int indexed, random;
    size_t cur;                  /* sequential: shard being read */
    dv2_shard_reader *seq;
    uint64_t seq_n;              /* records read from the current shard */
    int single, stream;
    int counted;                 /* shard record counts come from manifests */
};

static char *shard_path(const dv2_dataset *ds, size_t i) {
    if (!ds->dir) return strdup(ds->m.shards[i].name);
    char *p = malloc(strlen(ds->dir) + strlen(ds->m.shards[i].name) + 2);
    if (p) sprintf(p, "%s/%s", ds->dir, ds->m.shards[i].name);
    return p;
}

int dv2_dataset_open(dv2_dataset **out, const char *path, dv2_error *err) {
    *out = NULL;
    dv2_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    dv2_manifest_init(&ds->m);
    int rc = 0;
    struct stat st;
    if (strcmp(path, "-") == 0) {
        ds->stream = ds->single = 1;
        rc = dv2_manifest_add_shard(&ds->m, "-", 0, 0, err);
    } else if (stat(path, &st) != 0) {
        rc = dv2_error_errno(err, DV2_EIO, errno, "%s", path);
    } else if (S_ISDIR(st.st_mode)) {
        if (!(ds->dir = strdup(path))) rc = dv2_error_set(err, DV2_ENOMEM, "out of memory");
        else rc = dv2_manifest_read(&ds->m, path, err);
        ds->random = ds->counted = 1;
    } else {
        ds->single = 1;
        dv2_shard_reader *r = NULL;
        rc = dv2_shard_open(&r, path, err);
        if (rc == 0 && dv2_shard_seekable(r)) {
            rc = dv2_shard_load_index(r, err);
            ds->random = 1;
        }
        if (rc == 0) rc = dv2_manifest_add_shard(&ds->m, path, dv2_shard_count(r), (uint64_t)st.st_size, err);
        if (rc == 0 && !ds->random) { ds->m.records = 0; ds->stream = 1; }
        dv2_shard_close(r);
    }
    if (rc < 0) { dv2_dataset_close(ds); return rc; }
    *out = ds;
    return 0;
}

int dv2_dataset_open_list(dv2_dataset **out, const char *const *paths, int n, dv2_error *err) {
    *out = NULL;
    if (n < 1) return dv2_error_set(err, DV2_EINVAL, "no dataset");
    if (n == 1) return dv2_dataset_open(out, paths[0], err);
    dv2_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    dv2_manifest_init(&ds->m);
    ds->random = ds->counted = 1;
    int rc = 0;
    for (int k = 0; k < n && rc >= 0; k++) {
        struct stat st;
        dv2_manifest m;
        dv2_manifest_init(&m);
        if (stat(paths[k], &st) != 0) {
            rc = dv2_error_errno(err, DV2_EIO, errno, "%s", paths[k]);
        } else if (!S_ISDIR(st.st_mode)) {
            rc = dv2_error_set(err, DV2_EINVAL, "%s: several datasets must each be a dataset directory "
                               "(a single shard or '-' only alone)", paths[k]);
        } else if ((rc = dv2_manifest_read(&m, paths[k], err)) >= 0) {
            for (size_t i = 0; i < m.nshards && rc >= 0; i++) {
                char *full = malloc(strlen(paths[k]) + strlen(m.shards[i].name) + 2);
                if (!full) {
                    rc = dv2_error_set(err, DV2_ENOMEM, "out of memory");
                    break;
                }
                sprintf(full, "%s/%s", paths[k], m.shards[i].name);
                rc = dv2_manifest_add_shard(&ds->m, full, m.shards[i].records, m.shards[i].bytes, err);
                free(full);
            }
            /* class names: those of the first dataset when all agree, else none */
            if (rc >= 0 && k == 0)
                for (size_t c = 0; c < m.nclasses && rc >= 0; c++) rc = dv2_manifest_add_class(&ds->m, m.classes[c], err);
            else if (rc >= 0 && ds->m.nclasses) {
                int same = m.nclasses == ds->m.nclasses;
                for (size_t c = 0; same && c < m.nclasses; c++) same = !strcmp(m.classes[c], ds->m.classes[c]);
                if (!same) {
                    for (size_t c = 0; c < ds->m.nclasses; c++) free(ds->m.classes[c]);
                    free(ds->m.classes);
                    ds->m.classes = NULL, ds->m.nclasses = 0;
                }
            }
        }
        dv2_manifest_free(&m);
    }
    if (rc < 0) {
        dv2_dataset_close(ds);
        return rc;
    }
    *out = ds;
    return 0;
}

void dv2_dataset_close(dv2_dataset *ds) {
    if (!ds) return;
    if (ds->readers)
        for (size_t i = 0; i < ds->m.nshards; i++) dv2_shard_close(ds->readers[i]);
    free(ds->readers);
    free(ds->start);
    dv2_shard_close(ds->seq);
    dv2_manifest_free(&ds->m);
    free(ds->dir);
    free(ds);
}

int dv2_dataset_random_access(const dv2_dataset *ds) { return ds->random; }
uint64_t dv2_dataset_count(const dv2_dataset *ds) {
    return ds->stream ? DV2_DATASET_UNKNOWN : ds->m.records;
}
size_t dv2_dataset_nclasses(const dv2_dataset *ds) { return ds->m.nclasses; }
const char *dv2_dataset_class_name(const dv2_dataset *ds, size_t label) {
    return label < ds->m.nclasses ? ds->m.classes[label] : NULL;
}

int dv2_dataset_next(dv2_dataset *ds, dv2_record *rec, dv2_error *err) {
    for (;;) {
        if (ds->cur >= ds->m.nshards) return 0;
        if (!ds->seq) {
            char *p = shard_path(ds, ds->cur);
            if (!p) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
            int rc = dv2_shard_open(&ds->seq, p, err);
            free(p);
            if (rc < 0) return rc;
            ds->seq_n = 0;
        }
        int rc = dv2_shard_next(ds->seq, rec, err);
        if (rc != 0) {
            if (rc > 0) ds->seq_n++;
            return rc;
        }
        if (ds->counted && ds->seq_n != ds->m.shards[ds->cur].records)
            return dv2_error_set(err, DV2_ECORRUPT, "%s: %llu records, the manifest says %llu",
                                 dv2_shard_name(ds->seq), (unsigned long long)ds->seq_n,
                                 (unsigned long long)ds->m.shards[ds->cur].records);
        dv2_shard_close(ds->seq);
        ds->seq = NULL;
        ds->cur++;
    }
}

int dv2_dataset_load_index(dv2_dataset *ds, dv2_error *err) {
    if (ds->indexed) return 0;
    if (!ds->random) return dv2_error_set(err, DV2_EUNSUPPORTED, "a stream has no random access");
    size_t ns = ds->m.nshards;
    ds->readers = calloc(ns ? ns : 1, sizeof *ds->readers);
    ds->start = calloc(ns + 1, sizeof *ds->start);
    if (!ds->readers || !ds->start) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    for (size_t i = 0; i < ns; i++) {
        char *p = shard_path(ds, i);
        if (!p) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
        int rc = dv2_shard_open(&ds->readers[i], p, err);
        free(p);
        if (rc == 0) rc = dv2_shard_load_index(ds->readers[i], err);
        if (rc < 0) return rc;
        uint64_t n = dv2_shard_count(ds->readers[i]);
        if (n != ds->m.shards[i].records)
            return dv2_error_set(err, DV2_ECORRUPT, "%s: %llu records, the manifest says %llu",
                                 dv2_shard_name(ds->readers[i]), (unsigned long long)n,
                                 (unsigned long long)ds->m.shards[i].records);
        ds->start[i + 1] = ds->start[i] + n;
    }
    ds->indexed = 1;
    return 0;
}

/* Shard holding record i (binary search over the start offsets). */
static size_t find_shard(const dv2_dataset *ds, uint64_t i) {
    size_t lo = 0, hi = ds->m.nshards;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (ds->start[mid] <= i) lo = mid; else hi = mid;
    }
    return lo;
}

int dv2_dataset_entry(dv2_dataset *ds, uint64_t i, uint64_t *id, int32_t *label, dv2_error *err) {
    int rc = dv2_dataset_load_index(ds, err);
    if (rc < 0) return rc;
    if (i >= ds->m.records)
        return dv2_error_set(err, DV2_EINVAL, "record %llu out of range (%llu records)",
                             (unsigned long long)i, (unsigned long long)ds->m.records);
    size_t s = find_shard(ds, i);
    const dv2_shard_entry *e = &dv2_shard_entries(ds->readers[s])[i - ds->start[s]];
    if (id) *id = e->id;
    if (label) *label = e->label;
    return 0;
}

int dv2_dataset_get(dv2_dataset *ds, uint64_t i, dv2_record *rec, dv2_recbuf *buf, dv2_error *err) {
    int rc = dv2_dataset_load_index(ds, err);
    if (rc < 0) return rc;
    if (i >= ds->m.records)
        return dv2_error_set(err, DV2_EINVAL, "record %llu out of range (%llu records)",
                             (unsigned long long)i, (unsigned long long)ds->m.records);
    size_t s = find_shard(ds, i);
    return dv2_shard_get(ds->readers[s], i - ds->start[s], rec, buf, err);
}
