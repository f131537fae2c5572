/* lock.h — one writer per output: an advisory lock file beside (or inside)
 * what is written.
 *
 * dv2_lock_acquire locks PATH: a directory is locked by PATH/.dv2.lock, a
 * file by .NAME.lock in its directory.  The lock file holds "PID HOST" of its
 * holder and is held with flock(2) for as long as the holder lives, so a
 * killed holder cannot leave a lock that blocks forever: a lock file that no
 * live process holds, written by a process of this host, is stale and is
 * taken over in place.  A lock file written on another host is never taken
 * over (the holder may live there); the message names its holder and the
 * file to remove.  Release unlinks the file while still holding it. */
#ifndef DV2_LOCK_H
#define DV2_LOCK_H

#include "core/dv2.h"

typedef struct dv2_lock {
    int fd;          /* -1 when not held */
    char *file;      /* the lock file */
    long stale_pid;  /* > 0: a stale lock of this dead process was taken over */
} dv2_lock;

/* Locks path (see above); what names the output in messages ("dataset",
 * "run directory").  Held by another live process: DV2_EEXIST, with a
 * message naming the holder's pid and host.  l is valid for release after
 * any return. */
int dv2_lock_acquire(dv2_lock *l, const char *path, const char *what, dv2_error *err);
/* Removes the lock file and drops the lock; safe on an unheld lock, on one
 * whose acquire failed and on a zeroed struct. */
void dv2_lock_release(dv2_lock *l);

#endif
