/* shard.c — reading dv2 shards (format in shard.h and man/dv2-shard.5):
 * frame walking on a byte stream without seeking, record decoding and
 * checking, the trailing index for random access.
 *
 * Frames are delimited by parsing the zstd frame header and block headers
 * ourselves (RFC 8878 sections 3.1.1.1-3.1.1.2), so a pipe can be read frame
 * by frame and every length is bounded before it sizes an allocation. */
#include "format/shard.h"
#include "format/shard_fmt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "core/afile.h"
#include "core/hash.h"

#define IBUF_SIZE (256 * 1024)

struct dv2_shard_reader {
    int fd, own_fd, seekable, done;
    char *name;
    uint8_t *ibuf;          /* buffered input for sequential reading */
    size_t ipos, ilen;
    uint64_t off;           /* stream offset of the next unread byte */
    uint64_t file_size;
    dv2_recbuf buf;         /* sequential reading */
    dv2_shard_entry *seen;  /* entries of the records read so far */
    uint64_t nseen, seen_cap;
    dv2_shard_entry *index; /* loaded index (random access) */
    uint64_t nindex;
    int index_loaded;
    const char *ctx;        /* "name: record N at offset X" while reading a record */
};

void dv2_recbuf_init(dv2_recbuf *b) { memset(b, 0, sizeof *b); }

void dv2_recbuf_free(dv2_recbuf *b) {
    if (!b) return;
    free(b->raw);
    free(b->frame);
    ZSTD_freeDCtx((ZSTD_DCtx *)b->dctx);
    memset(b, 0, sizeof *b);
}

int dv2_shard_key_valid(const char *key) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++, n++)
        if (*p < 0x20 || *p == 0x7f) return DV2_EINVAL;
    return (n >= 1 && n <= DV2_SHARD_MAX_KEY) ? 0 : DV2_EINVAL;
}

static int grow(uint8_t **p, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c = c > SIZE_MAX / 2 ? need : c * 2;
    uint8_t *q = realloc(*p, c);
    if (!q) return DV2_ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

/* ---- decoding one record frame ---------------------------------------------- */

/* Decompresses a whole frame into buf->raw, leaving room after the record
 * for NUL-terminated copies of key and metadata.  Small records are decoded
 * in one call; above DECODE_STEP the buffer grows with the bytes actually
 * produced, so a frame header that claims a size its data does not have
 * cannot make us allocate it. */
#define DECODE_STEP ((size_t)1 << 20)
#define DECODE_EXTRA ((size_t)DV2_SHARD_MAX_KEY + DV2_SHARD_MAX_META + 2)
static int decompress(dv2_recbuf *buf, const uint8_t *frame, size_t n, uint64_t cs, size_t *got,
                      const char *what, dv2_error *err) {
    ZSTD_DCtx *d = (ZSTD_DCtx *)buf->dctx;
    if (cs <= DECODE_STEP) {
        if (grow(&buf->raw, &buf->raw_cap, (size_t)cs + DECODE_EXTRA))
            return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", what);
        *got = ZSTD_decompressDCtx(d, buf->raw, (size_t)cs, frame, n);
        if (ZSTD_isError(*got))
            return dv2_error_set(err, DV2_ECORRUPT, "%s: zstd: %s", what, ZSTD_getErrorName(*got));
        return 0;
    }
    ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
    ZSTD_inBuffer in = {frame, n, 0};
    size_t limit = DECODE_STEP, have = 0;
    for (;;) {
        if (grow(&buf->raw, &buf->raw_cap, limit + DECODE_EXTRA))
            return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", what);
        ZSTD_outBuffer out = {buf->raw, limit, have};
        size_t r = ZSTD_decompressStream(d, &out, &in);
        if (ZSTD_isError(r))
            return dv2_error_set(err, DV2_ECORRUPT, "%s: zstd: %s", what, ZSTD_getErrorName(r));
        have = out.pos;
        if (r == 0) break; /* frame complete */
        if (have == limit) {
            if (limit == cs)
                return dv2_error_set(err, DV2_ECORRUPT, "%s: frame holds more than its header says", what);
            limit = limit > cs / 2 ? (size_t)cs : 2 * limit;
        } else if (in.pos == in.size) {
            return dv2_error_set(err, DV2_ECORRUPT, "%s: frame ends early", what);
        }
    }
    *got = have;
    return 0;
}

int dv2_shard_decode_frame(const uint8_t *frame, size_t n, dv2_record *rec, dv2_recbuf *buf,
                           const char *what, dv2_error *err) {
    uint64_t cs;
    size_t fsize;
    int rc = dv2_shard_fmt_frame_size(frame, n, &fsize, &cs, what, err);
    if (rc < 0) return rc;
    if (fsize != n)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: %zu stray bytes after the frame", what, n - fsize);
    if (!buf->dctx && !(buf->dctx = ZSTD_createDCtx()))
        return dv2_error_set(err, DV2_ENOMEM, "%s: cannot create a zstd context", what);
    size_t got = 0;
    int rc2 = decompress(buf, frame, n, cs, &got, what, err);
    if (rc2 < 0) return rc2;
    if (got != cs)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: frame holds %zu bytes, header says %llu",
                             what, got, (unsigned long long)cs);
    const uint8_t *r = buf->raw;
    if (memcmp(r, DV2_FMT_RECORD_MAGIC, 4) != 0)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: bad record magic", what);
    uint32_t klen = dv2_fmt_get16(r + 4), mlen = dv2_fmt_get16(r + 6);
    uint64_t id = dv2_fmt_get64(r + 8);
    int32_t label = (int32_t)dv2_fmt_get32(r + 16);
    uint32_t reserved = dv2_fmt_get32(r + 20);
    uint64_t dsize = dv2_fmt_get64(r + 24);
    if (klen < 1 || klen > DV2_SHARD_MAX_KEY || dsize > DV2_SHARD_MAX_DATA || reserved != 0 ||
        label < -1 || DV2_FMT_RECORD_HEAD + (uint64_t)klen + mlen + dsize + 8 != cs)
        return dv2_error_set(err, DV2_ECORRUPT,
                             "%s: inconsistent record header (key %u, meta %u, data %llu bytes, "
                             "label %d, record %llu bytes)", what, klen, mlen,
                             (unsigned long long)dsize, (int)label, (unsigned long long)cs);
    uint64_t want = dv2_fmt_get64(r + cs - 8), have = dv2_xxh64(r, (size_t)cs - 8, 0);
    if (want != have)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: checksum mismatch (stored %016llx, computed %016llx)",
                             what, (unsigned long long)want, (unsigned long long)have);
    const uint8_t *key = r + DV2_FMT_RECORD_HEAD, *meta = key + klen;
    if (memchr(meta, 0, mlen))
        return dv2_error_set(err, DV2_ECORRUPT, "%s: NUL byte in metadata", what);
    char *kcopy = (char *)buf->raw + cs, *mcopy = kcopy + klen + 1;
    memcpy(kcopy, key, klen);
    kcopy[klen] = 0;
    if (dv2_shard_key_valid(kcopy) < 0)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: key has control characters", what);
    memcpy(mcopy, meta, mlen);
    mcopy[mlen] = 0;
    rec->id = id;
    rec->key = kcopy;
    rec->label = label;
    rec->data = meta + mlen;
    rec->size = (size_t)dsize;
    rec->meta = mlen ? mcopy : NULL;
    rec->meta_size = mlen;
    return 0;
}

/* ---- opening ------------------------------------------------------------------ */

/* Buffered read of exactly n bytes (fewer only at end of stream). */
static long rd(dv2_shard_reader *r, void *dst, size_t n) {
    size_t done = 0;
    while (done < n) {
        if (r->ipos == r->ilen) {
            if (n - done >= IBUF_SIZE) { /* large read: bypass the buffer */
                long k = dv2_read_full(r->fd, (uint8_t *)dst + done, n - done);
                if (k < 0) return -1;
                done += (size_t)k;
                r->off += (uint64_t)k;
                break;
            }
            long k = dv2_read_full(r->fd, r->ibuf, IBUF_SIZE);
            if (k < 0) return -1;
            if (k == 0) break;
            r->ipos = 0;
            r->ilen = (size_t)k;
        }
        size_t c = r->ilen - r->ipos;
        if (c > n - done) c = n - done;
        memcpy((uint8_t *)dst + done, r->ibuf + r->ipos, c);
        r->ipos += c;
        done += c;
        r->off += c;
    }
    return (long)done;
}

static int rd_exact(dv2_shard_reader *r, void *dst, size_t n, const char *what, dv2_error *err) {
    uint64_t at = r->off;
    long k = rd(r, dst, n);
    const char *who = r->ctx ? r->ctx : r->name;
    if (k < 0) return dv2_error_errno(err, DV2_EIO, errno, "%s: read error at offset %llu", who,
                                      (unsigned long long)at);
    if ((size_t)k < n)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: truncated %s at offset %llu (%ld of %zu bytes)",
                             who, what, (unsigned long long)at, k, n);
    return 0;
}

int dv2_shard_open_fd(dv2_shard_reader **out, int fd, const char *name, const void *prefix,
                      size_t nprefix, dv2_error *err) {
    *out = NULL;
    dv2_shard_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->name = strdup(name)) || !(r->ibuf = malloc(IBUF_SIZE))) {
        if (r) { free(r->name); free(r); }
        return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", name);
    }
    r->fd = fd;
    dv2_recbuf_init(&r->buf);
    struct stat st;
    if (nprefix == 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && lseek(fd, 0, SEEK_CUR) == 0) {
        r->seekable = 1;
        r->file_size = (uint64_t)st.st_size;
    }
    if (nprefix > IBUF_SIZE) nprefix = IBUF_SIZE;
    if (nprefix) memcpy(r->ibuf, prefix, nprefix);
    r->ilen = nprefix;
    uint8_t h[DV2_FMT_HEADER_FRAME];
    int rc = rd_exact(r, h, 8, "header", err);
    if (rc == 0 && (dv2_fmt_get32(h) != DV2_FMT_SKIP_HEADER || memcmp(h + 4, "\x10\0\0\0", 4) != 0))
        rc = dv2_error_set(err, DV2_ECORRUPT, "%s: not a dv2 shard (bad header frame)", name);
    if (rc == 0) rc = rd_exact(r, h + 8, DV2_FMT_HEADER_FRAME - 8, "header", err);
    if (rc == 0 && memcmp(h + 8, DV2_FMT_SHARD_MAGIC, 8) != 0)
        rc = dv2_error_set(err, DV2_ECORRUPT, "%s: not a dv2 shard (bad magic)", name);
    if (rc == 0 && dv2_fmt_get32(h + 16) != DV2_SHARD_VERSION)
        rc = dv2_error_set(err, DV2_EUNSUPPORTED, "%s: shard format version %u (this build reads %d)",
                           name, dv2_fmt_get32(h + 16), DV2_SHARD_VERSION);
    if (rc == 0 && dv2_fmt_get32(h + 20) != 0)
        rc = dv2_error_set(err, DV2_EUNSUPPORTED, "%s: unknown header flags %#x", name,
                           dv2_fmt_get32(h + 20));
    if (rc < 0) { dv2_shard_close(r); return rc; }
    *out = r;
    return 0;
}

int dv2_shard_open(dv2_shard_reader **out, const char *path, dv2_error *err) {
    *out = NULL;
    if (strcmp(path, "-") == 0) return dv2_shard_open_fd(out, 0, "(stdin)", NULL, 0, err);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dv2_error_errno(err, DV2_EIO, errno, "%s", path);
    int rc = dv2_shard_open_fd(out, fd, path, NULL, 0, err);
    if (rc < 0) { close(fd); return rc; }
    (*out)->own_fd = 1;
    return 0;
}

void dv2_shard_close(dv2_shard_reader *r) {
    if (!r) return;
    if (r->own_fd) close(r->fd);
    dv2_recbuf_free(&r->buf);
    free(r->ibuf);
    free(r->seen);
    free(r->index);
    free(r->name);
    free(r);
}

const char *dv2_shard_name(const dv2_shard_reader *r) { return r->name; }
int dv2_shard_seekable(const dv2_shard_reader *r) { return r->seekable; }

/* ---- sequential reading ---------------------------------------------------------- */

/* Reads the rest of a zstd frame whose first 4 bytes (magic) are in
 * buf->frame, walking its header and blocks; *n = frame size. */
static int read_zstd_frame(dv2_shard_reader *r, uint64_t at, const char *what, size_t *n,
                           dv2_error *err) {
    dv2_recbuf *b = &r->buf;
    size_t len = 4;
    int rc = rd_exact(r, b->frame + 4, 1, "frame header", err);
    if (rc < 0) return rc;
    len = 5;
    size_t hsize;
    rc = dv2_shard_fmt_header_size(b->frame[4], &hsize, what, err);
    if (rc < 0) return rc;
    if ((rc = rd_exact(r, b->frame + 5, hsize - 5, "frame header", err)) < 0) return rc;
    len = hsize;
    uint64_t cs;
    if ((rc = dv2_shard_fmt_content_size(b->frame, hsize, &cs, what, err)) < 0) return rc;
    uint64_t limit = dv2_shard_fmt_frame_limit(cs);
    for (;;) {
        if (grow(&b->frame, &b->frame_cap, len + 3) < 0)
            return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", what);
        if ((rc = rd_exact(r, b->frame + len, 3, "block header", err)) < 0) return rc;
        uint32_t bh = b->frame[len] | (uint32_t)b->frame[len + 1] << 8 | (uint32_t)b->frame[len + 2] << 16;
        len += 3;
        size_t body;
        if ((rc = dv2_shard_fmt_block(bh, &body, what, err)) < 0) return rc;
        if (len + body + 4 > limit)
            return dv2_error_set(err, DV2_ECORRUPT, "%s: frame longer than its content allows", what);
        if (grow(&b->frame, &b->frame_cap, len + body + 4) < 0)
            return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", what);
        if ((rc = rd_exact(r, b->frame + len, body, "block", err)) < 0) return rc;
        len += body;
        if (bh & 1) break;
    }
    if (b->frame[4] & 0x04) { /* content checksum */
        if ((rc = rd_exact(r, b->frame + len, 4, "frame checksum", err)) < 0) return rc;
        len += 4;
    }
    (void)at;
    *n = len;
    return 0;
}

static int read_index_stream(dv2_shard_reader *r, uint64_t at, uint32_t size, dv2_error *err) {
    uint64_t want = DV2_FMT_INDEX_PAYLOAD(r->nseen);
    if (size != want)
        return dv2_error_set(err, DV2_ECORRUPT,
                             "%s: index at offset %llu has %u bytes, %llu expected for the %llu "
                             "records read", r->name, (unsigned long long)at, size,
                             (unsigned long long)want, (unsigned long long)r->nseen);
    dv2_recbuf *b = &r->buf;
    if (grow(&b->frame, &b->frame_cap, (size_t)size + 8) < 0)
        return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", r->name);
    int rc = rd_exact(r, b->frame + 8, size, "index", err);
    if (rc < 0) return rc;
    dv2_shard_entry *e = NULL;
    uint64_t n = 0;
    rc = dv2_shard_fmt_parse_index(b->frame, (size_t)size + 8, at, r->name, &e, &n, err);
    if (rc < 0) return rc;
    for (uint64_t i = 0; i < n && rc == 0; i++)
        if (e[i].offset != r->seen[i].offset || e[i].id != r->seen[i].id ||
            e[i].label != r->seen[i].label || e[i].frame_size != r->seen[i].frame_size)
            rc = dv2_error_set(err, DV2_ECORRUPT, "%s: index entry %llu does not match record %llu "
                               "at offset %llu", r->name, (unsigned long long)i,
                               (unsigned long long)i, (unsigned long long)r->seen[i].offset);
    free(e);
    if (rc < 0) return rc;
    uint8_t extra;
    long k = rd(r, &extra, 1);
    if (k != 0)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: data after the index at offset %llu", r->name,
                             (unsigned long long)(r->off - (k > 0 ? 1 : 0)));
    r->done = 1;
    return 0;
}

int dv2_shard_next(dv2_shard_reader *r, dv2_record *rec, dv2_error *err) {
    if (r->done) return 0;
    dv2_recbuf *b = &r->buf;
    uint64_t at = r->off;
    char what[512];
    snprintf(what, sizeof what, "%s: record %llu at offset %llu", r->name,
             (unsigned long long)r->nseen, (unsigned long long)at);
    if (grow(&b->frame, &b->frame_cap, 64) < 0)
        return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", r->name);
    long k = rd(r, b->frame, 4);
    if (k < 0) return dv2_error_errno(err, DV2_EIO, errno, "%s: read error", what);
    if (k == 0)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: truncated: stream ends after record %llu at "
                             "offset %llu without its index", r->name,
                             (unsigned long long)r->nseen, (unsigned long long)at);
    if (k < 4)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: truncated frame", what);
    uint32_t magic = dv2_fmt_get32(b->frame);
    if (magic == DV2_FMT_SKIP_INDEX) {
        int rc = rd_exact(r, b->frame + 4, 4, "index frame", err);
        if (rc < 0) return rc;
        rc = read_index_stream(r, at, dv2_fmt_get32(b->frame + 4), err);
        return rc < 0 ? rc : 0;
    }
    if (magic != ZSTD_MAGICNUMBER)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: not a record frame (magic %08x)", what, magic);
    size_t n = 0;
    r->ctx = what;
    int rc = read_zstd_frame(r, at, what, &n, err);
    r->ctx = NULL;
    if (rc < 0) return rc;
    if ((rc = dv2_shard_decode_frame(b->frame, n, rec, b, what, err)) < 0) return rc;
    if (r->nseen >= DV2_SHARD_MAX_RECORDS)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: too many records", what);
    if (r->nseen == r->seen_cap) {
        uint64_t c = r->seen_cap ? r->seen_cap * 2 : 1024;
        dv2_shard_entry *s = dv2_malloc_array((size_t)c, sizeof *s);
        if (!s) return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", what);
        if (r->nseen) memcpy(s, r->seen, (size_t)r->nseen * sizeof *s);
        free(r->seen);
        r->seen = s;
        r->seen_cap = c;
    }
    r->seen[r->nseen++] = (dv2_shard_entry){at, rec->id, rec->label, (uint32_t)n};
    return 1;
}

/* ---- random access ------------------------------------------------------------ */

static int pread_exact(int fd, void *dst, size_t n, uint64_t off) {
    size_t done = 0;
    while (done < n) {
        ssize_t k = pread(fd, (uint8_t *)dst + done, n - done, (off_t)(off + done));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        done += (size_t)k;
    }
    return 0;
}

int dv2_shard_load_index(dv2_shard_reader *r, dv2_error *err) {
    if (r->index_loaded) return 0;
    if (!r->seekable)
        return dv2_error_set(err, DV2_EUNSUPPORTED, "%s: not seekable: no random access", r->name);
    uint64_t S = r->file_size;
    if (S < DV2_FMT_HEADER_FRAME + DV2_FMT_INDEX_FRAME(0))
        return dv2_error_set(err, DV2_ECORRUPT, "%s: truncated (%llu bytes): no index", r->name,
                             (unsigned long long)S);
    uint8_t tail[16];
    if (pread_exact(r->fd, tail, 16, S - 16) < 0)
        return dv2_error_errno(err, DV2_EIO, errno, "%s: reading the index trailer", r->name);
    uint64_t T = dv2_fmt_get64(tail);
    if (memcmp(tail + 8, DV2_FMT_INDEX_END, 8) != 0)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: no index trailer at offset %llu (truncated or "
                             "damaged)", r->name, (unsigned long long)(S - 16));
    if (T < DV2_FMT_INDEX_FRAME(0) || T > S - DV2_FMT_HEADER_FRAME ||
        (T - DV2_FMT_INDEX_FRAME(0)) % DV2_FMT_ENTRY != 0 || T - 8 > UINT32_MAX)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: bad index size %llu in the trailer", r->name,
                             (unsigned long long)T);
    uint8_t *p = malloc((size_t)T);
    if (!p) return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory for the index", r->name);
    uint64_t at = S - T;
    int rc = 0;
    if (pread_exact(r->fd, p, (size_t)T, at) < 0)
        rc = dv2_error_errno(err, DV2_EIO, errno, "%s: reading the index", r->name);
    else if (dv2_fmt_get32(p) != DV2_FMT_SKIP_INDEX || dv2_fmt_get32(p + 4) != T - 8)
        rc = dv2_error_set(err, DV2_ECORRUPT, "%s: bad index frame at offset %llu", r->name,
                           (unsigned long long)at);
    else
        rc = dv2_shard_fmt_parse_index(p, (size_t)T, at, r->name, &r->index, &r->nindex, err);
    free(p);
    if (rc < 0) return rc;
    /* records must tile the file between header and index */
    uint64_t pos = DV2_FMT_HEADER_FRAME;
    for (uint64_t i = 0; i < r->nindex; i++) {
        if (r->index[i].offset != pos || r->index[i].frame_size < 8) {
            dv2_error_set(err, DV2_ECORRUPT, "%s: index entry %llu: bad offset %llu or frame size %u "
                          "(expected offset %llu)", r->name, (unsigned long long)i,
                          (unsigned long long)r->index[i].offset, r->index[i].frame_size,
                          (unsigned long long)pos);
            free(r->index);
            r->index = NULL;
            r->nindex = 0;
            return DV2_ECORRUPT;
        }
        pos += r->index[i].frame_size;
    }
    if (pos != at) {
        free(r->index);
        r->index = NULL;
        r->nindex = 0;
        return dv2_error_set(err, DV2_ECORRUPT, "%s: index does not cover the records (end %llu, "
                             "index at %llu)", r->name, (unsigned long long)pos, (unsigned long long)at);
    }
    r->index_loaded = 1;
    return 0;
}

uint64_t dv2_shard_count(const dv2_shard_reader *r) { return r->nindex; }
const dv2_shard_entry *dv2_shard_entries(const dv2_shard_reader *r) { return r->index; }

int dv2_shard_get(dv2_shard_reader *r, uint64_t i, dv2_record *rec, dv2_recbuf *buf, dv2_error *err) {
    if (!r->index_loaded) return dv2_error_set(err, DV2_EINVAL, "%s: index not loaded", r->name);
    if (i >= r->nindex)
        return dv2_error_set(err, DV2_EINVAL, "%s: record %llu out of range (%llu records)", r->name,
                             (unsigned long long)i, (unsigned long long)r->nindex);
    const dv2_shard_entry *e = &r->index[i];
    char what[512];
    snprintf(what, sizeof what, "%s: record %llu at offset %llu", r->name, (unsigned long long)i,
             (unsigned long long)e->offset);
    if (grow(&buf->frame, &buf->frame_cap, e->frame_size) < 0)
        return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", what);
    if (pread_exact(r->fd, buf->frame, e->frame_size, e->offset) < 0)
        return dv2_error_errno(err, DV2_EIO, errno, "%s: read error", what);
    int rc = dv2_shard_decode_frame(buf->frame, e->frame_size, rec, buf, what, err);
    if (rc < 0) return rc;
    if (rec->id != e->id || rec->label != e->label)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: id/label differ from the index", what);
    return 0;
}
