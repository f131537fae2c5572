/* test_lock.c — output locks (lib/core/lock.h): a second writer is refused
 * with the holder's pid, in this process or another; a lock left by a killed
 * process is taken over, not trusted; a lock written on another host is
 * refused; release removes the file; a matrix opened for appending is
 * locked. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/lock.h"
#include "format/matrix.h"
#include "testutil.h"

static void test_in_process(void) {
    dv2_error err = {0};
    dv2_lock a, b;
    CHECK(mkdir("d", 0755) == 0);
    CHECK(dv2_lock_acquire(&a, "d", "dataset", &err) == 0);
    CHECK(access("d/.dv2.lock", F_OK) == 0);
    CHECK(dv2_lock_acquire(&b, "d", "dataset", &err) == DV2_EEXIST);
    char pid[32];
    snprintf(pid, sizeof pid, "process %ld", (long)getpid());
    CHECKF(strstr(err.msg, pid) && strstr(err.msg, "dataset"), "%s", err.msg);
    dv2_lock_release(&b); /* not held: a no-op */
    CHECK(access("d/.dv2.lock", F_OK) == 0);
    dv2_lock_release(&a);
    CHECK(access("d/.dv2.lock", F_OK) != 0);
    /* a file is locked beside itself */
    CHECK(dv2_lock_acquire(&a, "d/x.emb", "matrix", &err) == 0);
    CHECK(access("d/.x.emb.lock", F_OK) == 0);
    CHECK(dv2_lock_acquire(&b, "d/x.emb", "matrix", &err) == DV2_EEXIST);
    dv2_lock_release(&b);
    dv2_lock_release(&a);
}

static void test_other_process(void) {
    dv2_error err = {0};
    int go[2], done[2];
    CHECK(pipe(go) == 0 && pipe(done) == 0);
    pid_t c = fork();
    if (c == 0) { /* holds the lock until told to go */
        dv2_lock l;
        char x = dv2_lock_acquire(&l, "d", "dataset", NULL) == 0 ? 'y' : 'n';
        if (write(done[1], &x, 1) != 1) _exit(2);
        if (read(go[0], &x, 1) != 1) _exit(2);
        _exit(0); /* killed-like: no release, the file stays */
    }
    char x = 0;
    CHECK(read(done[0], &x, 1) == 1 && x == 'y');
    dv2_lock l;
    CHECK(dv2_lock_acquire(&l, "d", "dataset", &err) == DV2_EEXIST);
    char pid[32];
    snprintf(pid, sizeof pid, "process %ld", (long)c);
    CHECKF(strstr(err.msg, pid) != NULL, "%s", err.msg);
    dv2_lock_release(&l);
    CHECK(write(go[1], "g", 1) == 1);
    int status;
    CHECK(waitpid(c, &status, 0) == c && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(access("d/.dv2.lock", F_OK) == 0); /* left behind by the dead process */
    CHECK(dv2_lock_acquire(&l, "d", "dataset", &err) == 0);
    CHECKF(l.stale_pid == (long)c, "stale pid %ld, child %ld", l.stale_pid, (long)c);
    dv2_lock_release(&l);
}

static void test_other_host(void) {
    dv2_error err = {0};
    FILE *f = fopen("d/.dv2.lock", "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("12345 some-other-host.example\n", f);
    fclose(f);
    dv2_lock l;
    CHECK(dv2_lock_acquire(&l, "d", "dataset", &err) == DV2_EEXIST);
    CHECKF(strstr(err.msg, "12345") && strstr(err.msg, "some-other-host.example"), "%s", err.msg);
    dv2_lock_release(&l);
    CHECK(access("d/.dv2.lock", F_OK) == 0); /* not ours to remove */
}

/* dv2-embed --resume appends in place: a second appender is refused. */
static void test_matrix_append(void) {
    dv2_error err = {0};
    dv2_matrix_info info;
    dv2_matrix_info_init(&info, DV2_MATRIX_F32, 4);
    dv2_matrix_write_opts o = {0};
    o.append = 1;
    dv2_matrix_writer *a = NULL, *b = NULL;
    CHECK(dv2_matrix_writer_open(&a, "d/m.emb", &info, &o, &err) == 0);
    CHECK(dv2_matrix_writer_open(&b, "d/m.emb", &info, &o, &err) == DV2_EEXIST);
    CHECKF(strstr(err.msg, "the matrix is being written by process") != NULL, "%s", err.msg);
    CHECK(b == NULL);
    CHECK(dv2_matrix_writer_close(a, &err) == 0);
    CHECK(access("d/.m.emb.lock", F_OK) != 0);
    CHECK(dv2_matrix_writer_open(&b, "d/m.emb", &info, &o, &err) == 0);
    if (b) dv2_matrix_writer_close(b, &err);
}

int main(void) {
    test_in_process();
    test_matrix_append();
    test_other_process();
    test_other_host();
    return tu_finish("test_lock");
}
