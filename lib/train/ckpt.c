/* ckpt.c — checkpoint files on top of lib/safetensors (ckpt.h). */
#include "train/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/hash.h"

#define CKPT_MAX_LIST 4096

void dv2_ckpt_path(char *buf, size_t cap, const char *dir, int64_t step) {
    snprintf(buf, cap, "%s/ckpt-%012lld.safetensors", dir, (long long)step);
}

static uint64_t tensor_sum(const char *name, const void *data, size_t bytes) {
    return dv2_xxh64(data, bytes, dv2_xxh64(name, strlen(name), 0));
}

static int cmp_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

int dv2_ckpt_list(const char *dir, int64_t *steps, int cap) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    int64_t *all = malloc(CKPT_MAX_LIST * sizeof *all);
    if (!all) { closedir(d); return 0; }
    struct dirent *e;
    while ((e = readdir(d)) && n < CKPT_MAX_LIST) {
        long long s;
        char tail[32];
        if (sscanf(e->d_name, "ckpt-%lld.%31s", &s, tail) == 2 && strcmp(tail, "safetensors") == 0 &&
            s >= 0 && strlen(e->d_name) == strlen("ckpt-000000000000.safetensors"))
            all[n++] = s;
    }
    closedir(d);
    qsort(all, (size_t)n, sizeof *all, cmp_desc);
    int m = n < cap ? n : cap;
    memcpy(steps, all, (size_t)m * sizeof *all);
    free(all);
    return m;
}

int dv2_ckpt_write(const char *dir, int64_t step, const dv2_safetensors_entry *t, size_t n,
                   const char *const *meta_keys, const char *const *meta_vals, size_t nmeta,
                   int keep, dv2_error *err) {
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        size_t numel = 1;
        for (int k = 0; k < t[i].ndim; k++) numel *= (size_t)t[i].shape[k];
        sum += tensor_sum(t[i].name, t[i].data, numel * sizeof(float));
    }
    const char **mk = malloc((nmeta + 3) * sizeof *mk), **mv = malloc((nmeta + 3) * sizeof *mv);
    if (!mk || !mv) { free(mk); free(mv); return dv2_error_set(err, DV2_ENOMEM, "checkpoint: out of memory"); }
    char sbuf[32], cbuf[32];
    snprintf(sbuf, sizeof sbuf, "%lld", (long long)step);
    snprintf(cbuf, sizeof cbuf, "%016" PRIx64, sum);
    mk[0] = "format", mv[0] = "dv2-checkpoint";
    mk[1] = "step", mv[1] = sbuf;
    mk[2] = "checksum", mv[2] = cbuf;
    for (size_t i = 0; i < nmeta; i++) mk[3 + i] = meta_keys[i], mv[3 + i] = meta_vals[i];
    char path[4096];
    dv2_ckpt_path(path, sizeof path, dir, step);
    int rc = dv2_safetensors_write(path, 1, t, n, mk, mv, nmeta + 3, err);
    free(mk);
    free(mv);
    if (rc) return rc;
    int64_t steps[CKPT_MAX_LIST];
    int c = dv2_ckpt_list(dir, steps, CKPT_MAX_LIST);
    for (int i = keep > 0 ? keep : 1; i < c; i++) {
        dv2_ckpt_path(path, sizeof path, dir, steps[i]);
        if (unlink(path) && errno != ENOENT)
            return dv2_error_errno(err, DV2_EIO, errno, "%s: cannot remove old checkpoint", path);
    }
    return 0;
}

int dv2_ckpt_meta_u64(const dv2_safetensors_file *f, const char *key, uint64_t *out, dv2_error *err) {
    const char *v = dv2_safetensors_meta(f, key);
    char *end;
    if (!v || !*v)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: metadata '%s' missing", dv2_safetensors_path(f), key);
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (*end || errno || v[0] == '-')
        return dv2_error_set(err, DV2_ECORRUPT, "%s: metadata '%s' = '%s' is not an integer",
                             dv2_safetensors_path(f), key, v);
    *out = x;
    return 0;
}

int dv2_ckpt_open(dv2_safetensors_file **out, const char *path, dv2_error *err) {
    dv2_safetensors_file *f = NULL;
    *out = NULL;
    int rc = dv2_safetensors_open(&f, path, err);
    if (rc) return rc;
    const char *fmt = dv2_safetensors_meta(f, "format"), *cs = dv2_safetensors_meta(f, "checksum");
    if (!fmt || strcmp(fmt, "dv2-checkpoint") != 0 || !cs) {
        dv2_safetensors_close(f);
        return dv2_error_set(err, DV2_ECORRUPT, "%s: not a dv2 checkpoint (metadata format/checksum)", path);
    }
    size_t cap = 0;
    float *buf = NULL;
    uint64_t sum = 0;
    for (size_t i = 0; i < dv2_safetensors_count(f); i++) {
        const dv2_safetensors_tensor *t = dv2_safetensors_at(f, i);
        if (t->dtype != DV2_ST_F32) {
            rc = dv2_error_set(err, DV2_ECORRUPT, "%s: tensor %s is not F32", path, t->name);
            break;
        }
        if (t->numel > cap) {
            free(buf);
            cap = t->numel;
            buf = dv2_malloc_array(cap, sizeof *buf);
            if (!buf) { rc = dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", path); break; }
        }
        rc = dv2_safetensors_read_f32(f, t, buf, t->numel, err);
        if (rc) break;
        sum += tensor_sum(t->name, buf, t->numel * sizeof(float));
    }
    free(buf);
    if (!rc) {
        char want[32];
        snprintf(want, sizeof want, "%016" PRIx64, sum);
        if (strcmp(want, cs) != 0)
            rc = dv2_error_set(err, DV2_ECORRUPT, "%s: checksum mismatch (stored %s, data %s)", path, cs, want);
    }
    if (rc) { dv2_safetensors_close(f); return rc; }
    *out = f;
    return 0;
}

int dv2_ckpt_open_latest(dv2_safetensors_file **f, const char *dir, int64_t *step, int *skipped,
                         dv2_error *err) {
    int64_t steps[CKPT_MAX_LIST];
    int n = dv2_ckpt_list(dir, steps, CKPT_MAX_LIST);
    *f = NULL;
    if (skipped) *skipped = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        dv2_ckpt_path(path, sizeof path, dir, steps[i]);
        if (dv2_ckpt_open(f, path, NULL) == 0) {
            *step = steps[i];
            return 0;
        }
        if (skipped) (*skipped)++;
    }
    return dv2_error_set(err, DV2_ENOTFOUND, "%s: no complete checkpoint%s", dir,
                         n ? " (all damaged)" : "");
}
