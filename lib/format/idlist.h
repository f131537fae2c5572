/* idlist.h — id lists, the text files that join the stages: one id per line,
 * optionally followed by tab-separated columns (score, provenance) that
 * readers ignore.  Ids are written in decimal (what `sort -n`, `join` and
 * numpy's loadtxt expect); readers also accept 0x-prefixed hexadecimal.
 * Blank lines and lines starting with '#' are skipped. */
#ifndef DV2_IDLIST_H
#define DV2_IDLIST_H

#include <stddef.h>
#include <stdint.h>
#include "core/dv2.h"

typedef struct dv2_idlist {
    uint64_t *ids;
    size_t n;
} dv2_idlist;

/* Reads the first column of every line of path ("-" = stdin).  A line whose
 * first field is not an id is DV2_ECORRUPT naming the file and line. */
int dv2_idlist_read(dv2_idlist *l, const char *path, dv2_error *err);
void dv2_idlist_free(dv2_idlist *l);
/* Parses s[0..len) as a decimal or 0x-hex u64; 0 or DV2_EINVAL. */
int dv2_idlist_parse_id(const char *s, size_t len, uint64_t *out);
/* Sorts ascending and drops repeats; returns how many repeats were dropped. */
size_t dv2_idlist_sort_unique(dv2_idlist *l);
/* 1 if id is in l (which must be sorted), else 0. */
int dv2_idlist_contains(const dv2_idlist *l, uint64_t id);
/* The rows of ids[0..n) that hold the first occurrence of their id, in row
 * order, into rows (n entries), their count into *nrows: the one way the
 * curation programs treat an id met twice (pools that overlap, a matrix
 * given twice): once, at its first row.  n - *nrows rows are repeats. */
int dv2_idlist_first_rows(const uint64_t *ids, int64_t n, int64_t *rows, int64_t *nrows, dv2_error *err);

#endif
