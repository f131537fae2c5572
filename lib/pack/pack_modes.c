/* pack_modes.c — dv2-pack's read side: --ls (one TSV line per record),
 * --verify (every checksum, every index, the manifest) and --extract (the
 * original bytes back under their keys, refusing keys that would leave the
 * target directory).  All go through lib/format/dataset.h, so they accept dataset
 * directories, shard files and a stream on stdin. */
#include "pack/pack.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/afile.h"
#include "format/dataset.h"

typedef int (*record_fn)(void *ctx, const dv2_record *r, dv2_error *err);

/* A single shard (file or "-"): read front to back, so damage is reported
 * at the record where it is found; then the trailing index when seekable. */
static int each_in_shard(const char *path, record_fn fn, void *ctx, int check_index,
                         dv2_pack_stats *st, dv2_error *err) {
    dv2_shard_reader *r;
    int rc = dv2_shard_open(&r, path, err);
    if (rc < 0) return rc;
    dv2_record rec;
    while ((rc = dv2_shard_next(r, &rec, err)) == 1) {
        st->records++;
        st->bytes_in += rec.size;
        if (fn && (rc = fn(ctx, &rec, err)) < 0) break;
    }
    if (rc == 0 && check_index && dv2_shard_seekable(r)) rc = dv2_shard_load_index(r, err);
    dv2_shard_close(r);
    return rc;
}

static int each_record(char *const *inputs, int n, record_fn fn, void *ctx, int check_index,
                       dv2_pack_stats *st, dv2_error *err) {
    int stdin_used = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(inputs[i], "-") == 0 && stdin_used++)
            return dv2_error_set(err, DV2_EINVAL, "stdin given twice");
        struct stat sb;
        if (strcmp(inputs[i], "-") == 0 || (stat(inputs[i], &sb) == 0 && !S_ISDIR(sb.st_mode))) {
            int rc = each_in_shard(inputs[i], fn, ctx, check_index, st, err);
            if (rc < 0) return rc;
            continue;
        }
        dv2_dataset *ds;
        int rc = dv2_dataset_open(&ds, inputs[i], err);
        if (rc < 0) return rc;
        dv2_record r;
        uint64_t n0 = st->records;
        while ((rc = dv2_dataset_next(ds, &r, err)) == 1) {
            st->records++;
            st->bytes_in += r.size;
            if (fn && (rc = fn(ctx, &r, err)) < 0) break;
        }
        if (rc == 0 && check_index) rc = dv2_dataset_load_index(ds, err);
        if (rc == 0 && dv2_dataset_count(ds) != st->records - n0)
            rc = dv2_error_set(err, DV2_ECORRUPT, "%s: %llu records read, the manifest says %llu",
                               inputs[i], (unsigned long long)(st->records - n0),
                               (unsigned long long)dv2_dataset_count(ds));
        dv2_dataset_close(ds);
        if (rc < 0) return rc;
    }
    return 0;
}

static int ls_one(void *ctx, const dv2_record *r, dv2_error *err) {
    FILE *out = ctx;
    if (fprintf(out, "%llu\t%s\t%d\t%zu\n", (unsigned long long)r->id, r->key, (int)r->label, r->size) < 0)
        return dv2_error_errno(err, DV2_EIO, errno, "write error");
    return 0;
}

int dv2_pack_ls(char *const *inputs, int n, FILE *out, dv2_pack_stats *st, dv2_error *err) {
    memset(st, 0, sizeof *st);
    return each_record(inputs, n, ls_one, out, 0, st, err);
}

int dv2_pack_verify(char *const *inputs, int n, dv2_pack_stats *st, dv2_error *err) {
    memset(st, 0, sizeof *st);
    return each_record(inputs, n, NULL, NULL, 1, st, err);
}

typedef struct extract_ctx { const char *dir; int force, wds; } extract_ctx;

/* --webdataset: a record's files are KEY.EXT and KEY.cls, KEY being what
 * WebDataset readers take for it (the path up to the first '.' of the
 * basename); an image key without .jpg/.jpeg/.png gets the extension of
 * its bytes. */
static const char *image_ext(const dv2_record *r) {
    const char *dot = strrchr(r->key, '.'), *slash = strrchr(r->key, '/');
    if (dot && (!slash || dot > slash) &&
        (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png")))
        return "";
    if (r->size >= 2 && r->data[0] == 0xFF && r->data[1] == 0xD8) return ".jpg";
    if (r->size >= 4 && r->data[0] == 0x89 && r->data[1] == 'P') return ".png";
    return ".bin";
}

static int write_member(const extract_ctx *c, const char *path, const void *data, size_t n, dv2_error *err) {
    struct stat st;
    if (!c->force && lstat(path, &st) == 0)
        return dv2_error_set(err, DV2_EEXIST, "%s: exists (use -f to overwrite)", path);
    return dv2_write_file_atomic(path, data, n, err);
}

/* Creates the directories of path below dir, one component at a time,
 * refusing any that is a symbolic link: what is written stays inside dir
 * whatever was there before. */
static int mkdirs_below(const char *dir, char *path, dv2_error *err) {
    size_t l0 = strlen(dir);
    for (char *s = path + l0 + 1; (s = strchr(s, '/')); s++) {
        *s = 0;
        struct stat st;
        int rc = 0;
        if (lstat(path, &st) != 0) {
            if (errno != ENOENT || (mkdir(path, 0755) != 0 && errno != EEXIST))
                rc = dv2_error_errno(err, DV2_EIO, errno, "%s", path);
        } else if (S_ISLNK(st.st_mode)) {
            rc = dv2_error_set(err, DV2_EINVAL, "%s: a symbolic link inside %s: refusing to follow it", path, dir);
        } else if (!S_ISDIR(st.st_mode)) {
            rc = dv2_error_set(err, DV2_EEXIST, "%s: exists and is not a directory", path);
        }
        *s = '/';
        if (rc < 0) return rc;
    }
    return 0;
}

static int extract_one(void *vctx, const dv2_record *r, dv2_error *err) {
    extract_ctx *c = vctx;
    if (!dv2_key_is_clean(r->key)) /* dv2-pack never writes one; a shard from elsewhere may */
        return dv2_error_set(err, DV2_EINVAL, "refusing key '%s': it would leave %s", r->key, c->dir);
    const char *ext = c->wds ? image_ext(r) : "";
    size_t l = strlen(c->dir) + strlen(r->key) + 16;
    char *path = malloc(l);
    if (!path) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    snprintf(path, l, "%s/%s%s", c->dir, r->key, ext);
    int rc = mkdirs_below(c->dir, path, err);
    if (rc == 0) rc = write_member(c, path, r->data, r->size, err);
    if (rc == 0 && c->wds && r->label >= 0) {
        char *base = strrchr(path, '/') + 1, *dot = strchr(base, '.');
        char lab[16];
        int nl = snprintf(lab, sizeof lab, "%d\n", (int)r->label);
        snprintf(dot ? dot : base + strlen(base), 5, ".cls");
        rc = write_member(c, path, lab, (size_t)nl, err);
    }
    free(path);
    return rc;
}

int dv2_pack_extract(char *const *inputs, int n, const char *dir, int force, int webdataset,
                     dv2_pack_stats *st, dv2_error *err) {
    memset(st, 0, sizeof *st);
    int rc = dv2_mkdir_p(dir, err);
    if (rc < 0) return rc;
    extract_ctx c = {dir, force, webdataset};
    return each_record(inputs, n, extract_one, &c, 0, st, err);
}
