/* embed.c — the embedding pipeline (see embed.h).
 *
 * Threads and hand-offs:
 *   loader (1 thread)   reads records in input order, skips resumed ids,
 *                        copies the encoded bytes into the next free batch
 *                        slot and publishes it for decoding;
 *   decoders (N)        claim single images of the oldest slot being decoded,
 *                        decode + evaluation transform into the slot's pixel
 *                        buffer;
 *   caller's thread     takes slots in order once fully decoded, runs the
 *                        extractor (itself multi-threaded through OpenMP /
 *                        BLAS) and hands rows to the sink.
 * NSLOT slots rotate, so decoding of batch k+1 and k+2 overlaps the forward
 * of batch k.  One mutex and one condition variable guard the slot states;
 * the work items (an image decode, a forward) are milliseconds long, so
 * contention is irrelevant. */
#include "embed/embed.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/afile.h"
#include "image/image.h"
#include "image/resize.h"

#define NSLOT 3

/* ---- pixel baseline ------------------------------------------------------ */

static int pixels_forward(dv2_embed_model *m, float *out, float *patch, const float *img, int n,
                          dv2_error *err) {
    (void)patch;
    (void)err;
    memcpy(out, img, (size_t)n * m->dim * sizeof(float));
    return 0;
}

static void pixels_free(dv2_embed_model *m) { free(m); }

static const dv2_embed_model_ops pixels_ops = {pixels_forward, pixels_free};

int dv2_embed_model_pixels(dv2_embed_model **out, int size, dv2_error *err) {
    *out = NULL;
    if (size <= 0 || size > 4096) return dv2_error_set(err, DV2_EINVAL, "pixels: bad size %d", size);
    dv2_embed_model *m = calloc(1, sizeof *m);
    if (!m) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    m->ops = &pixels_ops;
    m->size = size;
    m->dim = (size_t)3 * size * size;
    snprintf(m->name, sizeof m->name, "pixels");
    snprintf(m->features, sizeof m->features, "pixels %dx%d normalized", size, size);
    snprintf(m->params, sizeof m->params, "model=pixels\nsize=%d\n", size);
    *out = m;
    return 0;
}

void dv2_embed_model_free(dv2_embed_model *m) {
    if (m && m->ops && m->ops->free) m->ops->free(m);
}

void dv2_embed_l2_normalize(float *rows, size_t n, size_t dim) {
    for (size_t i = 0; i < n; i++) {
        float *r = rows + i * dim;
        double s = 0;
        for (size_t j = 0; j < dim; j++) s += (double)r[j] * r[j];
        if (s > 0) {
            float inv = (float)(1.0 / sqrt(s));
            for (size_t j = 0; j < dim; j++) r[j] *= inv;
        }
    }
}

int dv2_embed_params(dv2_matrix_info *info, const dv2_embed_model *m, const dv2_embed_cfg *cfg,
                     dv2_error *err) {
    size_t have = strlen(info->params), add = strlen(m->params);
    if (have + add >= sizeof info->params)
        return dv2_error_set(err, DV2_EINVAL, "embed: the row description does not fit the header");
    memcpy(info->params + have, m->params, add + 1);
    /* The evaluation transform itself is named so that a later change of it
     * refuses to extend matrices made with the old one. */
    if (dv2_matrix_params_add(info, "resize", "%d", cfg->resize) ||
        dv2_matrix_params_add(info, "transform", "%s",
                              m->transform == DV2_EMBED_SQUARE  ? "bilinear-antialias square imagenet-mean-std"
                              : m->transform == DV2_EMBED_SHORT ? "bilinear-antialias short-side imagenet-mean-std"
                                                                : "bicubic-antialias center-crop imagenet-mean-std") ||
        dv2_matrix_params_add(info, "normalize", "%d", cfg->normalize ? 1 : 0) ||
        dv2_matrix_params_add(info, "dtype", "%s", info->dtype == DV2_MATRIX_F16 ? "f16" : "f32"))
        return dv2_error_set(err, DV2_EINVAL, "embed: the row description does not fit the header");
    return 0;
}

/* ---- inputs ---------------------------------------------------------------- */

static int has_suffix_ci(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    if (n < k) return 0;
    for (size_t i = 0; i < k; i++) {
        char a = s[n - k + i], b = suf[i];
        if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
        if (a != b) return 0;
    }
    return 1;
}

static int is_image_name(const char *n) {
    static const char *const ext[] = {".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pnm", ".webp",
                                      ".gif", ".bmp", ".tif", ".tiff"};
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (has_suffix_ci(n, ext[i])) return 1;
    return 0;
}

/* What a file that is not a shard looks like, from its first bytes; NULL
 * when it may be a shard (zstd) or is unknown. */
static const char *sniff_foreign(const uint8_t *b, long n) {
    if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return "a JPEG image";
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return "a PNG image";
    if (n >= 3 && b[0] == 'P' && b[1] >= '1' && b[1] <= '6' && (b[2] == '\n' || b[2] == ' ' || b[2] == '\r' || b[2] == '\t'))
        return "a PNM image";
    if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4)) return "a WebP image";
    if (n >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6))) return "a GIF image";
    if (n >= 262 && !memcmp(b + 257, "ustar", 5)) return "a tar archive";
    if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b) return "a gzip file (a .tar.gz?)";
    if (n >= 4 && b[0] == 0 && b[1] == 0 && b[2] == 0x08 && (b[3] == 1 || b[3] == 3)) return "an IDX file";
    return NULL;
}

/* "photos/" -> "photos.ds", "x.tar" -> "x.ds": the dataset name a hint suggests. */
static void suggest_name(char *out, size_t n, const char *path) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", path);
    size_t k = strlen(tmp);
    while (k > 1 && tmp[k - 1] == '/') tmp[--k] = 0;
    const char *b = strrchr(tmp, '/');
    b = b ? b + 1 : tmp;
    char stem[256];
    const char *src = *b ? b : "images";
    size_t sl = strlen(src) < sizeof stem - 1 ? strlen(src) : sizeof stem - 1; /* truncated, on purpose */
    memcpy(stem, src, sl);
    stem[sl] = 0;
    char *dot = strchr(stem + (stem[0] == '.'), '.');
    if (dot && dot != stem) *dot = 0;
    snprintf(out, n, "%s.ds", stem);
}

static int check_one_input(const char *path, uint64_t *count, dv2_error *err) {
    *count = DV2_DATASET_UNKNOWN;
    if (!strcmp(path, "-")) return 0;
    struct stat st;
    const char *what = NULL;
    char ds[300];
    suggest_name(ds, sizeof ds, path);
    int have = stat(path, &st) == 0;
    if (have && S_ISDIR(st.st_mode)) {
        size_t n = strlen(path) + sizeof "/" DV2_MANIFEST_NAME;
        char *man = malloc(n);
        if (!man) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
        snprintf(man, n, "%s/%s", path, DV2_MANIFEST_NAME);
        int has_manifest = access(man, F_OK) == 0;
        free(man);
        if (!has_manifest) {
            int images = 0, shards = 0;
            DIR *d = opendir(path);
            struct dirent *e;
            while (d && (e = readdir(d)) != NULL) {
                images += is_image_name(e->d_name) || has_suffix_ci(e->d_name, ".tar");
                shards += has_suffix_ci(e->d_name, ".dv2s");
            }
            if (d) closedir(d);
            if (images && !shards)
                what = "a directory of images, not a dataset";
        }
    } else if (have && S_ISREG(st.st_mode)) {
        uint8_t b[512];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        long got = fd >= 0 ? dv2_read_full(fd, b, sizeof b) : -1;
        if (fd >= 0) close(fd);
        what = got > 0 ? sniff_foreign(b, got) : NULL;
    }
    if (what)
        return dv2_error_set(err, DV2_EINVAL,
                             "%s: %s: dv2-embed reads datasets and shards; pack it first: "
                             "dv2-pack -o %s %s",
                             path, what, ds, path);
    dv2_dataset *d = NULL;
    int rc = dv2_dataset_open(&d, path, err);
    if (rc) return rc;
    *count = dv2_dataset_count(d);
    dv2_dataset_close(d);
    return 0;
}

int dv2_embed_check_inputs(const char *const *inputs, int n, uint64_t *total, dv2_error *err) {
    *total = 0;
    for (int i = 0; i < n; i++) {
        uint64_t c;
        int rc = check_one_input(inputs[i], &c, err);
        if (rc) return rc;
        if (c == DV2_DATASET_UNKNOWN || *total == DV2_DATASET_UNKNOWN) *total = DV2_DATASET_UNKNOWN;
        else *total += c;
    }
    return 0;
}

void dv2_embed_cfg_default(dv2_embed_cfg *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->resize = 256;
    cfg->crop = 224;
    cfg->batch = 32;
    cfg->threads = 1;
}

/* ---- pipeline state ------------------------------------------------------ */

enum { SLOT_FREE, SLOT_DECODING, SLOT_READY };

typedef struct slot {
    int state;
    uint64_t seq;
    size_t n, next, done;
    uint64_t *ids;
    int32_t *labels;
    size_t *off, *len, *key_off; /* into arena */
    uint8_t *arena;
    size_t arena_len, arena_cap;
    char **msg;                  /* per item: NULL if decoded, else the error */
    float *pix;                  /* batch x 3 x S x S */
    float **vpix;                /* DV2_EMBED_SHORT: per item (3, vh, vw), malloc'd */
    int *vw, *vh;
    uint64_t bytes;
} slot;

typedef struct pipe_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot slots[NSLOT];
    int batch, size, resize, transform;
    size_t pix_per;              /* 3*S*S */
    const char *const *inputs;
    int ninputs;
    const dv2_embed_io *io;
    int loader_done;             /* no more slots will be published */
    uint64_t published;          /* slots published so far */
    int stop;                    /* error or cancellation: everyone leaves */
    int err_code;
    dv2_error err;
    uint64_t records, skipped;
} pipe_state;

static void fail(pipe_state *ps, int code, const dv2_error *e) {
    pthread_mutex_lock(&ps->mu);
    if (!ps->err_code) {
        ps->err_code = code;
        if (e) ps->err = *e;
        else dv2_error_set(&ps->err, code, "%s", dv2_status_str(code));
    }
    ps->stop = 1;
    pthread_cond_broadcast(&ps->cv);
    pthread_mutex_unlock(&ps->mu);
}

static int slot_alloc(slot *s, int batch, size_t pix_per) {
    memset(s, 0, sizeof *s);
    s->ids = calloc((size_t)batch, sizeof *s->ids);
    s->labels = calloc((size_t)batch, sizeof *s->labels);
    s->off = calloc((size_t)batch, sizeof *s->off);
    s->len = calloc((size_t)batch, sizeof *s->len);
    s->key_off = calloc((size_t)batch, sizeof *s->key_off);
    s->msg = calloc((size_t)batch, sizeof *s->msg);
    s->pix = dv2_malloc_array((size_t)batch, pix_per * sizeof(float));
    s->vpix = calloc((size_t)batch, sizeof *s->vpix);
    s->vw = calloc((size_t)batch, sizeof *s->vw);
    s->vh = calloc((size_t)batch, sizeof *s->vh);
    return s->ids && s->labels && s->off && s->len && s->key_off && s->msg && s->pix && s->vpix && s->vw && s->vh
               ? 0 : DV2_ENOMEM;
}

static void slot_free(slot *s, int batch) {
    if (s->msg)
        for (int i = 0; i < batch; i++) free(s->msg[i]);
    if (s->vpix)
        for (int i = 0; i < batch; i++) free(s->vpix[i]);
    free(s->vpix); free(s->vw); free(s->vh);
    free(s->ids); free(s->labels); free(s->off); free(s->len); free(s->key_off);
    free(s->msg); free(s->pix); free(s->arena);
}

static int arena_put(slot *s, const void *p, size_t n, size_t *off) {
    if (s->arena_len + n > s->arena_cap) {
        size_t cap = s->arena_cap ? s->arena_cap : 1 << 20;
        while (cap < s->arena_len + n) cap *= 2;
        uint8_t *a = realloc(s->arena, cap);
        if (!a) return DV2_ENOMEM;
        s->arena = a;
        s->arena_cap = cap;
    }
    memcpy(s->arena + s->arena_len, p, n);
    *off = s->arena_len;
    s->arena_len += n;
    return 0;
}

static int skip_id(const dv2_embed_io *io, uint64_t id) {
    size_t lo = 0, hi = io->nskip;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (io->skip_ids[mid] < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < io->nskip && io->skip_ids[lo] == id;
}

/* Waits for the slot of sequence number seq to be free; returns it or NULL when stopping. */
static slot *loader_take(pipe_state *ps, uint64_t seq) {
    slot *s = &ps->slots[seq % NSLOT];
    pthread_mutex_lock(&ps->mu);
    while (!ps->stop && s->state != SLOT_FREE) pthread_cond_wait(&ps->cv, &ps->mu);
    int stop = ps->stop;
    if (!stop) {
        for (size_t i = 0; i < s->n; i++) {
            free(s->msg[i]);
            s->msg[i] = NULL;
            free(s->vpix[i]);
            s->vpix[i] = NULL;
        }
        s->n = s->next = s->done = 0;
        s->arena_len = 0;
        s->bytes = 0;
        s->seq = seq;
    }
    pthread_mutex_unlock(&ps->mu);
    return stop ? NULL : s;
}

static void loader_publish(pipe_state *ps, slot *s) {
    pthread_mutex_lock(&ps->mu);
    s->state = SLOT_DECODING;
    ps->published++;
    pthread_cond_broadcast(&ps->cv);
    pthread_mutex_unlock(&ps->mu);
}

static void *loader_main(void *arg) {
    pipe_state *ps = arg;
    uint64_t seq = 0;
    slot *s = NULL;
    dv2_error err;
    dv2_error_clear(&err);
    int rc = 0;
    for (int k = 0; k < ps->ninputs && !rc; k++) {
        dv2_dataset *ds = NULL;
        if ((rc = dv2_dataset_open(&ds, ps->inputs[k], &err))) break;
        dv2_record rec;
        int r;
        while ((r = dv2_dataset_next(ds, &rec, &err)) == 1) {
            pthread_mutex_lock(&ps->mu);
            ps->records++;
            int stop = ps->stop;
            pthread_mutex_unlock(&ps->mu);
            if (stop) break;
            if (ps->io->nskip && skip_id(ps->io, rec.id)) {
                pthread_mutex_lock(&ps->mu);
                ps->skipped++;
                pthread_mutex_unlock(&ps->mu);
                continue;
            }
            if (!s && !(s = loader_take(ps, seq))) break;
            size_t i = s->n;
            s->ids[i] = rec.id;
            s->labels[i] = rec.label;
            if (arena_put(s, rec.data, rec.size, &s->off[i]) ||
                arena_put(s, rec.key, strlen(rec.key) + 1, &s->key_off[i])) {
                r = dv2_error_set(&err, DV2_ENOMEM, "out of memory for a batch of images");
                break;
            }
            s->len[i] = rec.size;
            s->bytes += rec.size;
            s->n++;
            if (s->n == (size_t)ps->batch) {
                loader_publish(ps, s);
                s = NULL;
                seq++;
            }
        }
        dv2_dataset_close(ds);
        if (r < 0) rc = r;
        pthread_mutex_lock(&ps->mu);
        int stop = ps->stop;
        pthread_mutex_unlock(&ps->mu);
        if (stop) break;
    }
    if (rc) fail(ps, rc, &err);
    else if (s && s->n) loader_publish(ps, s);
    pthread_mutex_lock(&ps->mu);
    ps->loader_done = 1;
    pthread_cond_broadcast(&ps->cv);
    pthread_mutex_unlock(&ps->mu);
    return NULL;
}

static void *decoder_main(void *arg) {
    pipe_state *ps = arg;
    dv2_image img, tmp;
    dv2_image_init(&img);
    dv2_image_init(&tmp);
    pthread_mutex_lock(&ps->mu);
    for (;;) {
        slot *s = NULL;
        for (int k = 0; k < NSLOT; k++) {
            slot *c = &ps->slots[k];
            if (c->state == SLOT_DECODING && c->next < c->n && (!s || c->seq < s->seq)) s = c;
        }
        if (!s) {
            /* Nothing to claim: leave when nothing more can be published. */
            if (ps->stop || ps->loader_done) break;
            pthread_cond_wait(&ps->cv, &ps->mu);
            continue;
        }
        size_t i = s->next++;
        pthread_mutex_unlock(&ps->mu);

        dv2_error e;
        int rc = dv2_image_decode(&img, s->arena + s->off[i], s->len[i], &e);
        float *px = s->pix + i * ps->pix_per;
        if (!rc && ps->transform == DV2_EMBED_SHORT) {
            int rw, rh;
            dv2_resize_short_side(&rw, &rh, img.w, img.h, ps->size);
            if (rw < 1 || rh < 1 || rw > DV2_IMAGE_MAX_SIDE || rh > DV2_IMAGE_MAX_SIDE)
                rc = dv2_error_set(&e, DV2_EINVAL, "%dx%d image resizes to %dx%d", img.w, img.h, rw, rh);
            if (!rc) rc = dv2_resize_bilinear(&tmp, &img, rw, rh, &e);
            float *v = rc ? NULL : dv2_malloc_array((size_t)3 * rw * rh, sizeof(float));
            if (!rc && !v) rc = dv2_error_set(&e, DV2_ENOMEM, "out of memory for a %dx%d image", rw, rh);
            if (!rc) {
                dv2_resize_to_tensor(v, &tmp);
                s->vpix[i] = v; /* item i is this thread's alone until done */
                s->vw[i] = rw;
                s->vh[i] = rh;
            }
        } else if (!rc)
            rc = ps->transform == DV2_EMBED_SQUARE ? dv2_resize_square_transform(px, &img, ps->size, &tmp, &e)
                                                   : dv2_resize_eval_transform(px, &img, ps->resize, ps->size, &tmp, &e);
        char *msg = NULL;
        if (rc) {
            msg = strdup(e.msg);
            if (!msg) msg = strdup("undecodable");
        }

        pthread_mutex_lock(&ps->mu);
        s->msg[i] = msg;
        if (rc && !msg) { /* strdup failed twice: record as a fatal error */
            ps->stop = 1;
            if (!ps->err_code) ps->err_code = dv2_error_set(&ps->err, DV2_ENOMEM, "out of memory");
        }
        if (++s->done == s->n) {
            s->state = SLOT_READY;
        }
        pthread_cond_broadcast(&ps->cv);
    }
    pthread_mutex_unlock(&ps->mu);
    dv2_image_free(&img);
    dv2_image_free(&tmp);
    return NULL;
}

/* ---- the caller's side: forward and sink --------------------------------- */

/* DV2_EMBED_SHORT: the k items of s have their own sizes; the items of one
 * size go through one forward together (photographs from one camera share
 * theirs), the rest one by one.  Items are sorted by size (then position),
 * so the grouping costs k log k; rows are written at their items' places
 * in vecs. */
typedef struct {
    int h, w;
    size_t i;
} shaped;

static int shaped_cmp(const void *pa, const void *pb) {
    const shaped *a = pa, *b = pb;
    if (a->h != b->h) return a->h < b->h ? -1 : 1;
    if (a->w != b->w) return a->w < b->w ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

static int forward_by_shape(dv2_embed_model *m, float *vecs, const slot *s, size_t k, dv2_error *err) {
    shaped *ord = dv2_malloc_array(k ? k : 1, sizeof *ord);
    if (!ord) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    for (size_t i = 0; i < k; i++) ord[i] = (shaped){s->vh[i], s->vw[i], i};
    qsort(ord, k, sizeof *ord, shaped_cmp);
    float *pix = NULL, *out = NULL;
    size_t pix_cap = 0, out_cap = 0;
    int rc = 0;
    for (size_t a = 0, g; a < k && !rc; a += g) {
        int h = ord[a].h, w = ord[a].w;
        for (g = 1; a + g < k && ord[a + g].h == h && ord[a + g].w == w; g++) {}
        if (g == 1) {
            rc = m->forward_hw(m, vecs + ord[a].i * m->dim, s->vpix[ord[a].i], 1, h, w, err);
            continue;
        }
        size_t per = (size_t)3 * w * h;
        if (g * per > pix_cap || g * m->dim > out_cap) {
            free(pix);
            free(out);
            pix_cap = g * per;
            out_cap = g * m->dim;
            pix = dv2_malloc_array(pix_cap, sizeof(float));
            out = dv2_malloc_array(out_cap, sizeof(float));
            if (!pix || !out) {
                rc = dv2_error_set(err, DV2_ENOMEM, "out of memory for %zu images of %dx%d", g, w, h);
                break;
            }
        }
        for (size_t q = 0; q < g; q++) memcpy(pix + q * per, s->vpix[ord[a + q].i], per * sizeof(float));
        rc = m->forward_hw(m, out, pix, (int)g, h, w, err);
        for (size_t q = 0; q < g && !rc; q++)
            memcpy(vecs + ord[a + q].i * m->dim, out + q * m->dim, m->dim * sizeof(float));
    }
    free(ord);
    free(pix);
    free(out);
    return rc;
}

static int consume(pipe_state *ps, dv2_embed_model *m, const dv2_embed_cfg *cfg, slot *s, float *vecs,
                   float *patch, const char **keys, dv2_embed_stats *st, dv2_error *err) {
    const dv2_embed_io *io = ps->io;
    /* Compact the decoded images to the front, reporting the bad ones in order. */
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        const char *key = (const char *)s->arena + s->key_off[i];
        if (s->msg[i]) {
            st->bad++;
            char line[1400];
            snprintf(line, sizeof line, "%s (id %016llx): %s", key, (unsigned long long)s->ids[i], s->msg[i]);
            if (cfg->strict) return dv2_error_set(err, DV2_ECORRUPT, "%s", line);
            if (io->warn) io->warn(io->ctx, line);
            continue;
        }
        if (k != i) {
            s->ids[k] = s->ids[i];
            s->labels[k] = s->labels[i];
            if (ps->transform == DV2_EMBED_SHORT) { /* swap, so that every buffer is freed once */
                float *t = s->vpix[k];
                s->vpix[k] = s->vpix[i];
                s->vpix[i] = t;
                s->vw[k] = s->vw[i];
                s->vh[k] = s->vh[i];
            } else
                memmove(s->pix + k * ps->pix_per, s->pix + i * ps->pix_per, ps->pix_per * sizeof(float));
        }
        keys[k] = key;
        k++;
    }
    st->bytes += s->bytes;
    if (k == 0) return 0;
    int rc = 0;
    if (ps->transform == DV2_EMBED_SHORT)
        rc = forward_by_shape(m, vecs, s, k, err);
    else
        rc = m->ops->forward(m, vecs, cfg->want_patch ? patch : NULL, s->pix, (int)k, err);
    if (rc) return rc;
    if (cfg->normalize) dv2_embed_l2_normalize(vecs, k, m->dim);
    /* A non-finite feature (damaged weights, an overflow) would pass through
     * every later stage as NaN distances: stop at the first such record. */
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < m->dim; j++)
            if (!isfinite(vecs[i * m->dim + j]))
                return dv2_error_set(err, DV2_ECORRUPT,
                                     "%s (id %016llx): the model gave a non-finite feature "
                                     "(%g at index %zu)",
                                     keys[i], (unsigned long long)s->ids[i],
                                     (double)vecs[i * m->dim + j], j);
    dv2_embed_batch b = {k, s->ids, s->labels, keys, vecs, ps->transform == DV2_EMBED_SHORT ? NULL : s->pix,
                         cfg->want_patch ? patch : NULL};
    if ((rc = io->sink(io->ctx, &b, err))) return rc;
    st->embedded += k;
    return 0;
}

int dv2_embed_run(dv2_embed_model *m, const dv2_embed_cfg *cfg, const char *const *inputs,
                  int ninputs, const dv2_embed_io *io, dv2_embed_stats *stats, dv2_error *err) {
    dv2_embed_stats st = {0};
    if (stats) *stats = st;
    if (cfg->batch < 1 || cfg->batch > 65536 || cfg->threads < 1 || cfg->threads > 1024 ||
        cfg->crop != m->size || !io->sink)
        return dv2_error_set(err, DV2_EINVAL, "embed: bad configuration (batch %d, threads %d, crop %d, model input %d)",
                             cfg->batch, cfg->threads, cfg->crop, m->size);
    if (m->transform == DV2_EMBED_SHORT && (!m->forward_hw || cfg->want_patch))
        return dv2_error_set(err, DV2_EINVAL, "embed: this model cannot take images of their own size");
    if (cfg->want_patch && !m->npatch)
        return dv2_error_set(err, DV2_EINVAL, "embed: patch features need a model");
    pipe_state *ps = calloc(1, sizeof *ps);
    float *vecs = dv2_malloc_array((size_t)cfg->batch, m->dim * sizeof(float));
    float *patch = cfg->want_patch ? dv2_malloc_array((size_t)cfg->batch * m->npatch, (size_t)m->patch_dim * sizeof(float)) : NULL;
    const char **keys = calloc((size_t)cfg->batch, sizeof *keys);
    pthread_t *dec = calloc((size_t)cfg->threads, sizeof *dec);
    int rc = 0, nslots = 0, ndec = 0, loader = 0;
    if (!ps || !vecs || !keys || !dec || (cfg->want_patch && !patch)) {
        rc = dv2_error_set(err, DV2_ENOMEM, "embed: out of memory for batch buffers");
        goto out;
    }
    pthread_mutex_init(&ps->mu, NULL);
    pthread_cond_init(&ps->cv, NULL);
    ps->batch = cfg->batch;
    ps->size = cfg->crop;
    ps->resize = cfg->resize;
    ps->transform = m->transform;
    ps->pix_per = (size_t)3 * cfg->crop * cfg->crop;
    ps->inputs = inputs;
    ps->ninputs = ninputs;
    ps->io = io;
    for (; nslots < NSLOT; nslots++)
        if (slot_alloc(&ps->slots[nslots], cfg->batch, ps->pix_per)) {
            nslots++;
            rc = dv2_error_set(err, DV2_ENOMEM, "embed: out of memory for batch buffers");
            goto out;
        }
    while (ndec < cfg->threads && pthread_create(&dec[ndec], NULL, decoder_main, ps) == 0) ndec++;
    pthread_t lt;
    if (ndec == 0 || pthread_create(&lt, NULL, loader_main, ps)) {
        rc = dv2_error_set(err, DV2_ENOMEM, "embed: cannot start threads");
        fail(ps, rc, err);
        goto join;
    }
    loader = 1;

    for (uint64_t seq = 0;; seq++) {
        slot *s = &ps->slots[seq % NSLOT];
        pthread_mutex_lock(&ps->mu);
        while (!ps->stop && !(s->state == SLOT_READY && s->seq == seq) && !(ps->loader_done && ps->published <= seq))
            pthread_cond_wait(&ps->cv, &ps->mu);
        int go = !ps->stop && s->state == SLOT_READY && s->seq == seq;
        pthread_mutex_unlock(&ps->mu);
        if (!go) break;
        dv2_error e;
        dv2_error_clear(&e);
        int r = consume(ps, m, cfg, s, vecs, patch, keys, &st, &e);
        if (r) {
            fail(ps, r, &e);
            break;
        }
        pthread_mutex_lock(&ps->mu);
        st.records = ps->records;
        st.skipped = ps->skipped;
        s->state = SLOT_FREE;
        pthread_cond_broadcast(&ps->cv);
        pthread_mutex_unlock(&ps->mu);
        if (io->progress) io->progress(io->ctx, st.embedded + st.bad, st.bytes);
    }
join:
    pthread_mutex_lock(&ps->mu);
    ps->stop = 1; /* normal end too: wake and release every thread */
    pthread_cond_broadcast(&ps->cv);
    pthread_mutex_unlock(&ps->mu);
    if (loader) pthread_join(lt, NULL);
    for (int i = 0; i < ndec; i++) pthread_join(dec[i], NULL);
    st.records = ps->records;
    st.skipped = ps->skipped;
    if (ps->err_code && !rc) {
        rc = ps->err_code;
        if (err) *err = ps->err;
    }
    pthread_cond_destroy(&ps->cv);
    pthread_mutex_destroy(&ps->mu);
out:
    if (ps)
        for (int i = 0; i < nslots; i++) slot_free(&ps->slots[i], cfg->batch);
    free(ps);
    free(vecs);
    free(patch);
    free(keys);
    free(dec);
    if (stats) *stats = st;
    return rc;
}

/* ---- resume ---------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int dv2_embed_done_ids(const char *path, uint64_t rows, uint64_t **ids, size_t *n, dv2_error *err) {
    *ids = NULL;
    *n = 0;
    if (rows == 0) return 0;
    dv2_matrix_reader *r;
    int rc = dv2_matrix_reader_open(&r, path, err);
    if (rc) return rc;
    if (!(*ids = dv2_malloc_array((size_t)rows, sizeof **ids))) rc = dv2_error_set(err, DV2_ENOMEM, "out of memory");
    while (!rc && *n < rows) {
        size_t want = rows - *n < 65536 ? (size_t)(rows - *n) : 65536;
        int64_t got = dv2_matrix_reader_read(r, *ids + *n, NULL, NULL, want, err);
        if (got < 0) rc = (int)got;
        else if (got == 0) break;
        else *n += (size_t)got;
    }
    dv2_matrix_reader_close(r);
    if (rc) {
        free(*ids);
        *ids = NULL;
        *n = 0;
        return rc;
    }
    qsort(*ids, *n, sizeof **ids, cmp_u64);
    return 0;
}
