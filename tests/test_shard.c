/* test_shard.c — the shard format end to end through lib/format/shard.h and
 * lib/format/dataset.h: write records of awkward sizes, read them back
 * sequentially, from a pipe and by random access; then damage a shard at
 * every byte (flip) and every length (truncate) and require a clean error,
 * never a crash, a hang or a silently wrong record. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "format/dataset.h"
#include "core/hash.h"
#include "core/rng.h"
#include "format/shard.h"
#include "testutil.h"

#define NREC 37

static uint8_t *payload[NREC];
static size_t psize[NREC];
static char keys[NREC][64];

static void make_records(void) {
    dv2_rng g;
    dv2_rng_seed(&g, 7, 0);
    for (int i = 0; i < NREC; i++) {
        psize[i] = i == 0 ? 0 : i == NREC - 1 ? 2500000 : (size_t)dv2_rng_below(&g, 5000);
        payload[i] = malloc(psize[i] + 1);
        for (size_t j = 0; j < psize[i]; j++) /* half compressible, half noise */
            payload[i][j] = (uint8_t)(j < psize[i] / 2 ? j % 7 : dv2_rng_u64(&g));
        snprintf(keys[i], sizeof keys[i], "dir/img %03d.jpg", i);
    }
}

static void fill(dv2_record *r, int i) {
    memset(r, 0, sizeof *r);
    r->key = keys[i];
    r->id = dv2_key_id(keys[i]);
    r->label = i % 5 - 1;
    r->data = payload[i];
    r->size = psize[i];
    if (i % 3 == 0) { r->meta = "w=28 h=28"; r->meta_size = 9; }
}

static int same(const dv2_record *r, int i) {
    dv2_record w;
    fill(&w, i);
    return r->id == w.id && strcmp(r->key, w.key) == 0 && r->label == w.label && r->size == w.size &&
           (r->size == 0 || memcmp(r->data, w.data, w.size) == 0) &&
           ((!r->meta && !w.meta) || (r->meta && w.meta && strcmp(r->meta, w.meta) == 0));
}

static int write_shard(const char *path, int n) {
    FILE *f = fopen(path, "wb");
    dv2_shard_writer *w;
    dv2_error e;
    int rc = dv2_shard_writer_create(&w, f, path, 3, &e);
    for (int i = 0; i < n && rc == 0; i++) {
        dv2_record r;
        fill(&r, i);
        rc = dv2_shard_writer_add(w, &r, &e);
    }
    if (rc == 0) rc = dv2_shard_writer_finish(w, &e);
    if (rc < 0) fprintf(stderr, "write: %s\n", e.msg);
    dv2_shard_writer_free(w);
    fclose(f);
    return rc;
}

/* Reads the whole shard sequentially: number of good records, or -1 on error. */
static long read_all(const char *path, int check, dv2_error *e) {
    dv2_shard_reader *r;
    if (dv2_shard_open(&r, path, e) < 0) return -1;
    dv2_record rec;
    long n = 0;
    int rc;
    while ((rc = dv2_shard_next(r, &rec, e)) == 1) {
        if (check && (n >= NREC || !same(&rec, (int)n))) { n = -2; break; }
        n++;
    }
    dv2_shard_close(r);
    return rc < 0 ? -1 : n;
}

static long read_random(const char *path, dv2_error *e) {
    dv2_shard_reader *r;
    if (dv2_shard_open(&r, path, e) < 0) return -1;
    long bad = 0;
    dv2_recbuf b;
    dv2_recbuf_init(&b);
    if (dv2_shard_load_index(r, e) < 0) bad = -1;
    for (uint64_t k = 0; bad == 0 && k < dv2_shard_count(r); k++) {
        uint64_t i = (k * 11) % dv2_shard_count(r);
        dv2_record rec;
        if (dv2_shard_get(r, i, &rec, &b, e) < 0 || !same(&rec, (int)i)) bad = -1;
    }
    dv2_recbuf_free(&b);
    dv2_shard_close(r);
    return bad;
}

int main(void) {
    dv2_error e;
    make_records();
    CHECK(write_shard("a.dv2s", NREC) == 0);
    CHECK(read_all("a.dv2s", 1, &e) == NREC);
    CHECK(read_random("a.dv2s", &e) == 0);
    CHECK(write_shard("empty.dv2s", 0) == 0);
    CHECK(read_all("empty.dv2s", 1, &e) == 0);

    /* from a pipe: no seeking, still every record */
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        int in = open("a.dv2s", O_RDONLY);
        char buf[4096];
        ssize_t k;
        while ((k = read(in, buf, sizeof buf)) > 0)
            if (write(fds[1], buf, (size_t)k) != k) _exit(1);
        _exit(0);
    }
    close(fds[1]);
    dv2_shard_reader *r;
    CHECK(dv2_shard_open_fd(&r, fds[0], "pipe", NULL, 0, &e) == 0);
    CHECK(!dv2_shard_seekable(r));
    dv2_record rec;
    int n = 0, rc;
    while ((rc = dv2_shard_next(r, &rec, &e)) == 1) n += same(&rec, n);
    CHECK(rc == 0 && n == NREC);
    CHECK(dv2_shard_load_index(r, &e) == DV2_EUNSUPPORTED);
    dv2_shard_close(r);
    close(fds[0]);
    waitpid(pid, NULL, 0);

    /* a dataset over a single shard file */
    dv2_dataset *ds;
    CHECK(dv2_dataset_open(&ds, "a.dv2s", &e) == 0);
    CHECK(dv2_dataset_count(ds) == NREC);
    dv2_recbuf b;
    dv2_recbuf_init(&b);
    CHECK(dv2_dataset_get(ds, 5, &rec, &b, &e) == 0 && same(&rec, 5));
    uint64_t id;
    int32_t lab;
    CHECK(dv2_dataset_entry(ds, 7, &id, &lab, &e) == 0 && id == dv2_key_id(keys[7]) && lab == 7 % 5 - 1);
    CHECK(dv2_dataset_get(ds, NREC, &rec, &b, &e) == DV2_EINVAL);
    dv2_recbuf_free(&b);
    dv2_dataset_close(ds);

    /* damage: a small shard, every byte flipped, every truncation */
    CHECK(write_shard("s.dv2s", 4) == 0);
    FILE *f = fopen("s.dv2s", "rb");
    static uint8_t orig[1 << 16];
    size_t len = fread(orig, 1, sizeof orig, f);
    fclose(f);
    int undetected = 0, random_undetected = 0;
    for (size_t i = 0; i < len; i++) {
        orig[i] ^= 0x20;
        f = fopen("d.dv2s", "wb");
        fwrite(orig, 1, len, f);
        fclose(f);
        orig[i] ^= 0x20;
        if (read_all("d.dv2s", 1, &e) != -1) {
            undetected++;
            fprintf(stderr, "flip at %zu not detected\n", i);
        }
        if (read_random("d.dv2s", &e) != -1) random_undetected++;
    }
    CHECK(undetected == 0);
    CHECK(random_undetected == 0);
    int trunc_ok = 1;
    for (size_t t = 0; t < len; t++) {
        f = fopen("d.dv2s", "wb");
        fwrite(orig, 1, t, f);
        fclose(f);
        if (read_all("d.dv2s", 1, &e) != -1 || read_random("d.dv2s", &e) != -1) trunc_ok = 0;
    }
    CHECK(trunc_ok);
    /* an index whose checksum is right but whose offsets are not (a writer
     * bug or a forged file) is refused, not followed */
    {
        static uint8_t forged[1 << 16];
        memcpy(forged, orig, len);
        uint64_t T = 0;
        for (int k = 0; k < 8; k++) T |= (uint64_t)forged[len - 16 + k] << (8 * k);
        uint8_t *idx = forged + len - T, *e1 = idx + 24 + 24;
        e1[0] ^= 1; /* entry 1: offset off by one */
        uint64_t n = 0;
        for (int k = 0; k < 8; k++) n |= (uint64_t)idx[16 + k] << (8 * k);
        uint64_t h = dv2_xxh64(idx + 8, (size_t)(16 + 24 * n), 0);
        for (int k = 0; k < 8; k++) idx[24 + 24 * n + k] = (uint8_t)(h >> (8 * k));
        f = fopen("forged.dv2s", "wb");
        fwrite(forged, 1, len, f);
        fclose(f);
        CHECK(read_random("forged.dv2s", &e) == -1);
        CHECKF(strstr(e.msg, "index entry 1"), "%s", e.msg);
        CHECK(read_all("forged.dv2s", 0, &e) == -1);
    }
    /* the message names the shard and the record */
    orig[40] ^= 0xff;
    f = fopen("d.dv2s", "wb");
    fwrite(orig, 1, len, f);
    fclose(f);
    CHECK(read_all("d.dv2s", 0, &e) == -1);
    CHECKF(strstr(e.msg, "d.dv2s") && strstr(e.msg, "record 0"), "%s", e.msg);
    for (int i = 0; i < NREC; i++) free(payload[i]);
    return tu_finish("test_shard");
}
