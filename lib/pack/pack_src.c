/* pack_src.c — dv2-pack's inputs: each operand is expanded, in order, into
 * units (directories are walked recursively in byte order of names, formats
 * are recognised by their first bytes), and the units yield items one at a
 * time: image files by path, WebDataset tar members grouped by key, IDX
 * images as gray pixels, records of shards and datasets. */
#include "pack/pack_src.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/afile.h"
#include "format/dataset.h"
#include "core/hash.h"
#include "format/idx.h"
#include "format/shard.h"
#include "format/tarread.h"

enum { U_FILE, U_TAR, U_IDX, U_SHARDS };

typedef struct unit {
    int kind;
    char *path;        /* file, archive, dataset; "-" for stdin */
    char *key;         /* U_FILE */
    char *cls;         /* U_FILE: class directory name, or NULL */
    const char *labels;/* U_IDX: label file, or NULL */
} unit;

struct dv2_pack_src {
    const dv2_pack_opts *o;
    unit *u;
    size_t nu, cap, cur;
    char **classes;
    size_t nclasses;
    int own_classes;    /* names copied from a repacked dataset */
    uint64_t nfiles;    /* items known up front: image files and IDX images */
    int nidx;
    uint8_t stdin_pre[512];  /* bytes peeked from stdin */
    size_t nstdin_pre;
    /* the unit being read */
    int open;
    dv2_tar *tar;
    int tar_fd;
    char *tar_pending_path; /* first member of the next group */
    uint8_t *tar_pending;
    size_t tar_pending_size;
    uint64_t *seen;     /* key ids of the samples of the tar being read */
    size_t nseen, seen_cap;
    dv2_idx_images idx;
    uint8_t *idx_labels;
    uint32_t idx_i;
    char *idx_base;
    dv2_dataset *ds;
    dv2_shard_reader *stream;
};

void dv2_pack_item_free(dv2_pack_item *it) {
    free(it->key);
    free(it->path);
    free(it->data);
    free(it->gray);
    free(it->meta);
    free(it->why);
    free(it->frame);
    memset(it, 0, sizeof *it);
}

static int add_unit(dv2_pack_src *s, int kind, const char *path, const char *key, const char *cls,
                    dv2_error *err) {
    if (s->nu == s->cap) {
        size_t c = s->cap ? s->cap * 2 : 64;
        unit *u = realloc(s->u, c * sizeof *u);
        if (!u) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
        s->u = u;
        s->cap = c;
    }
    unit *u = &s->u[s->nu];
    memset(u, 0, sizeof *u);
    u->kind = kind;
    u->path = strdup(path);
    u->key = key ? strdup(key) : NULL;
    u->cls = cls ? strdup(cls) : NULL;
    if (!u->path || (key && !u->key) || (cls && !u->cls))
        return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    if (kind == U_IDX) {
        u->labels = s->nidx < s->o->nidx_labels ? s->o->idx_labels[s->nidx] : NULL;
        s->nidx++;
    }
    if (kind == U_FILE) s->nfiles++;
    s->nu++;
    return 0;
}

static int is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Walks dir (relative path rel under the root) in sorted order. */
static int walk(dv2_pack_src *s, const char *dir, const char *rel, int depth, dv2_error *err) {
    if (depth > 64) return dv2_error_set(err, DV2_EINVAL, "%s: directories nested too deeply", dir);
    DIR *d = opendir(dir);
    if (!d) return dv2_error_errno(err, DV2_EIO, errno, "%s", dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* hidden files and . .. */
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) { rc = dv2_error_set(err, DV2_ENOMEM, "out of memory"); break; }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) { rc = dv2_error_set(err, DV2_ENOMEM, "out of memory"); break; }
        n++;
    }
    closedir(d);
    if (rc == 0) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t lp = strlen(dir) + strlen(names[i]) + 2, lr = strlen(rel) + strlen(names[i]) + 2;
        char *p = malloc(lp), *r = malloc(lr);
        if (!p || !r) { free(p); free(r); rc = dv2_error_set(err, DV2_ENOMEM, "out of memory"); break; }
        snprintf(p, lp, "%s/%s", dir, names[i]);
        snprintf(r, lr, "%s%s%s", rel, rel[0] ? "/" : "", names[i]);
        struct stat st;
        if (stat(p, &st) != 0) rc = dv2_error_errno(err, DV2_EIO, errno, "%s", p);
        else if (S_ISDIR(st.st_mode)) rc = walk(s, p, r, depth + 1, err);
        else if (S_ISREG(st.st_mode) && is_image_name(names[i])) {
            /* ImageFolder: the class is the first directory under the root */
            char *slash = strchr(r, '/'), *cls = NULL;
            if (slash) cls = strndup(r, (size_t)(slash - r));
            rc = add_unit(s, U_FILE, p, r, cls, err);
            free(cls);
        }
        free(p);
        free(r);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

static int sniff_shard(const uint8_t *b, size_t n) {
    return n >= 4 && b[0] == 0x50 && b[1] == 0x2A && b[2] == 0x4D && b[3] == 0x18;
}

/* One operand (or one line of a path list). */
static int add_path(dv2_pack_src *s, const char *path, dv2_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) return dv2_error_errno(err, DV2_EIO, errno, "%s", path);
    if (S_ISDIR(st.st_mode)) {
        size_t l = strlen(path) + sizeof DV2_MANIFEST_NAME + 2;
        char *m = malloc(l);
        if (!m) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
        snprintf(m, l, "%s/%s", path, DV2_MANIFEST_NAME);
        int is_ds = access(m, F_OK) == 0;
        free(m);
        if (is_ds) return add_unit(s, U_SHARDS, path, NULL, NULL, err);
        size_t n = strlen(path);
        char *root = strndup(path, n > 1 && path[n - 1] == '/' ? n - 1 : n);
        if (!root) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
        int rc = walk(s, root, "", 0, err);
        free(root);
        return rc;
    }
    uint8_t b[512];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dv2_error_errno(err, DV2_EIO, errno, "%s", path);
    long k = dv2_read_full(fd, b, sizeof b);
    close(fd);
    if (k < 0) return dv2_error_errno(err, DV2_EIO, errno, "%s", path);
    if (sniff_shard(b, (size_t)k)) return add_unit(s, U_SHARDS, path, NULL, NULL, err);
    if (dv2_tar_sniff(b, (size_t)k)) return add_unit(s, U_TAR, path, NULL, NULL, err); /* also .tar.gz */
    if ((k >= 2 && b[0] == 0x1f && b[1] == 0x8b) || (k >= 4 && b[0] == 0 && b[1] == 0 && b[2] == 8)) {
        if (dv2_idx_sniff(path)) {
            uint32_t n = dv2_idx_count(path); /* for the progress ETA */
            s->nfiles += n <= DV2_IDX_MAX_ITEMS ? n : 0;
            return add_unit(s, U_IDX, path, NULL, NULL, err);
        }
    }
    /* anything else is an image file; its check happens when it is packed */
    char *key = strdup(path), *cls = NULL;
    if (!key) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    dv2_key_clean(key); /* the key rule: relative, no "." or ".." */
    const char *slash = strrchr(key, '/');
    if (slash) { /* class: name of the parent directory */
        const char *start = slash;
        while (start > key && start[-1] != '/') start--;
        cls = strndup(start, (size_t)(slash - start));
    }
    int rc = key[0] ? add_unit(s, U_FILE, path, key, cls, err)
                    : dv2_error_set(err, DV2_EINVAL, "%s: no file name to make a key of", path);
    free(cls);
    free(key);
    return rc;
}

static int add_stdin(dv2_pack_src *s, dv2_error *err) {
    long k = dv2_read_full(0, s->stdin_pre, sizeof s->stdin_pre);
    if (k < 0) return dv2_error_errno(err, DV2_EIO, errno, "(stdin)");
    s->nstdin_pre = (size_t)k;
    if (sniff_shard(s->stdin_pre, (size_t)k)) return add_unit(s, U_SHARDS, "-", NULL, NULL, err);
    if (dv2_tar_sniff(s->stdin_pre, (size_t)k)) return add_unit(s, U_TAR, "-", NULL, NULL, err);
    /* a list of paths, one per line */
    char *text = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&text, &n);
    if (!m) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    fwrite(s->stdin_pre, 1, (size_t)k, m);
    char buf[65536];
    long r;
    while ((r = dv2_read_full(0, buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)r, m);
    fclose(m);
    if (r < 0) { free(text); return dv2_error_errno(err, DV2_EIO, errno, "(stdin)"); }
    int rc = 0;
    size_t sp = text ? strspn(text, " \t\r\n") : 0;
    if ((!text || !text[sp]) && !s->o->allow_empty) {
        free(text);
        return dv2_error_set(err, DV2_ENOTFOUND, "(stdin): empty: no paths, no shard or tar stream "
                             "(--allow-empty writes an empty dataset)");
    }
    for (char *line = text, *next; line && *line && rc == 0; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r') line[--l] = 0;
        if (l == 0) continue;
        rc = add_path(s, line, err);
        if (rc < 0) dv2_error_prefix(err, "path list on stdin");
    }
    free(text);
    return rc;
}

int dv2_pack_src_open(dv2_pack_src **out, const dv2_pack_opts *o, char *const *inputs, int n,
                      dv2_error *err) {
    *out = NULL;
    dv2_pack_src *s = calloc(1, sizeof *s);
    if (!s) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    s->o = o;
    s->tar_fd = -1;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = strcmp(inputs[i], "-") == 0 ? add_stdin(s, err) : add_path(s, inputs[i], err);
    if (rc == 0 && s->nidx > o->nidx_labels && o->nidx_labels > 0)
        rc = dv2_error_set(err, DV2_EINVAL, "%d IDX inputs but %d --idx-labels files", s->nidx,
                           o->nidx_labels);
    if (rc == 0 && o->label_from_dir) { /* sorted unique class names */
        char **c = dv2_malloc_array(s->nu ? s->nu : 1, sizeof *c);
        size_t nc = 0;
        if (!c) rc = dv2_error_set(err, DV2_ENOMEM, "out of memory");
        for (size_t i = 0; c && i < s->nu; i++)
            if (s->u[i].cls) c[nc++] = s->u[i].cls;
        if (c) qsort(c, nc, sizeof *c, cmp_str);
        for (size_t i = 0; c && i < nc; i++)
            if (s->nclasses == 0 || strcmp(c[i], c[s->nclasses - 1]) != 0)
                c[s->nclasses++] = c[i];
        s->classes = c;
    }
    if (rc < 0) { dv2_pack_src_close(s); return rc; }
    *out = s;
    return 0;
}

static void close_unit(dv2_pack_src *s) {
    dv2_tar_close(s->tar);
    s->tar = NULL;
    if (s->tar_fd > 0) close(s->tar_fd);
    s->tar_fd = -1;
    free(s->tar_pending_path);
    free(s->tar_pending);
    s->tar_pending_path = NULL;
    s->tar_pending = NULL;
    free(s->seen);
    s->seen = NULL;
    s->nseen = s->seen_cap = 0;
    dv2_idx_images_free(&s->idx);
    free(s->idx_labels);
    s->idx_labels = NULL;
    free(s->idx_base);
    s->idx_base = NULL;
    dv2_dataset_close(s->ds);
    s->ds = NULL;
    dv2_shard_close(s->stream);
    s->stream = NULL;
    s->open = 0;
}

void dv2_pack_src_close(dv2_pack_src *s) {
    if (!s) return;
    close_unit(s);
    for (size_t i = 0; i < s->nu; i++) {
        free(s->u[i].path);
        free(s->u[i].key);
        free(s->u[i].cls);
    }
    free(s->u);
    for (size_t i = 0; s->own_classes && i < s->nclasses; i++) free(s->classes[i]);
    free(s->classes); /* unless copied, the names belong to the units */
    free(s);
}

size_t dv2_pack_src_classes(const dv2_pack_src *s, char *const **names) {
    *names = s->classes;
    return s->nclasses;
}

uint64_t dv2_pack_src_known_items(const dv2_pack_src *s) { return s->nfiles; }

static int32_t class_label(const dv2_pack_src *s, const char *cls) {
    if (!cls || !s->o->label_from_dir) return DV2_LABEL_NONE;
    size_t lo = 0, hi = s->nclasses;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(s->classes[mid], cls);
        if (c == 0) return (int32_t)mid;
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return DV2_LABEL_NONE;
}

static int open_unit(dv2_pack_src *s, unit *u, dv2_error *err) {
    int rc = 0;
    if (u->kind == U_TAR) {
        const void *pre = NULL;
        size_t npre = 0;
        if (strcmp(u->path, "-") == 0) { s->tar_fd = 0; pre = s->stdin_pre; npre = s->nstdin_pre; }
        else if ((s->tar_fd = open(u->path, O_RDONLY | O_CLOEXEC)) < 0)
            return dv2_error_errno(err, DV2_EIO, errno, "%s", u->path);
        rc = dv2_tar_open_fd(&s->tar, s->tar_fd, strcmp(u->path, "-") ? u->path : "(stdin)", pre, npre, err);
    } else if (u->kind == U_IDX) {
        rc = dv2_idx_read_images(&s->idx, u->path, err);
        uint32_t nl = 0;
        if (rc == 0 && u->labels) {
            rc = dv2_idx_read_labels(&s->idx_labels, &nl, u->labels, err);
            if (rc == 0 && nl != s->idx.n)
                rc = dv2_error_set(err, DV2_ECORRUPT, "%s: %u labels for %u images in %s", u->labels,
                                   nl, s->idx.n, u->path);
        }
        if (rc == 0) { /* key prefix: the file name without directory and ".gz" */
            const char *b = strrchr(u->path, '/');
            b = b ? b + 1 : u->path;
            size_t l = strlen(b);
            if (l > 3 && strcmp(b + l - 3, ".gz") == 0) l -= 3;
            if (!(s->idx_base = strndup(b, l))) rc = dv2_error_set(err, DV2_ENOMEM, "out of memory");
        }
        s->idx_i = 0;
    } else if (u->kind == U_SHARDS) {
        if (strcmp(u->path, "-") == 0)
            rc = dv2_shard_open_fd(&s->stream, 0, "(stdin)", s->stdin_pre, s->nstdin_pre, err);
        else
            rc = dv2_dataset_open(&s->ds, u->path, err);
    }
    s->open = 1;
    return rc;
}

/* WebDataset: the key of a member is its path up to the first '.' of the
 * basename, its extension the rest ("x.seg.png": key "x", extension
 * ".seg.png"); the members of one sample are adjacent in the archive.  The
 * image of a sample is chosen by its extension, not its position: ".jpg",
 * ".jpeg", ".png" (any case) in that order, then any other member whose
 * last extension is one of those ("x.seg.png" only when there is nothing
 * better).  The label is the ".cls" member.  A sample is never dropped
 * silently: one without a usable image, with a bad label, or whose key
 * comes back after other samples is a skipped item with the reason. */
static size_t wds_keylen(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strchr(b, '.');
    return dot ? (size_t)(dot - path) : strlen(path);
}

static int wds_image_rank(const char *path, const char *ext) { /* 1 best .. 4, 0 not an image */
    static const char *const best[] = {".jpg", ".jpeg", ".png"};
    for (int i = 0; i < 3; i++)
        if (!strcasecmp(ext, best[i])) return i + 1;
    return is_image_name(path) ? 4 : 0;
}

static int wds_unsupported_image(const char *path) {
    static const char *const ext[] = {".webp", ".gif", ".bmp", ".tif", ".tiff", ".jp2", ".jxl", ".avif",
                                      ".heic", ".heif", ".ppm", ".pgm", ".pnm"};
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof ext / sizeof ext[0]; i++)
        if (!strcasecmp(dot, ext[i])) return 1;
    return 0;
}

/* The keys of the samples of the archive being read (for adjacency). */
static int seen_add(dv2_pack_src *s, uint64_t id) { /* 1 new, 0 seen before, <0 no memory */
    if (2 * (s->nseen + 1) > s->seen_cap) {
        size_t c = s->seen_cap ? s->seen_cap * 2 : 1024;
        uint64_t *t = calloc(c, sizeof *t);
        if (!t) return DV2_ENOMEM;
        for (size_t i = 0; i < s->seen_cap; i++)
            if (s->seen[i]) {
                size_t j = (size_t)(s->seen[i] * 0x9E3779B97F4A7C15ull) & (c - 1);
                while (t[j]) j = (j + 1) & (c - 1);
                t[j] = s->seen[i];
            }
        free(s->seen);
        s->seen = t;
        s->seen_cap = c;
    }
    if (id == 0) id = 1; /* 0 marks a free slot */
    size_t j = (size_t)(id * 0x9E3779B97F4A7C15ull) & (s->seen_cap - 1);
    while (s->seen[j]) {
        if (s->seen[j] == id) return 0;
        j = (j + 1) & (s->seen_cap - 1);
    }
    s->seen[j] = id;
    s->nseen++;
    return 1;
}

static void item_bad(dv2_pack_item *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void item_bad(dv2_pack_item *it, const char *fmt, ...) {
    char msg[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    it->bad = 1;
    free(it->why);
    it->why = strdup(msg);
}

static int tar_next(dv2_pack_src *s, dv2_pack_item *it, dv2_error *err) {
    const char *tname = strcmp(s->u[s->cur].path, "-") ? s->u[s->cur].path : "(stdin)";
    char *img_path = NULL, *cls = NULL, *cls_path = NULL, *unsup = NULL, *first = NULL, *group = NULL;
    uint8_t *img = NULL;
    size_t img_size = 0, glen = 0;
    int rank = 0, rc = 1;
    for (;;) {
        const char *p;
        const uint8_t *d;
        size_t n;
        if (s->tar_pending_path) {
            p = s->tar_pending_path;
            d = s->tar_pending;
            n = s->tar_pending_size;
        } else {
            rc = dv2_tar_next(s->tar, &p, &d, &n, err);
            if (rc <= 0) break;
        }
        size_t kl = wds_keylen(p);
        if (group && (kl != glen || strncmp(p, group, glen) != 0)) {
            if (!s->tar_pending_path) { /* keep it for the next sample */
                s->tar_pending_path = strdup(p);
                s->tar_pending = malloc(n ? n : 1);
                if (!s->tar_pending_path || !s->tar_pending) { rc = DV2_ENOMEM; break; }
                memcpy(s->tar_pending, d, n);
                s->tar_pending_size = n;
            }
            rc = 1;
            break;
        }
        if (!group && (!(group = strndup(p, kl)) || !(first = strdup(p)))) { rc = DV2_ENOMEM; break; }
        glen = kl;
        const char *ext = p + kl;
        int r = wds_image_rank(p, ext);
        if (r && (!rank || r < rank)) {
            free(img_path);
            free(img);
            img_path = strdup(p);
            img = malloc(n ? n : 1);
            if (!img_path || !img) { rc = DV2_ENOMEM; break; }
            memcpy(img, d, n);
            img_size = n;
            rank = r;
        } else if (!strcasecmp(ext, ".cls") && !cls) {
            if (!(cls = strndup((const char *)d, n)) || !(cls_path = strdup(p))) { rc = DV2_ENOMEM; break; }
        } else if (!r && !unsup && wds_unsupported_image(p)) {
            if (!(unsup = strdup(p))) { rc = DV2_ENOMEM; break; }
        }
        if (s->tar_pending_path) {
            free(s->tar_pending_path);
            free(s->tar_pending);
            s->tar_pending_path = NULL;
            s->tar_pending = NULL;
        }
    }
    if (rc == DV2_ENOMEM) dv2_error_set(err, rc, "out of memory");
    if (rc >= 0 && group) {
        int fresh = seen_add(s, dv2_key_id(group));
        if (fresh < 0) rc = dv2_error_set(err, DV2_ENOMEM, "out of memory");
        it->key = img_path ? img_path : first;
        if (img_path) free(first);
        img_path = first = NULL;
        it->id = dv2_key_id(it->key);
        it->label = DV2_LABEL_NONE;
        it->check = 1;
        it->data = img;
        it->size = img_size;
        img = NULL;
        if (fresh == 0)
            item_bad(it, "%s: member %s: sample '%s' comes back after other samples (the members of a "
                     "sample must be adjacent)", tname, it->key, group);
        else if (!rank && unsup)
            item_bad(it, "%s: member %s: unsupported image format (JPEG and PNG are read)", tname, unsup);
        else if (!rank)
            item_bad(it, "%s: sample '%s' has no image member (.jpg, .jpeg or .png)", tname, group);
        else if (cls) {
            char *end;
            long v = strtol(cls, &end, 10);
            while (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t') end++;
            if (end == cls || *end || v < 0 || v > INT32_MAX) {
                size_t l = strcspn(cls, "\r\n");
                item_bad(it, "%s: member %s: bad label '%.*s' (expected an integer 0..%d)", tname, cls_path,
                         (int)(l > 64 ? 64 : l), cls, INT32_MAX);
            } else it->label = (int32_t)v;
        }
        if (rc >= 0) rc = 1;
    } else if (rc >= 0) rc = 0;
    free(img_path); free(img); free(cls); free(cls_path); free(unsup); free(first); free(group);
    return rc;
}

static int src_next_raw(dv2_pack_src *s, dv2_pack_item *it, dv2_error *err) {
    memset(it, 0, sizeof *it);
    while (s->cur < s->nu) {
        unit *u = &s->u[s->cur];
        int rc = 0;
        if (u->kind == U_FILE) {
            s->cur++;
            it->key = strdup(u->key);
            it->path = strdup(u->path);
            if (!it->key || !it->path) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
            it->id = dv2_key_id(u->key);
            it->label = class_label(s, u->cls);
            it->check = 1;
            return 1;
        }
        if (!s->open && (rc = open_unit(s, u, err)) < 0) return rc;
        if (u->kind == U_TAR) {
            rc = tar_next(s, it, err);
        } else if (u->kind == U_IDX) {
            if (s->idx_i < s->idx.n) {
                char k[64 + 4096];
                snprintf(k, sizeof k, "%s/%06u.png", s->idx_base, s->idx_i);
                if (!(it->key = strdup(k))) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
                it->id = dv2_key_id(k);
                it->label = s->idx_labels ? s->idx_labels[s->idx_i] : DV2_LABEL_NONE;
                size_t np = (size_t)s->idx.rows * s->idx.cols;
                if (!(it->gray = malloc(np))) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
                memcpy(it->gray, s->idx.pixels + (size_t)s->idx_i * np, np);
                it->w = (int)s->idx.cols;
                it->h = (int)s->idx.rows;
                s->idx_i++;
                rc = 1;
            }
        } else {
            dv2_record r;
            rc = s->ds ? dv2_dataset_next(s->ds, &r, err) : dv2_shard_next(s->stream, &r, err);
            if (rc == 1) {
                it->key = strdup(r.key);
                it->data = malloc(r.size ? r.size : 1);
                if (r.meta) it->meta = strndup(r.meta, r.meta_size);
                if (!it->key || !it->data || (r.meta && !it->meta))
                    return dv2_error_set(err, DV2_ENOMEM, "out of memory");
                memcpy(it->data, r.data, r.size);
                it->size = r.size;
                it->meta_size = r.meta_size;
                it->id = r.id;
                it->label = r.label;
                if (s->ds && s->o->label_from_dir == 0 && s->nclasses == 0 && dv2_dataset_nclasses(s->ds)) {
                    /* keep the class names of a repacked dataset */
                    size_t nc = dv2_dataset_nclasses(s->ds);
                    s->classes = dv2_malloc_array(nc, sizeof *s->classes);
                    for (size_t i = 0; s->classes && i < nc; i++)
                        s->classes[i] = strdup(dv2_dataset_class_name(s->ds, i));
                    s->nclasses = s->classes ? nc : 0;
                    s->own_classes = 1;
                }
            }
        }
        if (rc != 0) return rc;
        close_unit(s);
        s->cur++;
    }
    return 0;
}

/* Every item passes here: its key takes the one clean form (dataset.h), so
 * that whatever went in can be extracted in full.  An id made from the key
 * follows the clean key; a repacked record keeps its id. */
int dv2_pack_src_next(dv2_pack_src *s, dv2_pack_item *it, dv2_error *err) {
    int rc = src_next_raw(s, it, err);
    if (rc != 1 || !it->key || dv2_key_is_clean(it->key)) return rc;
    int from_key = it->id == dv2_key_id(it->key);
    char *raw = strdup(it->key);
    if (!raw) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    if (dv2_key_clean(it->key) == 0 && !it->bad) {
        size_t l = strlen(raw) + 64;
        it->bad = 1;
        if ((it->why = malloc(l))) snprintf(it->why, l, "key '%s': nothing left once cleaned", raw);
    }
    if (from_key) it->id = dv2_key_id(it->key);
    free(raw);
    return 1;
}
