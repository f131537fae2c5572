/* afile.h — atomic output files and small file-system helpers.
 *
 * An output is written under a temporary name in its own directory
 * (".NAME.tmp.PID"), flushed, fsynced and renamed into place by
 * dv2_afile_commit; the directory is fsynced after the rename.  Until then the
 * final name is never touched, so a killed writer leaves no file that looks
 * whole.  Temporary names are registered so that SIGINT/SIGTERM/SIGHUP remove
 * them (dv2_cleanup_install) before the signal's default action runs. */
#ifndef DV2_AFILE_H
#define DV2_AFILE_H

#include <stdio.h>
#include <stddef.h>
#include "core/dv2.h"

typedef struct dv2_afile {
    FILE *f;      /* write through this */
    char *path;   /* final name, NULL for stdout */
    char *tmp;    /* temporary name, NULL for stdout */
} dv2_afile;

/* path "-" writes to stdout (commit only flushes).  Without force an existing
 * path is DV2_EEXIST. */
int dv2_afile_open(dv2_afile *a, const char *path, int force, dv2_error *err);
int dv2_afile_commit(dv2_afile *a, dv2_error *err);
void dv2_afile_abort(dv2_afile *a); /* removes the temporary file; safe after commit */
/* Removes the temporaries of path (".NAME.tmp.PID") whose writer process is
 * gone, so that a killed run leaves no garbage past the next run onto the
 * same output; returns how many were removed.  dv2_afile_open calls it.  A
 * writer on another host of a shared file system with a PID number that is
 * not in use here is taken for dead: lock the output where that can happen. */
int dv2_afile_remove_stale(const char *path);

/* Writes a whole buffer to path atomically. */
int dv2_write_file_atomic(const char *path, const void *data, size_t n, dv2_error *err);
/* Reads a whole file (or "-" = stdin) into a malloc'd buffer (NUL-terminated
 * one past *n).  max bounds the size (DV2_ENOMEM past it). */
int dv2_read_file(const char *path, size_t max, char **data, size_t *n, dv2_error *err);

int dv2_mkdir_p(const char *dir, dv2_error *err);
int dv2_fsync_dir(const char *dir, dv2_error *err);
int dv2_write_all(int fd, const void *buf, size_t n);          /* 0 or -1 (errno set) */
long dv2_read_full(int fd, void *buf, size_t n);               /* bytes read (< n at EOF), -1 on error */

/* Signal-time cleanup of temporary files (async-signal-safe unlink). */
void dv2_cleanup_install(void);
int dv2_cleanup_register(const char *path);
void dv2_cleanup_unregister(const char *path);
/* Set by the handler for SIGTERM/SIGUSR1 when a program asked to handle them
 * itself (dv2_graceful_install); polled by long loops (training). */
void dv2_graceful_install(void);
int dv2_graceful_requested(void);

#endif
