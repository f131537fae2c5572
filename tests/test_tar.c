/* test_tar.c — the streaming tar reader (lib/format/tarread.h): members of
 * a plain and of a gzip-compressed archive (two gzip members back to back)
 * read from a file descriptor with no prefix (the case UBSan once flagged:
 * memcpy from a NULL prefix of length 0), the sniffing of both forms, and
 * damaged gzip data reported as corrupt. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "format/tarread.h"
#include "testutil.h"

/* One ustar member (header + data padded to 512) into buf; returns bytes. */
static size_t member(uint8_t *buf, const char *name, const char *data) {
    size_t n = strlen(data), padded = (n + 511) / 512 * 512;
    memset(buf, 0, 512 + padded);
    snprintf((char *)buf, 100, "%s", name);
    memcpy(buf + 100, "0000644", 8);
    memcpy(buf + 108, "0000000", 8);
    memcpy(buf + 116, "0000000", 8);
    snprintf((char *)buf + 124, 12, "%011o", (unsigned)n);
    memcpy(buf + 136, "00000000000", 12);
    buf[156] = '0';
    memcpy(buf + 257, "ustar", 6);
    memcpy(buf + 263, "00", 2);
    memset(buf + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += buf[i];
    snprintf((char *)buf + 148, 8, "%06o", sum);
    memcpy(buf + 512, data, n);
    return 512 + padded;
}

static int read_all(const char *path, char names[][32], int max, dv2_error *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -100;
    dv2_tar *t = NULL;
    int rc = dv2_tar_open_fd(&t, fd, path, NULL, 0, err), k = 0;
    const char *p;
    const uint8_t *d;
    size_t n;
    while (rc == 0 && (rc = dv2_tar_next(t, &p, &d, &n, err)) == 1 && k < max) {
        snprintf(names[k], 32, "%s=%.*s", p, (int)n, (const char *)d);
        k++;
        rc = 0;
    }
    dv2_tar_close(t);
    close(fd);
    return rc < 0 ? rc : k;
}

int main(void) {
    static uint8_t tar[8192];
    size_t n = member(tar, "a.jpg", "AAAA");
    n += member(tar + n, "a.cls", "3\n");
    size_t half = n;
    n += member(tar + n, "b.png", "BB");
    memset(tar + n, 0, 1024);
    n += 1024;
    FILE *f = fopen("x.tar", "wb");
    fwrite(tar, 1, n, f);
    fclose(f);
    /* gzip: the archive in two gzip members, as `cat a.gz b.gz` makes */
    gzFile g = gzopen("x.tar.gz", "wb");
    gzwrite(g, tar, (unsigned)half);
    gzclose(g);
    g = gzopen("part2.gz", "wb");
    gzwrite(g, tar + half, (unsigned)(n - half));
    gzclose(g);
    CHECK(system("cat part2.gz >> x.tar.gz") == 0);

    dv2_error err = {0};
    char names[8][32];
    CHECKF(read_all("x.tar", names, 8, &err) == 3, "%s", err.msg);
    CHECK(!strcmp(names[0], "a.jpg=AAAA") && !strcmp(names[1], "a.cls=3\n") && !strcmp(names[2], "b.png=BB"));
    memset(names, 0, sizeof names);
    CHECKF(read_all("x.tar.gz", names, 8, &err) == 3, "%s", err.msg);
    CHECK(!strcmp(names[0], "a.jpg=AAAA") && !strcmp(names[2], "b.png=BB"));

    uint8_t head[512];
    int fd = open("x.tar.gz", O_RDONLY);
    long k = read(fd, head, sizeof head);
    close(fd);
    CHECK(k > 0 && dv2_tar_sniff(head, (size_t)k));
    CHECK(dv2_tar_sniff(tar, 512));
    CHECK(!dv2_tar_sniff((const uint8_t *)"\x1f\x8bnot really gzip", 17));

    /* damage inside the compressed data */
    f = fopen("x.tar.gz", "r+b");
    fseek(f, 30, SEEK_SET);
    fwrite("\xff\xff\xff\xff\xff\xff\xff\xff", 1, 8, f);
    fclose(f);
    int rc = read_all("x.tar.gz", names, 8, &err);
    CHECKF(rc < 0 && strstr(err.msg, "x.tar.gz"), "rc %d: %s", rc, err.msg);
    return tu_finish("test_tar");
}
