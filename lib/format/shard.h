/* shard.h — the dv2 shard format (man/dv2-shard.5): reading and writing one
 * shard.
 *
 * A shard is a stream of zstd frames:
 *   1. a skippable frame (magic 0x184D2A50) holding the header: "DV2SHARD",
 *      format version (1), header flags;
 *   2. one zstd frame per record; its content is a 32-byte record header
 *      (magic "DV2R", key length, metadata length, id, label, data size), the
 *      key, the metadata, the data bytes exactly as given, and the XXH64 of
 *      all the preceding bytes of the record;
 *   3. a skippable frame (magic 0x184D2A5E) holding the index: for each record
 *      its frame offset, frame size, id and label, a checksum, and a trailer
 *      (index frame size + "DV2SIDX\0") in the last 16 bytes of the file.
 * `zstd -dc shard` therefore prints the concatenated records, a reader on a
 * pipe goes front to back with no seeking, and a reader of a seekable file
 * finds any record through the trailing index.
 *
 * Readers check every length against the format's limits before allocating,
 * verify every record checksum, and report damage as one line naming the
 * shard, the record number and its byte offset.  A stream that ends before
 * its index is an error (a killed writer never leaves a shard that reads as
 * whole). */
#ifndef DV2_SHARD_H
#define DV2_SHARD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "core/dv2.h"

#define DV2_SHARD_VERSION 1
#define DV2_SHARD_EXT ".dv2s"
#define DV2_SHARD_MAX_KEY 4095            /* bytes, no NUL and no control characters */
#define DV2_SHARD_MAX_META 65535          /* bytes, no NUL */
#define DV2_SHARD_MAX_DATA (1ull << 30)   /* one record's payload */
#define DV2_SHARD_MAX_RECORDS (1ull << 32) /* records in one shard */
#define DV2_LABEL_NONE (-1)

/* One record.  key and meta are NUL-terminated; meta is NULL when the record
 * has none.  Returned records point into a buffer owned by the reader (or by
 * the dv2_recbuf passed in) and stay valid until the next call using it. */
typedef struct dv2_record {
    uint64_t id;
    const char *key;
    int32_t label;
    const uint8_t *data;
    size_t size;
    const char *meta;
    size_t meta_size;
} dv2_record;

/* One index entry: where a record's frame is and what it is, so a sampler
 * can know ids and labels without decompressing anything. */
typedef struct dv2_shard_entry {
    uint64_t offset;     /* byte offset of the record's zstd frame in the shard */
    uint64_t id;
    int32_t label;
    uint32_t frame_size; /* compressed size of the frame in bytes */
} dv2_shard_entry;

/* Scratch buffers for decoding one record; one per thread makes
 * dv2_shard_get thread-safe on a shared reader. */
typedef struct dv2_recbuf {
    uint8_t *raw;     /* decompressed record */
    size_t raw_cap;
    uint8_t *frame;   /* compressed frame */
    size_t frame_cap;
    void *dctx;       /* ZSTD_DCtx, created on first use */
} dv2_recbuf;

void dv2_recbuf_init(dv2_recbuf *b);
void dv2_recbuf_free(dv2_recbuf *b);

/* Checks a key for the format: 1..DV2_SHARD_MAX_KEY bytes, no control
 * characters (so keys are safe in TSV output).  0 or DV2_EINVAL. */
int dv2_shard_key_valid(const char *key);

/* ---- reading -------------------------------------------------------------- */

typedef struct dv2_shard_reader dv2_shard_reader; /* opaque */

/* Opens a shard file, or "-" for a stream on stdin.  Reads and checks the
 * header.  When the file is seekable, the index can be loaded on demand. */
int dv2_shard_open(dv2_shard_reader **r, const char *path, dv2_error *err);
/* Reads from fd (not closed by dv2_shard_close); name is used in messages.
 * prefix/nprefix are bytes already consumed from fd that belong in front
 * (e.g. a magic number peeked to detect the format); may be NULL/0. */
int dv2_shard_open_fd(dv2_shard_reader **r, int fd, const char *name,
                      const void *prefix, size_t nprefix, dv2_error *err);
void dv2_shard_close(dv2_shard_reader *r); /* accepts NULL */

const char *dv2_shard_name(const dv2_shard_reader *r);
int dv2_shard_seekable(const dv2_shard_reader *r);

/* Sequential reading, front to back, no seeking.  Returns 1 with *rec filled
 * (valid until the next call), 0 at the end of the shard once the index has
 * been read and checked against the records seen, or a negative status.
 * Every record checksum is verified. */
int dv2_shard_next(dv2_shard_reader *r, dv2_record *rec, dv2_error *err);

/* Random access (seekable shards only, else DV2_EUNSUPPORTED).  The index is
 * read and checked on the first call.  dv2_shard_get uses pread and touches
 * only buf, so threads may share one reader with a dv2_recbuf each. */
int dv2_shard_load_index(dv2_shard_reader *r, dv2_error *err);
uint64_t dv2_shard_count(const dv2_shard_reader *r); /* after load_index */
const dv2_shard_entry *dv2_shard_entries(const dv2_shard_reader *r); /* after load_index */
int dv2_shard_get(dv2_shard_reader *r, uint64_t i, dv2_record *rec, dv2_recbuf *buf,
                  dv2_error *err);

/* Decodes one record frame (frame[0..n)) into buf and checks it: frame
 * structure, sizes, checksum.  what names the record in error messages
 * ("shard-000001.dv2s: record 17 at offset 4096"). */
int dv2_shard_decode_frame(const uint8_t *frame, size_t n, dv2_record *rec, dv2_recbuf *buf,
                           const char *what, dv2_error *err);

/* ---- writing -------------------------------------------------------------- */

typedef struct dv2_shard_writer dv2_shard_writer; /* opaque */

/* Starts a shard on f (not closed by the writer; use lib/core/afile.h for the
 * temporary-name-and-rename discipline).  Writes the header.  level is the
 * zstd level (1..19; 0 = default 3). */
int dv2_shard_writer_create(dv2_shard_writer **w, FILE *f, const char *name, int level,
                            dv2_error *err);
/* Compresses and appends one record.  The key must pass dv2_shard_key_valid. */
int dv2_shard_writer_add(dv2_shard_writer *w, const dv2_record *rec, dv2_error *err);
/* Appends a frame made by dv2_shard_encode (lets callers compress in
 * parallel and write in order). */
int dv2_shard_writer_add_frame(dv2_shard_writer *w, const uint8_t *frame, size_t n,
                               uint64_t id, int32_t label, dv2_error *err);
/* Writes the index and flushes f. */
int dv2_shard_writer_finish(dv2_shard_writer *w, dv2_error *err);
void dv2_shard_writer_free(dv2_shard_writer *w); /* accepts NULL */
uint64_t dv2_shard_writer_records(const dv2_shard_writer *w);
uint64_t dv2_shard_writer_bytes(const dv2_shard_writer *w); /* bytes written so far */

/* Encodes one record into a zstd frame: *out (realloc'd, capacity *cap)
 * receives *n bytes.  cctx is a ZSTD_CCtx* owned by the caller (one per
 * thread), or NULL to use a temporary one. */
int dv2_shard_encode(const dv2_record *rec, int level, void *cctx, uint8_t **out, size_t *n,
                     size_t *cap, dv2_error *err);

/* Bytes a shard adds around its records (header + index for n records), for
 * size planning. */
uint64_t dv2_shard_overhead(uint64_t nrecords);

#endif
