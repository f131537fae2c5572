/* shard_write.c — writing dv2 shards: the header frame, one zstd frame per
 * record (encoded by dv2_shard_encode, which callers may run in parallel),
 * and the trailing index frame.  The writer only appends to a FILE*; the
 * temporary-name-and-rename discipline belongs to the caller (lib/core/afile.h). */
#include "format/shard.h"
#include "format/shard_fmt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "core/hash.h"

struct dv2_shard_writer {
    FILE *f;
    char *name;
    int level;
    uint64_t bytes;
    dv2_shard_entry *e;
    uint64_t n, cap;
    uint8_t *frame;
    size_t frame_cap;
    ZSTD_CCtx *cctx;
};

uint64_t dv2_shard_overhead(uint64_t nrecords) {
    return DV2_FMT_HEADER_FRAME + DV2_FMT_INDEX_FRAME(nrecords);
}

static int put(dv2_shard_writer *w, const void *p, size_t n, dv2_error *err) {
    if (n && fwrite(p, 1, n, w->f) != n)
        return dv2_error_errno(err, DV2_EIO, errno, "%s: write error", w->name);
    w->bytes += n;
    return 0;
}

int dv2_shard_writer_create(dv2_shard_writer **out, FILE *f, const char *name, int level,
                            dv2_error *err) {
    *out = NULL;
    dv2_shard_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->name = strdup(name))) {
        free(w);
        return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", name);
    }
    w->f = f;
    w->level = level ? level : 3;
    uint8_t h[DV2_FMT_HEADER_FRAME];
    dv2_fmt_put32(h, DV2_FMT_SKIP_HEADER);
    dv2_fmt_put32(h + 4, 16);
    memcpy(h + 8, DV2_FMT_SHARD_MAGIC, 8);
    dv2_fmt_put32(h + 16, DV2_SHARD_VERSION);
    dv2_fmt_put32(h + 20, 0);
    int rc = put(w, h, sizeof h, err);
    if (rc < 0) { dv2_shard_writer_free(w); return rc; }
    *out = w;
    return 0;
}

void dv2_shard_writer_free(dv2_shard_writer *w) {
    if (!w) return;
    ZSTD_freeCCtx(w->cctx);
    free(w->frame);
    free(w->e);
    free(w->name);
    free(w);
}

uint64_t dv2_shard_writer_records(const dv2_shard_writer *w) { return w->n; }
uint64_t dv2_shard_writer_bytes(const dv2_shard_writer *w) { return w->bytes; }

int dv2_shard_encode(const dv2_record *rec, int level, void *cctx_arg, uint8_t **out, size_t *n,
                     size_t *cap, dv2_error *err) {
    const char *key = rec->key ? rec->key : "";
    if (dv2_shard_key_valid(key) < 0)
        return dv2_error_set(err, DV2_EINVAL, "key '%.80s': empty, longer than %d bytes or with "
                             "control characters", key, DV2_SHARD_MAX_KEY);
    size_t klen = strlen(key), mlen = rec->meta ? rec->meta_size : 0;
    if (mlen > DV2_SHARD_MAX_META || (mlen && memchr(rec->meta, 0, mlen)))
        return dv2_error_set(err, DV2_EINVAL, "%s: metadata longer than %d bytes or with NUL", key,
                             DV2_SHARD_MAX_META);
    if (rec->size > DV2_SHARD_MAX_DATA)
        return dv2_error_set(err, DV2_EINVAL, "%s: %zu bytes: larger than the record limit", key,
                             rec->size);
    if (rec->label < -1)
        return dv2_error_set(err, DV2_EINVAL, "%s: label %d (must be >= -1)", key, (int)rec->label);
    uint8_t head[DV2_FMT_RECORD_HEAD], sum[8];
    memcpy(head, DV2_FMT_RECORD_MAGIC, 4);
    dv2_fmt_put16(head + 4, (uint16_t)klen);
    dv2_fmt_put16(head + 6, (uint16_t)mlen);
    dv2_fmt_put64(head + 8, rec->id);
    dv2_fmt_put32(head + 16, (uint32_t)rec->label);
    dv2_fmt_put32(head + 20, 0);
    dv2_fmt_put64(head + 24, rec->size);
    dv2_xxh64_state hs;
    dv2_xxh64_init(&hs, 0);
    dv2_xxh64_update(&hs, head, sizeof head);
    dv2_xxh64_update(&hs, key, klen);
    if (mlen) dv2_xxh64_update(&hs, rec->meta, mlen);
    if (rec->size) dv2_xxh64_update(&hs, rec->data, rec->size);
    dv2_fmt_put64(sum, dv2_xxh64_digest(&hs));
    size_t total = sizeof head + klen + mlen + rec->size + 8, bound = ZSTD_compressBound(total);
    if (*cap < bound) {
        uint8_t *p = realloc(*out, bound);
        if (!p) return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", key);
        *out = p;
        *cap = bound;
    }
    ZSTD_CCtx *cctx = cctx_arg ? (ZSTD_CCtx *)cctx_arg : ZSTD_createCCtx();
    if (!cctx) return dv2_error_set(err, DV2_ENOMEM, "cannot create a zstd context");
    ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level ? level : 3);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0);
    ZSTD_CCtx_setPledgedSrcSize(cctx, total);
    ZSTD_outBuffer ob = {*out, *cap, 0};
    const void *parts[5] = {head, key, rec->meta, rec->data, sum};
    size_t sizes[5] = {sizeof head, klen, mlen, rec->size, 8};
    size_t r = 0;
    for (int i = 0; i < 5 && !ZSTD_isError(r); i++) {
        ZSTD_inBuffer ib = {parts[i], sizes[i], 0};
        ZSTD_EndDirective end = i == 4 ? ZSTD_e_end : ZSTD_e_continue;
        do r = ZSTD_compressStream2(cctx, &ob, &ib, end);
        while (!ZSTD_isError(r) && (end == ZSTD_e_end ? r != 0 : ib.pos < ib.size));
    }
    if (!cctx_arg) ZSTD_freeCCtx(cctx);
    if (ZSTD_isError(r))
        return dv2_error_set(err, DV2_EIO, "%s: zstd: %s", key, ZSTD_getErrorName(r));
    if (ob.pos > UINT32_MAX) return dv2_error_set(err, DV2_EINVAL, "%s: record too large", key);
    *n = ob.pos;
    return 0;
}

int dv2_shard_writer_add_frame(dv2_shard_writer *w, const uint8_t *frame, size_t n, uint64_t id,
                               int32_t label, dv2_error *err) {
    if (w->n >= DV2_SHARD_MAX_RECORDS || n > UINT32_MAX)
        return dv2_error_set(err, DV2_EINVAL, "%s: shard full", w->name);
    if (w->n == w->cap) {
        uint64_t c = w->cap ? w->cap * 2 : 1024;
        dv2_shard_entry *e = realloc(w->e, (size_t)c * sizeof *e);
        if (!e) return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", w->name);
        w->e = e;
        w->cap = c;
    }
    w->e[w->n] = (dv2_shard_entry){w->bytes, id, label, (uint32_t)n};
    int rc = put(w, frame, n, err);
    if (rc < 0) return rc;
    w->n++;
    return 0;
}

int dv2_shard_writer_add(dv2_shard_writer *w, const dv2_record *rec, dv2_error *err) {
    if (!w->cctx && !(w->cctx = ZSTD_createCCtx()))
        return dv2_error_set(err, DV2_ENOMEM, "cannot create a zstd context");
    size_t n;
    int rc = dv2_shard_encode(rec, w->level, w->cctx, &w->frame, &n, &w->frame_cap, err);
    if (rc < 0) return dv2_error_prefix(err, "%s", w->name);
    return dv2_shard_writer_add_frame(w, w->frame, n, rec->id, rec->label, err);
}

int dv2_shard_writer_finish(dv2_shard_writer *w, dv2_error *err) {
    uint64_t T = DV2_FMT_INDEX_FRAME(w->n);
    uint8_t *p = malloc((size_t)T);
    if (!p) return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory for the index", w->name);
    dv2_fmt_put32(p, DV2_FMT_SKIP_INDEX);
    dv2_fmt_put32(p + 4, (uint32_t)(T - 8));
    memcpy(p + 8, DV2_FMT_INDEX_MAGIC, 8);
    dv2_fmt_put64(p + 16, w->n);
    uint8_t *q = p + 24;
    for (uint64_t i = 0; i < w->n; i++, q += DV2_FMT_ENTRY) {
        dv2_fmt_put64(q, w->e[i].offset);
        dv2_fmt_put64(q + 8, w->e[i].id);
        dv2_fmt_put32(q + 16, (uint32_t)w->e[i].label);
        dv2_fmt_put32(q + 20, w->e[i].frame_size);
    }
    dv2_fmt_put64(q, dv2_xxh64(p + 8, (size_t)(q - (p + 8)), 0));
    dv2_fmt_put64(q + 8, T);
    memcpy(q + 16, DV2_FMT_INDEX_END, 8);
    int rc = put(w, p, (size_t)T, err);
    free(p);
    if (rc == 0 && fflush(w->f) != 0)
        rc = dv2_error_errno(err, DV2_EIO, errno, "%s: write error", w->name);
    return rc;
}
