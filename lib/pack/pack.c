/* pack.c — dv2-pack's packing engine: items from pack_src.c are filtered
 * (--select), labelled (--labels), loaded, checked and compressed by
 * worker threads (pack_pipe.c, one zstd context per worker), then written in
 * input order into shards that are committed by rename as each one fills.
 * An output directory without a manifest is resumed: its complete shards are
 * kept after checking that their ids are the next ids the inputs yield. */
#include "pack/pack.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "core/afile.h"
#include "format/dataset.h"
#include "core/hash.h"
#include "core/lock.h"
#include "format/idlist.h"
#include "pack/pack_pipe.h"
#include "pack/pack_src.h"
#include "image/pngenc.h"
#include "format/shard.h"

void dv2_pack_opts_init(dv2_pack_opts *o) {
    memset(o, 0, sizeof *o);
    o->shard_size = 1ull << 30;
    o->level = 3;
}

/* ---- id lists, label maps, the set of ids written ------------------------------ */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct label_entry { uint64_t id; int32_t label; } label_entry;

static int cmp_label(const void *a, const void *b) {
    return cmp_u64(&((const label_entry *)a)->id, &((const label_entry *)b)->id);
}

/* --labels: key<TAB>label lines, looked up by the key's id. */
static int labels_read(const char *path, label_entry **out, size_t *nout, dv2_error *err) {
    char *text;
    size_t len, k = 0, lineno = 0;
    int rc = dv2_read_file(path, (size_t)1 << 32, &text, &len, err);
    if (rc < 0) return rc;
    label_entry *e = dv2_malloc_array(len / 3 + 1, sizeof *e);
    if (!e) { free(text); return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", path); }
    for (char *line = text, *next; line && line < text + len && rc == 0; line = next) {
        next = memchr(line, '\n', (size_t)(text + len - line));
        if (next) *next++ = 0;
        lineno++;
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r') line[--l] = 0;
        if (!l) continue;
        char *tab = strrchr(line, '\t'), *end;
        long v = tab ? strtol(tab + 1, &end, 10) : 0;
        if (!tab || tab == line || end == tab + 1 || *end || v < -1 || v > INT32_MAX) {
            rc = dv2_error_set(err, DV2_ECORRUPT, "%s: line %zu: expected key<TAB>label", path, lineno);
            break;
        }
        *tab = 0;
        e[k].id = dv2_key_id(line);
        e[k++].label = (int32_t)v;
    }
    free(text);
    if (rc == 0) {
        qsort(e, k, sizeof *e, cmp_label);
        for (size_t i = 1; i < k && rc == 0; i++)
            if (e[i].id == e[i - 1].id)
                rc = dv2_error_set(err, DV2_ECORRUPT, "%s: a key is listed twice", path);
    }
    if (rc < 0) { free(e); return rc; }
    *out = e;
    *nout = k;
    return 0;
}

/* Open-addressing set of the ids written (duplicate keys are an error). */
typedef struct idset { uint64_t *slot; size_t cap, n; int has_zero; } idset;

static int idset_add(idset *s, uint64_t id) { /* 1 added, 0 present, <0 no memory */
    if (id == 0) { int had = s->has_zero; s->has_zero = 1; return !had; }
    if (2 * (s->n + 1) > s->cap) {
        size_t c = s->cap ? s->cap * 2 : 4096;
        uint64_t *t = calloc(c, sizeof *t);
        if (!t) return DV2_ENOMEM;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i]) {
                size_t j = (size_t)(s->slot[i] * 0x9E3779B97F4A7C15ull) & (c - 1);
                while (t[j]) j = (j + 1) & (c - 1);
                t[j] = s->slot[i];
            }
        free(s->slot);
        s->slot = t;
        s->cap = c;
    }
    size_t j = (size_t)(id * 0x9E3779B97F4A7C15ull) & (s->cap - 1);
    while (s->slot[j]) {
        if (s->slot[j] == id) return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->slot[j] = id;
    s->n++;
    return 1;
}

/* ---- the engine ---------------------------------------------------------------- */

typedef struct packer {
    const dv2_pack_opts *o;
    dv2_pack_stats *st;
    dv2_manifest m;
    int to_stdout;
    dv2_afile af;
    int af_open;
    dv2_shard_writer *w;
    uint64_t next_shard;
    idset ids;
    uint64_t *resume_ids;
    size_t nresume, resume_pos;
    ZSTD_CCtx **cctx;
    int nthreads;
    uint64_t total;   /* items known up front, for the ETA */
} packer;

static void say(void (*fn)(void *, const char *), void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(void (*fn)(void *, const char *), void *ctx, const char *fmt, ...) {
    if (!fn) return;
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fn(ctx, msg);
}

static int shard_close(packer *p, dv2_error *err) {
    if (!p->w) return 0;
    int rc = dv2_shard_writer_finish(p->w, err);
    uint64_t n = dv2_shard_writer_records(p->w), b = dv2_shard_writer_bytes(p->w);
    dv2_shard_writer_free(p->w);
    p->w = NULL;
    if (p->to_stdout) {
        if (rc == 0 && fflush(stdout) != 0) rc = dv2_error_errno(err, DV2_EIO, errno, "stdout");
        p->st->bytes_out += b;
        p->st->shards++;
        return rc;
    }
    if (rc == 0) rc = dv2_afile_commit(&p->af, err);
    else dv2_afile_abort(&p->af);
    p->af_open = 0;
    if (rc < 0) return rc;
    char name[64];
    dv2_dataset_shard_name(name, sizeof name, p->next_shard++);
    p->st->bytes_out += b;
    p->st->shards++;
    return dv2_manifest_add_shard(&p->m, name, n, b, err);
}

static int shard_open(packer *p, dv2_error *err) {
    int rc;
    if (p->to_stdout) return dv2_shard_writer_create(&p->w, stdout, "(stdout)", p->o->level, err);
    char name[64];
    dv2_dataset_shard_name(name, sizeof name, p->next_shard);
    size_t l = strlen(p->o->out) + sizeof name + 2;
    char *path = malloc(l);
    if (!path) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    snprintf(path, l, "%s/%s", p->o->out, name);
    rc = dv2_afile_open(&p->af, path, 0, err);
    free(path);
    if (rc < 0) return rc;
    p->af_open = 1;
    return dv2_shard_writer_create(&p->w, p->af.f, p->af.tmp ? p->af.tmp : name, p->o->level, err);
}

/* Loads, checks and compresses one item (runs in parallel). */
static void prepare(packer *p, dv2_pack_item *it, int tid) {
    dv2_error e;
    int rc = 0;
    if (it->bad) return;
    if (it->path) {
        char *d;
        size_t n;
        rc = dv2_read_file(it->path, DV2_SHARD_MAX_DATA, &d, &n, &e);
        if (rc == 0) { it->data = (uint8_t *)d; it->size = n; }
    } else if (it->gray) {
        rc = dv2_png_encode_gray8(&it->data, &it->size, it->gray, it->w, it->h, &e);
    }
    if (rc == 0 && it->check)
        rc = dv2_png_check_image(it->data, it->size, it->path ? it->path : it->key, &e);
    if (rc == 0) {
        dv2_record r = {it->id, it->key, it->label, it->data, it->size, it->meta, it->meta_size};
        rc = dv2_shard_encode(&r, p->o->level, p->cctx[tid], &it->frame, &it->frame_size,
                              &it->frame_cap, &e);
    }
    free(it->data); /* the frame holds the bytes now */
    it->data = NULL;
    if (rc < 0) {
        it->bad = 1;
        it->why = strdup(e.msg);
    }
}

/* Writes one prepared item in order. */
static int emit(packer *p, dv2_pack_item *it, dv2_error *err) {
    const dv2_pack_opts *o = p->o;
    if (it->bad) {
        const char *why = it->why ? it->why : "unreadable";
        if (o->strict) return dv2_error_set(err, DV2_ECORRUPT, "%s (--strict)", why);
        say(o->warn, o->ctx, "skipped %s", why); /* why names the file */
        p->st->skipped++;
        return 0;
    }
    if (it->must_fail)
        return dv2_error_set(err, DV2_EINVAL, "%s: the complete shards in %s do not match the inputs "
                             "(record '%s'); use -f to start over", o->out, o->out, it->key);
    int added = idset_add(&p->ids, it->id);
    if (added < 0) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    if (!added)
        return dv2_error_set(err, DV2_EINVAL, "duplicate key '%s' (id %llu)", it->key,
                             (unsigned long long)it->id);
    if (p->w && !p->to_stdout) {
        uint64_t n = dv2_shard_writer_records(p->w), b = dv2_shard_writer_bytes(p->w);
        if (n > 0 && b + it->frame_size + dv2_shard_overhead(n + 1) > o->shard_size) {
            int rc = shard_close(p, err);
            if (rc < 0) return rc;
        }
    }
    int rc = p->w ? 0 : shard_open(p, err);
    if (rc == 0) rc = dv2_shard_writer_add_frame(p->w, it->frame, it->frame_size, it->id, it->label, err);
    if (rc < 0) return rc;
    p->st->records++;
    p->st->bytes_in += it->size ? it->size : it->frame_size;
    return 0;
}

/* Output directory: fresh, resumed, or (with -f) started over. */
static int prepare_dir(packer *p, dv2_error *err) {
    const dv2_pack_opts *o = p->o;
    int rc = 0;
    size_t l = strlen(o->out) + 300;
    char *path = malloc(l);
    if (!path) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    snprintf(path, l, "%s/%s", o->out, DV2_MANIFEST_NAME);
    int complete = access(path, F_OK) == 0;
    if (complete && !o->force) {
        free(path);
        return dv2_error_set(err, DV2_EEXIST, "%s: a complete dataset is there (use -f to overwrite)",
                             o->out);
    }
    DIR *d = opendir(o->out);
    if (!d) { free(path); return dv2_error_errno(err, DV2_EIO, errno, "%s", o->out); }
    struct dirent *e;
    uint64_t nshards = 0;
    while ((e = readdir(d))) { /* stale temporary files of a killed run go; shards are counted */
        const char *n = e->d_name;
        snprintf(path, l, "%s/%s", o->out, n);
        if ((strncmp(n, ".shard-", 7) == 0 || strncmp(n, ".manifest.json", 14) == 0) && strstr(n, ".tmp"))
            unlink(path);
        else if (strncmp(n, "shard-", 6) == 0 && strstr(n, DV2_SHARD_EXT)) {
            if (o->force) unlink(path);
            else nshards++;
        } else if (o->force && strcmp(n, DV2_MANIFEST_NAME) == 0)
            unlink(path);
    }
    closedir(d);
    for (uint64_t i = 0; i < nshards && rc == 0; i++) {
        char name[64];
        dv2_dataset_shard_name(name, sizeof name, i);
        snprintf(path, l, "%s/%s", o->out, name);
        dv2_shard_reader *r = NULL;
        rc = dv2_shard_open(&r, path, err);
        if (rc == 0) rc = dv2_shard_load_index(r, err);
        if (rc < 0) {
            dv2_error_prefix(err, "resuming (use -f to start over)");
            dv2_shard_close(r);
            break;
        }
        uint64_t n = dv2_shard_count(r);
        const dv2_shard_entry *en = dv2_shard_entries(r);
        uint64_t *ids = realloc(p->resume_ids, (size_t)(p->nresume + n + 1) * sizeof *ids);
        if (!ids) rc = dv2_error_set(err, DV2_ENOMEM, "out of memory");
        else {
            p->resume_ids = ids;
            for (uint64_t k = 0; k < n; k++) ids[p->nresume++] = en[k].id;
            struct stat st;
            rc = stat(path, &st) == 0 ? dv2_manifest_add_shard(&p->m, name, n, (uint64_t)st.st_size, err)
                                      : dv2_error_errno(err, DV2_EIO, errno, "%s", path);
            p->st->bytes_out += (uint64_t)st.st_size;
        }
        dv2_shard_close(r);
    }
    free(path);
    if (rc < 0) return rc;
    p->next_shard = nshards;
    p->st->shards = p->st->resumed_shards = nshards;
    p->st->resumed_records = p->nresume;
    if (nshards)
        say(o->info, o->ctx, "resuming %s: keeping %llu complete shards (%llu records)", o->out,
            (unsigned long long)nshards, (unsigned long long)p->nresume);
    return 0;
}

static void work_fn(void *ctx, dv2_pack_item *it, int worker) { prepare(ctx, it, worker); }

static int emit_fn(void *ctx, dv2_pack_item *it, dv2_error *err) {
    packer *p = ctx;
    int rc = emit(p, it, err);
    if (rc == 0 && p->o->progress) /* inputs handled so far, against the inputs known */
        p->o->progress(p->o->ctx, p->st->records + p->st->skipped + p->st->filtered, p->st->bytes_in, p->total);
    return rc;
}

int dv2_pack_run(const dv2_pack_opts *o, char *const *inputs, int ninputs, dv2_pack_stats *st,
                 dv2_error *err) {
    memset(st, 0, sizeof *st);
    packer p = {0};
    p.o = o;
    p.st = st;
    p.to_stdout = strcmp(o->out, "-") == 0;
    dv2_manifest_init(&p.m);
    p.nthreads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (p.nthreads < 1) p.nthreads = 1;
    dv2_idlist sel = {0};
    size_t nlab = 0;
    label_entry *lab = NULL;
    dv2_pack_src *src = NULL;
    dv2_pack_pipe *pipe = NULL;
    dv2_pack_item item, *it = &item;
    dv2_lock lock = {-1, NULL, 0};
    int rc = 0, created = 0;
    memset(&item, 0, sizeof item);
    p.cctx = calloc((size_t)p.nthreads, sizeof *p.cctx);
    if (!p.cctx) { rc = dv2_error_set(err, DV2_ENOMEM, "out of memory"); goto out; }
    for (int i = 0; i < p.nthreads; i++)
        if (!(p.cctx[i] = ZSTD_createCCtx())) { rc = dv2_error_set(err, DV2_ENOMEM, "out of memory"); goto out; }
    if (o->select) {
        if ((rc = dv2_idlist_read(&sel, o->select, err)) < 0) goto out;
        dv2_idlist_sort_unique(&sel);
    }
    if (o->labels_tsv && (rc = labels_read(o->labels_tsv, &lab, &nlab, err)) < 0) goto out;
    if (!p.to_stdout) { /* one writer per directory, from here to the manifest */
        struct stat sb;
        created = stat(o->out, &sb) != 0;
        if ((rc = dv2_mkdir_p(o->out, err)) < 0) goto out;
        if ((rc = dv2_lock_acquire(&lock, o->out, "the dataset", err)) < 0) goto out;
        if (lock.stale_pid)
            say(o->warn, o->ctx, "%s: taking over the lock of process %ld, which is gone", o->out,
                lock.stale_pid);
    }
    if ((rc = dv2_pack_src_open(&src, o, inputs, ninputs, err)) < 0) goto out;
    p.total = dv2_pack_src_known_items(src);
    { /* class names must be valid before any shard is written */
        char *const *names;
        size_t nc = dv2_pack_src_classes(src, &names);
        dv2_manifest tmp;
        dv2_manifest_init(&tmp);
        for (size_t i = 0; i < nc && rc == 0; i++) rc = dv2_manifest_add_class(&tmp, names[i], err);
        dv2_manifest_free(&tmp);
        if (rc < 0) goto out;
    }
    if (!p.to_stdout && (rc = prepare_dir(&p, err)) < 0) goto out;
    /* -j1 works inline; otherwise N workers and this thread reading/writing */
    if ((rc = dv2_pack_pipe_create(&pipe, p.nthreads > 1 ? p.nthreads : 0, 32 * p.nthreads, work_fn,
                                   emit_fn, &p, err)) < 0)
        goto out;
    for (;;) {
        rc = dv2_pack_src_next(src, it, err);
        if (rc < 0) goto out;
        if (rc == 1) {
            if (o->select && !dv2_idlist_contains(&sel, it->id)) {
                st->filtered++;
                dv2_pack_item_free(it);
                continue;
            }
            if (lab) {
                label_entry key = {dv2_key_id(it->key), 0}, *f;
                f = bsearch(&key, lab, nlab, sizeof *lab, cmp_label);
                if (f) { it->label = f->label; st->labelled++; }
            }
            if (p.resume_pos < p.nresume) {
                if (it->id == p.resume_ids[p.resume_pos]) { /* in a kept shard */
                    p.resume_pos++;
                    st->records++;
                    if (idset_add(&p.ids, it->id) < 0) { rc = dv2_error_set(err, DV2_ENOMEM, "out of memory"); goto out; }
                    dv2_pack_item_free(it);
                    continue;
                }
                it->must_fail = 1; /* only a bad image may have been left out */
            }
            if ((rc = dv2_pack_pipe_push(pipe, it, err)) < 0) goto out;
            continue;
        }
        if (p.resume_pos < p.nresume) {
            rc = dv2_error_set(err, DV2_EINVAL, "%s: the complete shards hold records the inputs do "
                               "not give; use -f to start over", o->out);
            goto out;
        }
        break;
    }
    if ((rc = dv2_pack_pipe_drain(pipe, err)) < 0) goto out;
    rc = 0;
    if (lab && st->labelled == 0 && st->records + st->skipped > 0) {
        rc = dv2_error_set(err, DV2_ENOTFOUND, "--labels %s: none of its %zu keys is the key of a record "
                           "(keys are paths relative to the directory given)", o->labels_tsv, nlab);
        goto out;
    }
    if (lab && st->labelled < st->records + st->skipped)
        say(o->warn, o->ctx, "--labels %s: %llu of %llu records have no label there", o->labels_tsv,
            (unsigned long long)(st->records + st->skipped - st->labelled),
            (unsigned long long)(st->records + st->skipped));
    if (st->records == 0 && !o->allow_empty) {
        if (st->filtered)
            rc = dv2_error_set(err, DV2_ENOTFOUND, "--select %s: none of the %llu records is listed; "
                               "nothing to write (--allow-empty writes an empty dataset)", o->select,
                               (unsigned long long)st->filtered);
        else if (st->skipped)
            rc = dv2_error_set(err, DV2_ENOTFOUND, "all %llu inputs were skipped; nothing to write "
                               "(--allow-empty writes an empty dataset)", (unsigned long long)st->skipped);
        else
            rc = dv2_error_set(err, DV2_ENOTFOUND, "the inputs hold no images; nothing to write "
                               "(--allow-empty writes an empty dataset)");
        goto out;
    }
    if (p.to_stdout && !p.w) rc = shard_open(&p, err); /* an empty stream is still a shard */
    if (rc == 0) rc = shard_close(&p, err);
    if (rc == 0 && !p.to_stdout) {
        char *const *names;
        size_t nc = dv2_pack_src_classes(src, &names);
        for (size_t i = 0; i < nc && rc == 0; i++) rc = dv2_manifest_add_class(&p.m, names[i], err);
        if (rc == 0) rc = dv2_manifest_write(&p.m, o->out, err);
    }
out:
    dv2_pack_pipe_free(pipe); /* joins the workers before their contexts go */
    dv2_pack_item_free(&item);
    if (p.w) {
        dv2_shard_writer_free(p.w);
        if (p.af_open) dv2_afile_abort(&p.af);
    }
    for (int i = 0; p.cctx && i < p.nthreads; i++) ZSTD_freeCCtx(p.cctx[i]);
    free(p.cctx);
    dv2_idlist_free(&sel);
    free(lab);
    free(p.ids.slot);
    free(p.resume_ids);
    dv2_pack_src_close(src);
    dv2_manifest_free(&p.m);
    dv2_lock_release(&lock);
    if (rc < 0 && created) rmdir(o->out); /* only if nothing is left in it */
    return rc;
}
