/* tarread.h — sequential reading of tar archives (POSIX ustar, with pax
 * "path" records and GNU long names), plain or gzip-compressed (.tar.gz,
 * .tgz), from a file descriptor, member by member, without seeking: enough
 * for WebDataset shards read from a pipe. */
#ifndef DV2_TARREAD_H
#define DV2_TARREAD_H

#include <stddef.h>
#include <stdint.h>
#include "core/dv2.h"

#define DV2_TAR_MAX_MEMBER (1ull << 30) /* largest member we load */

typedef struct dv2_tar dv2_tar; /* opaque */

/* Reads from fd (not closed by dv2_tar_close); name is used in messages.
 * prefix/nprefix: bytes already read from fd that come first (may be 0;
 * prefix may then be NULL).  gzip is recognised by its magic. */
int dv2_tar_open_fd(dv2_tar **t, int fd, const char *name, const void *prefix, size_t nprefix,
                    dv2_error *err);
void dv2_tar_close(dv2_tar *t); /* accepts NULL */
/* Next regular file: 1 with *path (NUL-terminated), *data and *size valid
 * until the next call; 0 at the end of the archive; negative on damage
 * (bad header checksum, truncated member, size beyond DV2_TAR_MAX_MEMBER). */
int dv2_tar_next(dv2_tar *t, const char **path, const uint8_t **data, size_t *size, dv2_error *err);
/* 1 if the 512-byte block looks like a ustar header (magic and checksum). */
int dv2_tar_is_header(const uint8_t *block);
/* 1 if the first n bytes of a file begin a tar archive: a ustar header, or
 * gzip data that inflates to one. */
int dv2_tar_sniff(const uint8_t *b, size_t n);

#endif
