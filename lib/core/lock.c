/* lock.c — output locks: a "PID HOST" file held with flock(2) (lock.h).
 *
 * Why flock and not only O_EXCL: an O_EXCL file outlives a killed holder,
 * and telling a stale file from a live one by its pid alone races with a
 * second process doing the same.  The kernel drops a flock when its holder
 * dies, so "the file exists but nobody holds it" is the proof of staleness
 * that two contenders cannot both obtain: the first to flock it owns it. */
#include "core/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static char *lock_file_of(const char *path) {
    struct stat st;
    size_t n = strlen(path) + 16;
    char *f = malloc(n);
    if (!f) return NULL;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(f, n, "%s/.dv2.lock", path);
        return f;
    }
    const char *slash = strrchr(path, '/');
    if (slash) snprintf(f, n, "%.*s/.%s.lock", (int)(slash - path), path, slash + 1);
    else snprintf(f, n, ".%s.lock", path);
    return f;
}

static void host_name(char *h, size_t n) {
    if (gethostname(h, n - 1) != 0) snprintf(h, n, "unknown");
    h[n - 1] = 0;
    for (char *p = h; *p; p++)
        if (*p == ' ' || *p == '\n') *p = '_';
}

/* Reads "PID HOST" from fd; pid 0 and host "" when empty or unreadable. */
static void read_holder(int fd, long *pid, char *host, size_t nhost) {
    char buf[512];
    ssize_t k = pread(fd, buf, sizeof buf - 1, 0);
    *pid = 0;
    host[0] = 0;
    if (k <= 0) return;
    buf[k] = 0;
    char *end;
    long p = strtol(buf, &end, 10);
    if (end == buf || *end != ' ') return;
    *pid = p;
    size_t i = 0;
    for (end++; *end && *end != '\n' && i + 1 < nhost; end++) host[i++] = *end;
    host[i] = 0;
}

int dv2_lock_acquire(dv2_lock *l, const char *path, const char *what, dv2_error *err) {
    l->fd = -1;
    l->stale_pid = 0;
    if (!(l->file = lock_file_of(path))) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    char me[256], host[256];
    host_name(me, sizeof me);
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = open(l->file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) return dv2_error_errno(err, DV2_EIO, errno, "%s: cannot lock %s", path, l->file);
        long pid;
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            read_holder(fd, &pid, host, sizeof host);
            close(fd);
            if (e != EWOULDBLOCK) return dv2_error_errno(err, DV2_EIO, e, "%s: cannot lock %s", path, l->file);
            if (pid > 0)
                return dv2_error_set(err, DV2_EEXIST, "%s: %s is being written by process %ld on %s (lock %s)",
                                     path, what, pid, host, l->file);
            return dv2_error_set(err, DV2_EEXIST, "%s: %s is being written by another process (lock %s)",
                                 path, what, l->file);
        }
        /* ours, unless the file was released (unlinked) between open and flock */
        struct stat a, b;
        if (fstat(fd, &a) != 0 || stat(l->file, &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
            close(fd);
            continue;
        }
        read_holder(fd, &pid, host, sizeof host);
        if (pid > 0 && strcmp(host, me) != 0) {
            close(fd);
            return dv2_error_set(err, DV2_EEXIST, "%s: %s is locked by process %ld on host %s; if that "
                                 "process is gone, remove %s", path, what, pid, host, l->file);
        }
        if (pid > 0 && pid != (long)getpid()) l->stale_pid = pid; /* died holding it */
        char line[300];
        int n = snprintf(line, sizeof line, "%ld %s\n", (long)getpid(), me);
        if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != n) {
            int e = errno;
            close(fd);
            return dv2_error_errno(err, DV2_EIO, e, "%s: cannot write lock %s", path, l->file);
        }
        l->fd = fd;
        return 0;
    }
    return dv2_error_set(err, DV2_EIO, "%s: cannot lock %s: it keeps changing", path, l->file);
}

void dv2_lock_release(dv2_lock *l) {
    if (!l) return;
    if (l->fd >= 0 && l->file) { /* a zeroed, never acquired lock has no file */
        unlink(l->file); /* while still held: a waiter that opened it sees another inode and retries */
        close(l->fd);
    }
    l->fd = -1;
    free(l->file);
    l->file = NULL;
}
