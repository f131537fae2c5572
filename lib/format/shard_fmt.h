/* shard_fmt.h — internal to the shard module (shard.c, shard_write.c): the
 * byte layout constants of the format and the low-level parsers of zstd frame
 * and block headers and of the index frame.  Not for other modules. */
#ifndef DV2_SHARD_FMT_H
#define DV2_SHARD_FMT_H

#include <stddef.h>
#include <stdint.h>
#include "core/dv2.h"
#include "format/shard.h"

#define DV2_FMT_SKIP_HEADER 0x184D2A50u   /* skippable frame: shard header */
#define DV2_FMT_SKIP_INDEX 0x184D2A5Eu    /* skippable frame: index */
#define DV2_FMT_SHARD_MAGIC "DV2SHARD"
#define DV2_FMT_RECORD_MAGIC "DV2R"
#define DV2_FMT_INDEX_MAGIC "DV2INDEX"
#define DV2_FMT_INDEX_END "DV2SIDX\0"
#define DV2_FMT_HEADER_FRAME 24u          /* 8 frame header + 16 payload */
#define DV2_FMT_RECORD_HEAD 32u           /* fixed part of a record */
#define DV2_FMT_ENTRY 24u                 /* index entry */
/* index payload: magic 8, count 8, entries, xxh64 8, frame size 8, end magic 8 */
#define DV2_FMT_INDEX_PAYLOAD(n) (40ull + DV2_FMT_ENTRY * (uint64_t)(n))
#define DV2_FMT_INDEX_FRAME(n) (8ull + DV2_FMT_INDEX_PAYLOAD(n))
#define DV2_FMT_MAX_BLOCK (128u * 1024u)

uint16_t dv2_fmt_get16(const uint8_t *p);
uint32_t dv2_fmt_get32(const uint8_t *p);
uint64_t dv2_fmt_get64(const uint8_t *p);
void dv2_fmt_put16(uint8_t *p, uint16_t v);
void dv2_fmt_put32(uint8_t *p, uint32_t v);
void dv2_fmt_put64(uint8_t *p, uint64_t v);

/* Size of a zstd frame header (magic included) from its descriptor byte;
 * refuses dictionaries, reserved bits, and frames without a content size. */
int dv2_shard_fmt_header_size(uint8_t fhd, size_t *size, const char *what, dv2_error *err);
/* Content size from a complete frame header p[0..hsize), checked against the
 * record limits. */
int dv2_shard_fmt_content_size(const uint8_t *p, size_t hsize, uint64_t *cs, const char *what,
                               dv2_error *err);
/* Bytes of a block's body after its 3-byte header bh. */
int dv2_shard_fmt_block(uint32_t bh, size_t *body, const char *what, dv2_error *err);
/* Upper bound of a frame's size given its content size. */
uint64_t dv2_shard_fmt_frame_limit(uint64_t cs);
/* Walks the zstd frame at p[0..n): its size and content size. */
int dv2_shard_fmt_frame_size(const uint8_t *p, size_t n, size_t *frame_size, uint64_t *cs,
                             const char *what, dv2_error *err);
/* Parses a whole index frame p[0..n) found at offset at: malloc'd entries. */
int dv2_shard_fmt_parse_index(const uint8_t *p, size_t n, uint64_t at, const char *name,
                              dv2_shard_entry **entries, uint64_t *count, dv2_error *err);

#endif
