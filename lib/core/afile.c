/* afile.c — atomic output files, whole-file reads, directories, and the
 * signal-time removal of temporary files (see afile.h). */
#include "core/afile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- registry of temporary files, for signal handlers ------------------------- */

#define MAX_TMP 64
#define TMP_LEN 4096
static char g_tmp[MAX_TMP][TMP_LEN];
static volatile sig_atomic_t g_tmp_used[MAX_TMP];
static volatile sig_atomic_t g_graceful;
static int g_graceful_on;

int dv2_cleanup_register(const char *path) {
    size_t n = strlen(path);
    if (n >= TMP_LEN) return -1;
    for (int i = 0; i < MAX_TMP; i++) {
        if (!g_tmp_used[i]) {
            memcpy(g_tmp[i], path, n + 1);
            g_tmp_used[i] = 1;
            return 0;
        }
    }
    return -1; /* full: the file is still written atomically, only not removed on a signal */
}

void dv2_cleanup_unregister(const char *path) {
    for (int i = 0; i < MAX_TMP; i++)
        if (g_tmp_used[i] && strcmp(g_tmp[i], path) == 0) g_tmp_used[i] = 0;
}

static void on_fatal_signal(int sig) {
    for (int i = 0; i < MAX_TMP; i++)
        if (g_tmp_used[i]) unlink(g_tmp[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void on_graceful_signal(int sig) {
    (void)sig;
    g_graceful = 1;
}

void dv2_cleanup_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (!g_graceful_on) sigaction(SIGTERM, &sa, NULL);
    /* A reader that went away (`dv2-pack --ls | head`) ends the program the
     * way it ends cat or grep: silently, by SIGPIPE, temporary files removed. */
    sigaction(SIGPIPE, &sa, NULL);
}

void dv2_graceful_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_graceful_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    g_graceful_on = 1;
}

int dv2_graceful_requested(void) { return g_graceful != 0; }

/* ---- atomic files --------------------------------------------------------------- */

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

int dv2_fsync_dir(const char *dir, dv2_error *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return dv2_error_errno(err, DV2_EIO, errno, "%s", dir);
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc && e != EINVAL && e != EROFS) return dv2_error_errno(err, DV2_EIO, e, "%s: fsync", dir);
    return 0;
}

/* A writer's temporary ".BASE.tmp.PID" is stale when no process PID is alive
 * (kill(PID, 0) fails with ESRCH): SIGKILL, a crash or a power cut left it.
 * A live PID, or one this process cannot signal, is left alone. */
int dv2_afile_remove_stale(const char *path) {
    if (strcmp(path, "-") == 0) return 0;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char *dir = dir_of(path);
    if (!dir) return 0;
    DIR *d = opendir(dir);
    int removed = 0;
    size_t bn = strlen(base);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        if (nm[0] != '.' || strncmp(nm + 1, base, bn) != 0 || strncmp(nm + 1 + bn, ".tmp.", 5) != 0)
            continue;
        const char *digits = nm + 1 + bn + 5;
        char *end;
        errno = 0;
        long pid = strtol(digits, &end, 10);
        if (digits[0] < '1' || digits[0] > '9' || *end || errno || pid <= 0 || (pid_t)pid != pid ||
            pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        size_t n = strlen(dir) + strlen(nm) + 2;
        char *full = malloc(n);
        if (!full) break;
        snprintf(full, n, "%s/%s", dir, nm);
        struct stat st;
        if (lstat(full, &st) == 0 && S_ISREG(st.st_mode) && unlink(full) == 0) removed++;
        free(full);
    }
    if (d) closedir(d);
    free(dir);
    return removed;
}

int dv2_afile_open(dv2_afile *a, const char *path, int force, dv2_error *err) {
    memset(a, 0, sizeof *a);
    if (strcmp(path, "-") == 0) {
        a->f = stdout;
        return 0;
    }
    struct stat st;
    if (!force && stat(path, &st) == 0)
        return dv2_error_set(err, DV2_EEXIST, "%s: already exists (use -f to overwrite)", path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    dv2_afile_remove_stale(path);
    char *dir = dir_of(path);
    size_t n = strlen(dir) + strlen(base) + 48;
    a->tmp = malloc(n);
    a->path = strdup(path);
    if (!a->tmp || !a->path || !dir) {
        free(dir); free(a->tmp); free(a->path);
        return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", path);
    }
    snprintf(a->tmp, n, "%s/.%s.tmp.%ld", dir, base, (long)getpid());
    free(dir);
    int fd = open(a->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        free(a->tmp); free(a->path);
        a->tmp = a->path = NULL;
        return dv2_error_errno(err, DV2_EIO, e, "%s", path);
    }
    dv2_cleanup_register(a->tmp);
    a->f = fdopen(fd, "wb");
    if (!a->f) {
        close(fd);
        dv2_afile_abort(a);
        return dv2_error_set(err, DV2_ENOMEM, "%s: fdopen failed", path);
    }
    return 0;
}

int dv2_afile_commit(dv2_afile *a, dv2_error *err) {
    if (!a->f) return dv2_error_set(err, DV2_EINVAL, "commit of a closed file");
    if (!a->path) { /* stdout */
        int bad = fflush(a->f) != 0 || ferror(a->f);
        a->f = NULL;
        if (bad) return dv2_error_errno(err, DV2_EIO, errno, "writing standard output");
        return 0;
    }
    int bad = fflush(a->f) != 0 || ferror(a->f);
    int e = errno;
    if (!bad && fsync(fileno(a->f)) != 0 && errno != EINVAL) { bad = 1; e = errno; }
    if (fclose(a->f) != 0 && !bad) { bad = 1; e = errno; }
    a->f = NULL;
    if (bad) {
        dv2_error_errno(err, DV2_EIO, e, "%s", a->path);
        dv2_afile_abort(a);
        return DV2_EIO;
    }
    if (rename(a->tmp, a->path) != 0) {
        dv2_error_errno(err, DV2_EIO, errno, "%s: rename", a->path);
        dv2_afile_abort(a);
        return DV2_EIO;
    }
    dv2_cleanup_unregister(a->tmp);
    char *dir = dir_of(a->path);
    int rc = dir ? dv2_fsync_dir(dir, err) : 0;
    free(dir);
    free(a->tmp); free(a->path);
    a->tmp = a->path = NULL;
    return rc;
}

void dv2_afile_abort(dv2_afile *a) {
    if (a->f && a->path) fclose(a->f);
    a->f = NULL;
    if (a->tmp) {
        unlink(a->tmp);
        dv2_cleanup_unregister(a->tmp);
    }
    free(a->tmp); free(a->path);
    a->tmp = a->path = NULL;
}

int dv2_write_file_atomic(const char *path, const void *data, size_t n, dv2_error *err) {
    dv2_afile a;
    int rc = dv2_afile_open(&a, path, 1, err);
    if (rc) return rc;
    if (n && fwrite(data, 1, n, a.f) != n) {
        int e = errno;
        dv2_afile_abort(&a);
        return dv2_error_errno(err, DV2_EIO, e, "%s", path);
    }
    return dv2_afile_commit(&a, err);
}

int dv2_read_file(const char *path, size_t max, char **data, size_t *n, dv2_error *err) {
    *data = NULL;
    *n = 0;
    int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dv2_error_errno(err, DV2_EIO, errno, "%s", path);
    size_t cap = max < (1 << 16) ? max : (1 << 16), len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) { if (fd) close(fd); return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", path); }
    for (;;) {
        if (len == cap) {
            char extra;
            if (cap >= max && dv2_read_full(fd, &extra, 1) == 0) break; /* exactly max bytes */
            if (cap >= max) {
                free(buf);
                if (fd) close(fd);
                return dv2_error_set(err, DV2_ENOMEM, "%s: larger than %zu bytes", path, max);
            }
            size_t nc = cap * 2 > max ? max : cap * 2;
            char *nb = realloc(buf, nc + 1);
            if (!nb) { free(buf); if (fd) close(fd); return dv2_error_set(err, DV2_ENOMEM, "%s: out of memory", path); }
            buf = nb;
            cap = nc;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            free(buf);
            if (fd) close(fd);
            return dv2_error_errno(err, DV2_EIO, e, "%s", path);
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    if (fd) close(fd);
    buf[len] = 0;
    *data = buf;
    *n = len;
    return 0;
}

int dv2_mkdir_p(const char *dir, dv2_error *err) {
    char *p = strdup(dir);
    if (!p) return dv2_error_set(err, DV2_ENOMEM, "out of memory");
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            dv2_error_errno(err, DV2_EIO, e, "%s", p);
            free(p);
            return DV2_EIO;
        }
        *s = '/';
    }
    int rc = 0;
    if (mkdir(p, 0755) != 0 && errno != EEXIST) rc = dv2_error_errno(err, DV2_EIO, errno, "%s", p);
    else {
        struct stat st;
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) rc = dv2_error_set(err, DV2_EIO, "%s: not a directory", p);
    }
    free(p);
    return rc;
}

int dv2_write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

long dv2_read_full(int fd, void *buf, size_t n) {
    char *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (long)got;
}
