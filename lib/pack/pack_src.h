/* pack_src.h — internal to dv2-pack's engine: the inputs, expanded in a
 * fixed order into units (image files, tar archives, IDX files, shards), and
 * the items they yield one by one.  Not for other modules. */
#ifndef DV2_PACK_SRC_H
#define DV2_PACK_SRC_H

#include <stddef.h>
#include <stdint.h>
#include "core/dv2.h"
#include "pack/pack.h"

/* One record to be: either a file to load (path), data already in memory,
 * or gray pixels to encode as PNG. */
typedef struct dv2_pack_item {
    char *key;
    uint64_t id;
    int32_t label;
    char *path;             /* load from this file, or NULL */
    uint8_t *data;          /* owned payload, or NULL */
    size_t size;
    uint8_t *gray;          /* owned IDX pixels (w*h bytes), or NULL */
    int w, h;
    char *meta;             /* owned, or NULL */
    size_t meta_size;
    int check;              /* check the image header */
    /* filled by the engine */
    int must_fail, bad;
    char *why;              /* reason a bad item is skipped */
    uint8_t *frame;
    size_t frame_size, frame_cap;
} dv2_pack_item;

void dv2_pack_item_free(dv2_pack_item *it);

typedef struct dv2_pack_src dv2_pack_src; /* opaque */

/* Expands the inputs (stat, directory walks, format sniffing).  "-" reads
 * stdin: a shard stream, a tar stream, or a list of paths. */
int dv2_pack_src_open(dv2_pack_src **s, const dv2_pack_opts *o, char *const *inputs, int n,
                      dv2_error *err);
void dv2_pack_src_close(dv2_pack_src *s);
/* 1 with *it filled (caller frees with dv2_pack_item_free), 0 at the end. */
int dv2_pack_src_next(dv2_pack_src *s, dv2_pack_item *it, dv2_error *err);
/* Class names found with --label-from-dir (sorted), or from a repacked
 * dataset's manifest. */
size_t dv2_pack_src_classes(const dv2_pack_src *s, char *const **names);
/* Number of path items known up front (for a progress ETA), 0 if none. */
uint64_t dv2_pack_src_known_items(const dv2_pack_src *s);

#endif
