/* shard_fmt.c — low-level pieces of the shard format shared by the reader
 * and the writer: little-endian fields, zstd frame and block header parsing
 * (RFC 8878, 3.1.1), and the index frame.  Every length read from a file is
 * checked here before anything uses it to allocate or to read further. */
#include "format/shard_fmt.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "core/hash.h"

uint16_t dv2_fmt_get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
uint32_t dv2_fmt_get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
uint64_t dv2_fmt_get64(const uint8_t *p) {
    return (uint64_t)dv2_fmt_get32(p) | (uint64_t)dv2_fmt_get32(p + 4) << 32;
}
void dv2_fmt_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
void dv2_fmt_put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
void dv2_fmt_put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

int dv2_shard_fmt_header_size(uint8_t fhd, size_t *size, const char *what, dv2_error *err) {
    unsigned fcs_flag = fhd >> 6, single = (fhd >> 5) & 1, dict = fhd & 3;
    if (fhd & 0x08)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: zstd frame header has a reserved bit set", what);
    if (dict != 0)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: zstd frame needs a dictionary", what);
    if (fcs_flag == 0 && !single)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: zstd frame without a content size", what);
    size_t fcs = fcs_flag == 0 ? 1 : (size_t)1 << fcs_flag;
    *size = 4 + 1 + (single ? 0 : 1) + fcs;
    return 0;
}

int dv2_shard_fmt_content_size(const uint8_t *p, size_t hsize, uint64_t *cs, const char *what,
                               dv2_error *err) {
    uint8_t fhd = p[4];
    size_t at = 5 + (((fhd >> 5) & 1) ? 0 : 1), n = hsize - at;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[at + i] << (8 * i);
    if (n == 2) v += 256;
    uint64_t max = DV2_FMT_RECORD_HEAD + DV2_SHARD_MAX_KEY + DV2_SHARD_MAX_META + DV2_SHARD_MAX_DATA + 8;
    if (v < DV2_FMT_RECORD_HEAD + 1 + 8 || v > max)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: record size %llu out of range", what,
                             (unsigned long long)v);
    *cs = v;
    return 0;
}

int dv2_shard_fmt_block(uint32_t bh, size_t *body, const char *what, dv2_error *err) {
    unsigned type = (bh >> 1) & 3;
    size_t size = bh >> 3;
    if (type == 3) return dv2_error_set(err, DV2_ECORRUPT, "%s: reserved zstd block type", what);
    if (size > DV2_FMT_MAX_BLOCK)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: zstd block of %zu bytes", what, size);
    *body = type == 1 ? 1 : size;
    return 0;
}

/* Most bytes a block can decode to: raw and RLE blocks say it, a compressed
 * block gives at most the block maximum. */
static uint64_t block_out_max(uint32_t bh) {
    unsigned type = (bh >> 1) & 3;
    return type == 2 ? DV2_FMT_MAX_BLOCK : (uint64_t)(bh >> 3);
}

uint64_t dv2_shard_fmt_frame_limit(uint64_t cs) { return 2 * cs + 4096; }

int dv2_shard_fmt_frame_size(const uint8_t *p, size_t n, size_t *frame_size, uint64_t *cs,
                             const char *what, dv2_error *err) {
    size_t hsize, len;
    int rc;
    if (n < 5 || dv2_fmt_get32(p) != ZSTD_MAGICNUMBER)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: not a zstd frame", what);
    if ((rc = dv2_shard_fmt_header_size(p[4], &hsize, what, err)) < 0) return rc;
    if (hsize > n) return dv2_error_set(err, DV2_ECORRUPT, "%s: truncated frame header", what);
    uint64_t c;
    if ((rc = dv2_shard_fmt_content_size(p, hsize, &c, what, err)) < 0) return rc;
    len = hsize;
    uint64_t out_max = 0;
    for (;;) {
        if (n - len < 3) return dv2_error_set(err, DV2_ECORRUPT, "%s: truncated frame", what);
        uint32_t bh = p[len] | (uint32_t)p[len + 1] << 8 | (uint32_t)p[len + 2] << 16;
        size_t body;
        if ((rc = dv2_shard_fmt_block(bh, &body, what, err)) < 0) return rc;
        len += 3;
        if (n - len < body) return dv2_error_set(err, DV2_ECORRUPT, "%s: truncated frame", what);
        len += body;
        out_max += block_out_max(bh);
        if (bh & 1) break;
    }
    /* a header that claims more than the blocks can produce would make the
     * caller allocate for data that is not there */
    if (c > out_max)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: frame claims %llu bytes, its blocks hold at most %llu",
                             what, (unsigned long long)c, (unsigned long long)out_max);
    if (p[4] & 0x04) {
        if (n - len < 4) return dv2_error_set(err, DV2_ECORRUPT, "%s: truncated frame", what);
        len += 4;
    }
    if (frame_size) *frame_size = len;
    if (cs) *cs = c;
    return 0;
}

int dv2_shard_fmt_parse_index(const uint8_t *p, size_t n, uint64_t at, const char *name,
                              dv2_shard_entry **entries, uint64_t *count, dv2_error *err) {
    *entries = NULL;
    *count = 0;
    if (n < DV2_FMT_INDEX_FRAME(0) || memcmp(p + 8, DV2_FMT_INDEX_MAGIC, 8) != 0)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: bad index frame at offset %llu", name,
                             (unsigned long long)at);
    uint64_t c = dv2_fmt_get64(p + 16);
    if (c > DV2_SHARD_MAX_RECORDS || DV2_FMT_INDEX_FRAME(c) != n)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: index at offset %llu: count %llu does not fit "
                             "its %zu bytes", name, (unsigned long long)at, (unsigned long long)c, n);
    const uint8_t *tail = p + n - 24;
    uint64_t want = dv2_fmt_get64(tail), have = dv2_xxh64(p + 8, (size_t)(tail - (p + 8)), 0);
    if (want != have)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: index at offset %llu: checksum mismatch", name,
                             (unsigned long long)at);
    if (dv2_fmt_get64(tail + 8) != n || memcmp(tail + 16, DV2_FMT_INDEX_END, 8) != 0)
        return dv2_error_set(err, DV2_ECORRUPT, "%s: index at offset %llu: bad trailer", name,
                             (unsigned long long)at);
    dv2_shard_entry *e = dv2_malloc_array(c ? (size_t)c : 1, sizeof *e);
    if (!e) return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory for the index", name);
    const uint8_t *q = p + 24;
    for (uint64_t i = 0; i < c; i++, q += DV2_FMT_ENTRY) {
        e[i].offset = dv2_fmt_get64(q);
        e[i].id = dv2_fmt_get64(q + 8);
        e[i].label = (int32_t)dv2_fmt_get32(q + 16);
        e[i].frame_size = dv2_fmt_get32(q + 20);
        if (e[i].label < -1) {
            free(e);
            return dv2_error_set(err, DV2_ECORRUPT, "%s: index entry %llu: bad label", name,
                                 (unsigned long long)i);
        }
    }
    *entries = e;
    *count = c;
    return 0;
}
