/* dataset.h — a dataset: a directory of numbered shards plus a manifest, and
 * the one reader every program uses to read images (dv2-embed, dv2-train,
 * dv2-dedup, dv2-pack itself).
 *
 * Layout of a dataset directory (man/dv2-shard.5):
 *   shard-000000.dv2s, shard-000001.dv2s, ...   the shards, in order
 *   manifest.json                               written last, atomically
 * manifest.json:
 *   {"format": "dv2-dataset", "version": 1, "records": N, "bytes": B,
 *    "shards": [{"name": "shard-000000.dv2s", "records": n, "bytes": b}, ...],
 *    "classes": ["name0", "name1", ...]}       ("classes" may be empty)
 * A directory without manifest.json is an unfinished write (dv2-pack resumes
 * it); readers refuse it.
 *
 * dv2_dataset_open accepts a dataset directory, a single shard file, or "-"
 * (one shard stream on stdin, sequential only).  Records are numbered 0..N-1
 * in shard order. */
#ifndef DV2_DATASET_H
#define DV2_DATASET_H

#include <stddef.h>
#include <stdint.h>
#include "core/dv2.h"
#include "format/shard.h"

#define DV2_MANIFEST_NAME "manifest.json"
#define DV2_DATASET_UNKNOWN UINT64_MAX

/* ---- manifest ------------------------------------------------------------- */

typedef struct dv2_manifest_shard {
    char *name;        /* file name inside the dataset directory */
    uint64_t records;
    uint64_t bytes;
} dv2_manifest_shard;

typedef struct dv2_manifest {
    uint64_t records, bytes;
    dv2_manifest_shard *shards;
    size_t nshards;
    char **classes;    /* class names by label, or NULL */
    size_t nclasses;
} dv2_manifest;

void dv2_manifest_init(dv2_manifest *m);
void dv2_manifest_free(dv2_manifest *m);
/* Adds a shard (copies name) / a class name; update records and bytes. */
int dv2_manifest_add_shard(dv2_manifest *m, const char *name, uint64_t records, uint64_t bytes,
                           dv2_error *err);
int dv2_manifest_add_class(dv2_manifest *m, const char *name, dv2_error *err);
/* Reads dir/manifest.json and checks it (totals add up, names are plain
 * file names).  DV2_ENOTFOUND when there is no manifest. */
int dv2_manifest_read(dv2_manifest *m, const char *dir, dv2_error *err);
/* Writes dir/manifest.json atomically. */
int dv2_manifest_write(const dv2_manifest *m, const char *dir, dv2_error *err);
/* "shard-%06u.dv2s" into buf (at least 32 bytes). */
void dv2_dataset_shard_name(char *buf, size_t n, uint64_t index);

/* ---- record keys ------------------------------------------------------------ */

/* The one rule for the key of a record, applied when it is packed, so that
 * every key names a file inside any directory it is extracted to: '/'
 * separated, relative, with no empty, "." or ".." component and no control
 * character.  dv2_key_clean rewrites key in place to that form (a ".."
 * removes the component before it, or nothing at the start; control
 * characters become '_') and returns its new length (0: nothing is left). */
size_t dv2_key_clean(char *key);
/* 1 if key already has the clean form. */
int dv2_key_is_clean(const char *key);

/* ---- reading a dataset ---------------------------------------------------- */

typedef struct dv2_dataset dv2_dataset; /* opaque */

/* Opens a dataset directory, a shard file, or "-" (stdin stream). */
int dv2_dataset_open(dv2_dataset **ds, const char *path, dv2_error *err);
/* Several dataset directories read as one: their records in the order
 * given (dataset 0's, then dataset 1's, ...); class names are kept when all
 * datasets have the same.  One path is dv2_dataset_open. */
int dv2_dataset_open_list(dv2_dataset **ds, const char *const *paths, int n, dv2_error *err);
void dv2_dataset_close(dv2_dataset *ds); /* accepts NULL */

/* 1 for a directory or a seekable shard: count/entry/get work. */
int dv2_dataset_random_access(const dv2_dataset *ds);
/* Number of records, from the manifest or the index; DV2_DATASET_UNKNOWN
 * for a stream. */
uint64_t dv2_dataset_count(const dv2_dataset *ds);
/* Class names (from the manifest), NULL/0 when unknown. */
size_t dv2_dataset_nclasses(const dv2_dataset *ds);
const char *dv2_dataset_class_name(const dv2_dataset *ds, size_t label);

/* Sequential: all records in order.  1 and *rec filled (valid until the
 * next call), 0 at the end, negative on error.  Works on streams. */
int dv2_dataset_next(dv2_dataset *ds, dv2_record *rec, dv2_error *err);

/* Random access to record i (0 <= i < count): id and label from the index
 * without decompressing; the full record into buf.  dv2_dataset_get is
 * thread-safe when each thread passes its own dv2_recbuf.  The first call
 * of either loads all shard indexes (not thread-safe: call
 * dv2_dataset_load_index first when threads will share the dataset). */
int dv2_dataset_load_index(dv2_dataset *ds, dv2_error *err);
int dv2_dataset_entry(dv2_dataset *ds, uint64_t i, uint64_t *id, int32_t *label, dv2_error *err);
int dv2_dataset_get(dv2_dataset *ds, uint64_t i, dv2_record *rec, dv2_recbuf *buf,
                    dv2_error *err);

#endif
