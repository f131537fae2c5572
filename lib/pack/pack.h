/* pack.h — the engine of dv2-pack: turns inputs (image files, directories,
 * lists of paths, WebDataset tars, IDX files, shards and datasets) into a
 * dataset directory or one shard stream, and the read-side modes (list,
 * verify, extract).
 *
 * Determinism: inputs are enumerated in a fixed order (directories sorted by
 * byte order of names), records are cut into shards by a rule that depends
 * only on the records since the shard began (a shard ends before the record
 * that would take it past shard_size), so the same inputs and options give
 * byte-identical shards and an interrupted run resumes after its last
 * complete shard.
 *
 * Nothing here prints: warnings and progress go through callbacks. */
#ifndef DV2_PACK_H
#define DV2_PACK_H

#include <stdint.h>
#include <stdio.h>
#include "core/dv2.h"

#define DV2_PACK_MAX_IDX_LABELS 16

typedef struct dv2_pack_opts {
    const char *out;            /* dataset directory, or "-" for a shard stream on stdout */
    uint64_t shard_size;        /* bytes per shard (default 1 GiB) */
    int level;                  /* zstd level, 0 = 3 */
    int threads;                /* compression threads, 0 = all cpus */
    int strict;                 /* a bad image is fatal */
    int force;                  /* overwrite an existing output / start over */
    int label_from_dir;         /* ImageFolder labels; class list into the manifest */
    const char *labels_tsv;     /* key<TAB>label file, or NULL */
    const char *select;         /* id list to keep ("-" = stdin), or NULL */
    const char *idx_labels[DV2_PACK_MAX_IDX_LABELS]; /* label file for the i-th IDX input */
    int nidx_labels;
    int allow_empty;            /* an output without records is not an error */
    /* callbacks (may be NULL) */
    void (*warn)(void *ctx, const char *msg);
    void (*info)(void *ctx, const char *msg);
    /* inputs handled so far (written, skipped, filtered), payload bytes,
     * inputs known up front (0: unknown) */
    void (*progress)(void *ctx, uint64_t inputs, uint64_t bytes, uint64_t total);
    void *ctx;
} dv2_pack_opts;

typedef struct dv2_pack_stats {
    uint64_t records;        /* records in the output */
    uint64_t bytes_in;       /* payload bytes of those records */
    uint64_t bytes_out;      /* bytes of shards written */
    uint64_t skipped;        /* bad images skipped */
    uint64_t filtered;       /* left out by --select */
    uint64_t shards;         /* shards in the output */
    uint64_t resumed_shards; /* complete shards found and kept */
    uint64_t resumed_records;
    uint64_t labelled;       /* records given a label by --labels */
} dv2_pack_stats;

void dv2_pack_opts_init(dv2_pack_opts *o);
/* Packs inputs[0..n) into o->out.  A dataset directory is locked
 * (core/lock.h) while it is written: a second writer gets DV2_EEXIST.  An
 * output without records is an error (DV2_ENOTFOUND, saying why: nothing
 * on stdin, nothing selected, everything skipped) unless allow_empty; so is
 * a --labels file none of whose keys is packed.  A failed pack removes the
 * directory it created if nothing is left in it. */
int dv2_pack_run(const dv2_pack_opts *o, char *const *inputs, int n, dv2_pack_stats *st,
                 dv2_error *err);

/* ---- read-side modes (each input: dataset directory, shard file, "-") ---- */

/* Lists records as TSV lines "id<TAB>key<TAB>label<TAB>bytes" on out. */
int dv2_pack_ls(char *const *inputs, int n, FILE *out, dv2_pack_stats *st, dv2_error *err);
/* Reads everything: every record checksum, every index, the manifest.  The
 * first damage found is the error (file, record, offset). */
int dv2_pack_verify(char *const *inputs, int n, dv2_pack_stats *st, dv2_error *err);
/* Writes each record's bytes to dir/key (directories created).  Keys not in
 * the clean form (dv2_key_is_clean: absolute, "." or ".." components) are
 * refused, and so is a symbolic link met inside dir.  Existing files are an
 * error unless force.  webdataset: the WebDataset layout, an image named
 * KEY.jpg/.png (the extension added when the key has none) and its label in
 * KEY.cls, so that `tar --sort=name -cf shard.tar -C dir .` is a shard that
 * WebDataset readers (and dv2-pack) take back. */
int dv2_pack_extract(char *const *inputs, int n, const char *dir, int force, int webdataset,
                     dv2_pack_stats *st, dv2_error *err);

#endif
