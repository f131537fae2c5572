/* test_matrix.c — the embedding matrix format: round trips (f32, f16, zstd,
 * through a pipe), the memory-mapped loader, append/resume after a cut, bad
 * headers and truncated rows rejected with the file named, f16 conversion on
 * every half value, and numpy reading and writing the format
 * (tests/ref/matrix_np.py, skipped without numpy). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "format/matrix.h"
#include "testutil.h"

/* Must match gen() in tests/ref/matrix_np.py. */
static void gen_rows(uint64_t *ids, int32_t *labels, float *vecs, size_t first, size_t n,
                     size_t d) {
    for (size_t r = 0; r < n; r++) {
        size_t i = first + r;
        ids[r] = ((uint64_t)i * 0x9E3779B97F4A7C15ull) ^ 0xFFFF000000000000ull;
        labels[r] = (int32_t)(i % 7) - 1;
        for (size_t j = 0; j < d; j++)
            vecs[r * d + j] = (float)((i * 31 + j * 17) % 1000) / 8.0f - 60.0f;
    }
}

static int write_matrix_npy(const char *path, size_t n, size_t d, int dtype, int zstd, size_t chunk,
                            const char *npy) {
    dv2_matrix_info info;
    dv2_matrix_info_init(&info, dtype, (uint32_t)d);
    strcpy(info.model, "test-model");
    strcpy(info.features, "cls");
    strcpy(info.note, "made by test_matrix");
    dv2_matrix_params_add(&info, "weights", "xxh64:%016llx", 0x0123456789abcdefull);
    dv2_matrix_params_add(&info, "size", "%d", 224);
    dv2_matrix_write_opts o = {.force = 1, .zstd = zstd, .npy_path = npy};
    dv2_matrix_writer *w;
    dv2_error err = {0};
    int rc = dv2_matrix_writer_open(&w, path, &info, &o, &err);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", path, err.msg);
        return rc;
    }
    uint64_t *ids = malloc(chunk * 8);
    int32_t *lab = malloc(chunk * 4);
    float *v = malloc(chunk * d * 4);
    for (size_t i = 0; i < n && !rc; i += chunk) {
        size_t m = n - i < chunk ? n - i : chunk;
        gen_rows(ids, lab, v, i, m, d);
        rc = dv2_matrix_writer_write(w, ids, lab, v, m, &err);
    }
    if (rc) dv2_matrix_writer_abort(w);
    else rc = dv2_matrix_writer_close(w, &err);
    if (rc) fprintf(stderr, "write %s: %s\n", path, err.msg);
    free(ids);
    free(lab);
    free(v);
    return rc;
}

static int write_matrix(const char *path, size_t n, size_t d, int dtype, int zstd, size_t chunk) {
    return write_matrix_npy(path, n, d, dtype, zstd, chunk, NULL);
}

/* Reads path with the streaming reader in blocks of cap and compares. */
static int read_check(const char *path, size_t n, size_t d, size_t cap) {
    dv2_matrix_reader *r;
    dv2_error err = {0};
    int rc = dv2_matrix_reader_open(&r, path, &err);
    if (rc) {
        fprintf(stderr, "reader %s: %s\n", path, err.msg);
        return 0;
    }
    const dv2_matrix_info *info = dv2_matrix_reader_info(r);
    int ok = info->dim == d && strcmp(info->model, "test-model") == 0 &&
             strcmp(info->features, "cls") == 0;
    uint64_t *ids = malloc(cap * 8), *wi = malloc(cap * 8);
    int32_t *lab = malloc(cap * 4), *wl = malloc(cap * 4);
    float *v = malloc(cap * d * 4), *wv = malloc(cap * d * 4);
    size_t seen = 0;
    for (;;) {
        int64_t m = dv2_matrix_reader_read(r, ids, lab, v, cap, &err);
        if (m < 0) {
            fprintf(stderr, "read %s: %s\n", path, err.msg);
            ok = 0;
            break;
        }
        if (m == 0) break;
        gen_rows(wi, wl, wv, seen, (size_t)m, d);
        ok = ok && !memcmp(ids, wi, (size_t)m * 8) && !memcmp(lab, wl, (size_t)m * 4) &&
             !memcmp(v, wv, (size_t)m * d * 4);
        seen += (size_t)m;
    }
    ok = ok && seen == n && dv2_matrix_reader_rows_read(r) == n;
    dv2_matrix_reader_close(r);
    free(ids); free(wi); free(lab); free(wl); free(v); free(wv);
    return ok;
}

static int load_check(const char *path, size_t n, size_t d, unsigned flags, int want_mapped) {
    dv2_matrix m;
    dv2_error err = {0};
    if (dv2_matrix_load(&m, path, flags, &err)) {
        fprintf(stderr, "load %s: %s\n", path, err.msg);
        return 0;
    }
    int ok = m.rows == n && m.dim == d && m.mapped == want_mapped &&
             m.ld == (want_mapped ? d + 3 : d);
    uint64_t id;
    int32_t lab;
    float *v = malloc(d * 4);
    for (size_t i = 0; i < m.rows && ok; i++) {
        gen_rows(&id, &lab, v, i, 1, d);
        ok = m.ids[i] == id && m.labels[i] == lab && !memcmp(m.vecs + i * m.ld, v, d * 4);
    }
    free(v);
    dv2_matrix_free(&m);
    return ok;
}

/* Expects opening/reading path to fail with code and a message naming path
 * and containing what. */
static void expect_bad(const char *path, int code, const char *what) {
    dv2_matrix_reader *r;
    dv2_error err = {0};
    int rc = dv2_matrix_reader_open(&r, path, &err);
    if (rc == 0) {
        float v[64 * 8];
        int64_t m;
        while ((m = dv2_matrix_reader_read(r, NULL, NULL, v, 8, &err)) > 0) {}
        rc = (int)m;
        dv2_matrix_reader_close(r);
    }
    CHECKF(rc == code && strstr(err.msg, path) && strstr(err.msg, what),
           "%s: rc %d msg '%s' (wanted %d, '%s')", path, rc, err.msg, code, what);
    dv2_matrix lm;
    rc = dv2_matrix_load(&lm, path, 0, &err);
    CHECKF(rc == code && strstr(err.msg, what), "load %s: rc %d msg '%s'", path, rc, err.msg);
    dv2_matrix_free(&lm);
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

static uint8_t *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(*n + 1);
    *n = fread(p, 1, *n, f);
    fclose(f);
    return p;
}

static void test_f16(void) {
    /* Every half value survives half -> float -> half (NaNs stay NaN). */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t in = (uint16_t)h, back;
        float f;
        dv2_matrix_f16_to_f32(&f, &in, 1);
        dv2_matrix_f32_to_f16(&back, &f, 1);
        int nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan ? !isnan(f) || (back & 0x7c00) != 0x7c00 || !(back & 0x3ff) : back != in) bad++;
    }
    CHECKF(bad == 0, "%d half values do not round-trip", bad);
    /* Rounding: ties to even, overflow, subnormals. */
    float in[] = {1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 65504.0f, 65519.0f, 65520.0f, 1e-8f,
                  5.960464477539063e-08f, -0.0f, 2.98e-8f, 3.0e-8f};
    uint16_t want[] = {0x3c00, 0x3c02, 0x7bff, 0x7bff, 0x7c00, 0x0000, 0x0001, 0x8000, 0x0000,
                       0x0001};
    uint16_t got[10];
    dv2_matrix_f32_to_f16(got, in, 10);
    for (int i = 0; i < 10; i++) CHECKF(got[i] == want[i], "f16(%g) = 0x%04x, want 0x%04x",
                                        (double)in[i], got[i], want[i]);
}

/* Streams a matrix through a pipe: a child writes it to "-" (its stdout), we
 * read "-" (our stdin). */
static int pipe_check(int zstd, size_t n, size_t d) {
    int fds[2];
    if (pipe(fds) != 0) return 0;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 1);
        close(fds[1]);
        _exit(write_matrix("-", n, d, DV2_MATRIX_F32, zstd, 333) ? 1 : 0);
    }
    close(fds[1]);
    int saved = dup(0);
    dup2(fds[0], 0);
    close(fds[0]);
    /* The reader names stdin; compare without the model check via read_check. */
    int ok = read_check("-", n, d, 250);
    int st;
    waitpid(pid, &st, 0);
    dup2(saved, 0);
    close(saved);
    return ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int have_numpy(void) {
    return system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0;
}

static int py(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int py(const char *fmt, ...) {
    char args[512], cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    const char *root = getenv("DV2_ROOT");
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/ref/matrix_np.py %s", root ? root : ".",
             args);
    return system(cmd) == 0;
}

int main(void) {
    dv2_error err = {0};
    const size_t n = 1000, d = 37;

    test_f16();

    /* Plain f32, odd chunk sizes on both sides; header records the count. */
    CHECK(write_matrix("a.emb", n, d, DV2_MATRIX_F32, 0, 77) == 0);
    CHECK(read_check("a.emb", n, d, 1));
    CHECK(read_check("a.emb", n, d, 999));
    CHECK(read_check("a.emb", n, d, 5000));
    CHECK(load_check("a.emb", n, d, 0, 1));
    CHECK(load_check("a.emb", n, d, DV2_MATRIX_LOAD_NOMAP, 0));
    {
        size_t len;
        uint8_t *p = read_bytes("a.emb", &len);
        CHECK(len == 4096 + n * (12 + 4 * d));
        uint64_t rows;
        memcpy(&rows, p + 32, 8);
        CHECK(rows == n);
        free(p);
    }
    /* Writable load: a private mapping, the file stays intact. */
    {
        dv2_matrix m;
        CHECK(dv2_matrix_load(&m, "a.emb", DV2_MATRIX_LOAD_WRITABLE, &err) == 0);
        if (m.rows) m.vecs[0] = 12345.0f;
        dv2_matrix_free(&m);
        CHECK(load_check("a.emb", n, d, 0, 1));
    }

    /* f16 (the generator's values are exact in f16), zstd, both. */
    CHECK(write_matrix("h.emb", n, d, DV2_MATRIX_F16, 0, 1000) == 0);
    CHECK(read_check("h.emb", n, d, 64));
    CHECK(load_check("h.emb", n, d, 0, 0));
    CHECK(write_matrix("z.emb", n, d, DV2_MATRIX_F32, 1, 100) == 0);
    CHECK(read_check("z.emb", n, d, 64));
    CHECK(load_check("z.emb", n, d, 0, 0));
    CHECK(write_matrix("hz.emb", n, d, DV2_MATRIX_F16, 1, 100) == 0);
    CHECK(read_check("hz.emb", n, d, 7));
    /* Empty matrices. */
    CHECK(write_matrix("e.emb", 0, d, DV2_MATRIX_F32, 0, 10) == 0);
    CHECK(read_check("e.emb", 0, d, 10));
    CHECK(load_check("e.emb", 0, d, 0, 1));
    CHECK(write_matrix("ez.emb", 0, d, DV2_MATRIX_F32, 1, 10) == 0);
    CHECK(load_check("ez.emb", 0, d, 0, 0));

    /* Pipes, plain and zstd. */
    CHECK(pipe_check(0, 3000, 5));
    CHECK(pipe_check(1, 3000, 5));

    /* No overwrite without force. */
    {
        dv2_matrix_info info;
        dv2_matrix_info_init(&info, DV2_MATRIX_F32, 4);
        dv2_matrix_writer *w;
        CHECK(dv2_matrix_writer_open(&w, "a.emb", &info, NULL, &err) == DV2_EEXIST);
        dv2_matrix_info_init(&info, DV2_MATRIX_F32, 0);
        dv2_matrix_write_opts o = {.force = 1};
        CHECK(dv2_matrix_writer_open(&w, "x.emb", &info, &o, &err) == DV2_EINVAL);
        CHECK(access("x.emb", F_OK) != 0);
    }

    /* Bad headers, each a clear error naming the file. */
    {
        size_t len;
        uint8_t *good = read_bytes("a.emb", &len);
        uint8_t *p = malloc(len);
        struct { size_t off; uint32_t val; const char *what; } cases[] = {
            {0, 0x4d324656, "bad magic"}, {8, 3, "version 3"}, {8, 0, "version 0"},
            {12, 1024, "header size"}, {16, 3, "dtype"}, {20, 0, "dimension 0"},
            {20, 38, "row size"}, {28, 1, "flags"}, {100, 7, "reserved"}, {3000, 1, "reserved"},
        };
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            memcpy(p, good, len);
            memcpy(p + cases[c].off, &cases[c].val, 4);
            write_bytes("bad.emb", p, len);
            expect_bad("bad.emb", DV2_ECORRUPT, cases[c].what);
        }
        memcpy(p, good, len);
        memset(p + 256, 'x', 256); /* model text without its NUL */
        write_bytes("bad.emb", p, len);
        expect_bad("bad.emb", DV2_ECORRUPT, "NUL");
        memcpy(p, good, len);
        memset(p + 1792, 'x', 1024); /* params without its NUL */
        write_bytes("bad.emb", p, len);
        expect_bad("bad.emb", DV2_ECORRUPT, "NUL");
        /* Version 1 (no params): read, its params empty; bytes where version 2
         * keeps params are reserved there. */
        memcpy(p, good, len);
        uint32_t v1 = 1;
        memcpy(p + 8, &v1, 4);
        memset(p + 1792, 0, 1024);
        write_bytes("v1.emb", p, len);
        dv2_matrix_reader *r1;
        CHECK(dv2_matrix_reader_open(&r1, "v1.emb", &err) == 0);
        if (r1) {
            CHECK(dv2_matrix_reader_info(r1)->version == 1 && !dv2_matrix_reader_info(r1)->params[0]);
            dv2_matrix_reader_close(r1);
        }
        p[2000] = 'k';
        write_bytes("bad.emb", p, len);
        expect_bad("bad.emb", DV2_ECORRUPT, "reserved");
        write_bytes("bad.emb", good, 100);
        expect_bad("bad.emb", DV2_ECORRUPT, "truncated header");
        write_bytes("bad.emb", good, 0);
        expect_bad("bad.emb", DV2_ECORRUPT, "empty");
        write_bytes("bad.emb", "hello, world, this is text\n", 27);
        expect_bad("bad.emb", DV2_ECORRUPT, "bad magic");
        /* Truncated last row: the message names row and offset. */
        write_bytes("cut.emb", good, len - 5);
        char what[128];
        snprintf(what, sizeof what, "truncated row %zu at offset %zu", n - 1,
                 4096 + (n - 1) * (12 + 4 * d));
        expect_bad("cut.emb", DV2_ECORRUPT, what);
        free(p);
        free(good);
        /* A cut zstd stream. */
        good = read_bytes("z.emb", &len);
        write_bytes("cutz.emb", good, len / 2);
        expect_bad("cutz.emb", DV2_ECORRUPT, "truncated");
        free(good);
        expect_bad("missing.emb", DV2_EIO, "cannot open");
    }

    /* Append (resume): cut mid-row, reopen, continue; the result is whole. */
    {
        CHECK(write_matrix("r.emb", 500, d, DV2_MATRIX_F32, 0, 100) == 0);
        size_t len;
        uint8_t *p = read_bytes("r.emb", &len);
        write_bytes("r.emb", p, len - 7); /* a killed writer's partial row */
        free(p);
        dv2_matrix_info info;
        dv2_matrix_info_init(&info, DV2_MATRIX_F32, (uint32_t)d);
        strcpy(info.model, "test-model");
        strcpy(info.features, "cls");
        CHECK(dv2_matrix_params_add(&info, "weights", "xxh64:%016llx", 0x0123456789abcdefull) == 0);
        CHECK(dv2_matrix_params_add(&info, "size", "%d", 224) == 0);
        dv2_matrix_write_opts o = {.append = 1, .npy_path = "r.npy"};
        dv2_matrix_writer *w;
        CHECK(dv2_matrix_writer_open(&w, "r.emb", &info, &o, &err) == 0);
        CHECK(dv2_matrix_writer_rows(w) == 499);
        size_t more = n - 499;
        uint64_t *ids = malloc(more * 8);
        int32_t *lab = malloc(more * 4);
        float *v = malloc(more * d * 4);
        gen_rows(ids, lab, v, 499, more, d);
        CHECK(dv2_matrix_writer_write(w, ids, lab, v, 200, &err) == 0);
        CHECK(dv2_matrix_writer_flush(w, &err) == 0);
        CHECK(dv2_matrix_writer_write(w, ids + 200, lab + 200, v + 200 * d, more - 200, &err) == 0);
        CHECK(dv2_matrix_writer_rows(w) == n);
        CHECK(dv2_matrix_writer_close(w, &err) == 0);
        CHECK(read_check("r.emb", n, d, 128));
        CHECK(load_check("r.emb", n, d, 0, 1));
        /* Append to a missing file creates it. */
        unlink("r2.emb");
        o.npy_path = NULL;
        CHECK(dv2_matrix_writer_open(&w, "r2.emb", &info, &o, &err) == 0);
        CHECK(dv2_matrix_writer_rows(w) == 0);
        CHECK(dv2_matrix_writer_write(w, ids, lab, v, 10, &err) == 0);
        CHECK(dv2_matrix_writer_close(w, &err) == 0);
        /* Mismatches are refused. */
        dv2_matrix_info other = info;
        other.dim = (uint32_t)d + 1;
        CHECK(dv2_matrix_writer_open(&w, "r.emb", &other, &o, &err) == DV2_EINVAL);
        CHECKF(strstr(err.msg, "r.emb") != NULL, "%s", err.msg);
        /* What made the rows (params) must be the same, value by value; the
         * model's display name alone does not matter when params exist. */
        other = info;
        strcpy(other.model, "another name for the same weights");
        CHECK(dv2_matrix_writer_open(&w, "r.emb", &other, &o, &err) == 0);
        if (w) dv2_matrix_writer_abort(w);
        other = info;
        other.params[0] = 0;
        CHECK(dv2_matrix_params_add(&other, "weights", "xxh64:%016llx", 0xfedcba9876543210ull) == 0);
        CHECK(dv2_matrix_params_add(&other, "size", "%d", 224) == 0);
        CHECK(dv2_matrix_writer_open(&w, "r.emb", &other, &o, &err) == DV2_EINVAL);
        CHECKF(strstr(err.msg, "r.emb") && strstr(err.msg, "weights=xxh64:0123456789abcdef") &&
                   strstr(err.msg, "weights=xxh64:fedcba9876543210"), "%s", err.msg);
        other = info;
        CHECK(dv2_matrix_params_add(&other, "normalize", "1") == 0);
        CHECK(dv2_matrix_writer_open(&w, "r.emb", &other, &o, &err) == DV2_EINVAL);
        CHECKF(strstr(err.msg, "normalize=(none)") && strstr(err.msg, "normalize=1"), "%s", err.msg);
        CHECK(dv2_matrix_writer_open(&w, "z.emb", &info, &o, &err) == DV2_EINVAL);
        CHECKF(strstr(err.msg, "compressed") != NULL, "%s", err.msg);
        /* A matrix without params (version 1, or written without them) cannot
         * take rows that have them: nothing tells whether they match. */
        {
            size_t len1;
            uint8_t *p1 = read_bytes("r.emb", &len1);
            uint32_t v1 = 1;
            memcpy(p1 + 8, &v1, 4);
            memset(p1 + 1792, 0, 1024);
            write_bytes("old.emb", p1, len1);
            free(p1);
            CHECK(dv2_matrix_writer_open(&w, "old.emb", &info, &o, &err) == DV2_EINVAL);
            CHECKF(strstr(err.msg, "old.emb") && strstr(err.msg, "version 1"), "%s", err.msg);
        }
        /* A killed first run leaves an empty file or part of a header: start
         * over (and say how much was dropped); other bytes are refused. */
        {
            size_t len1;
            uint8_t *p1 = read_bytes("r.emb", &len1);
            long cuts[3] = {0, 5, 4000};
            for (int c = 0; c < 3; c++) {
                write_bytes("ph.emb", p1, (size_t)cuts[c]);
                CHECKF(dv2_matrix_writer_open(&w, "ph.emb", &info, &o, &err) == 0, "%s", err.msg);
                if (!w) continue;
                CHECK(dv2_matrix_writer_rows(w) == 0 && dv2_matrix_writer_restarted(w) == cuts[c]);
                CHECK(dv2_matrix_writer_write(w, ids, lab, v, 10, &err) == 0);
                CHECK(dv2_matrix_writer_close(w, &err) == 0);
                dv2_matrix_reader *r;
                CHECK(dv2_matrix_reader_open(&r, "ph.emb", &err) == 0);
                if (r) {
                    CHECK(!strcmp(dv2_matrix_reader_info(r)->params, info.params));
                    CHECK(dv2_matrix_reader_read(r, NULL, NULL, NULL, 100, &err) == 10);
                    dv2_matrix_reader_close(r);
                }
            }
            free(p1);
            write_bytes("ph.emb", "hello", 5);
            CHECK(dv2_matrix_writer_open(&w, "ph.emb", &info, &o, &err) == DV2_ECORRUPT);
            CHECKF(strstr(err.msg, "ph.emb") && strstr(err.msg, "magic"), "%s", err.msg);
        }
        free(ids);
        free(lab);
        free(v);
    }

    /* params lines: set, read back through a file, refused when malformed. */
    {
        dv2_matrix_info a;
        dv2_matrix_info_init(&a, DV2_MATRIX_F32, 4);
        CHECK(dv2_matrix_params_add(&a, "arch", "vit_small D%d", 384) == 0);
        CHECK(dv2_matrix_params_add(&a, "Bad-Key", "x") == DV2_EINVAL);
        CHECK(dv2_matrix_params_add(&a, "k", "two\nlines") == DV2_EINVAL);
        char big[2000];
        memset(big, 'v', sizeof big - 1);
        big[sizeof big - 1] = 0;
        CHECK(dv2_matrix_params_add(&a, "k", "%s", big) == DV2_EINVAL);
        char val[64];
        CHECK(dv2_matrix_params_get(&a, "arch", val, sizeof val) == 1 && !strcmp(val, "vit_small D384"));
        CHECK(dv2_matrix_params_get(&a, "ar", val, sizeof val) == 0);
        CHECK(dv2_matrix_check_same_params(&a, &a, "x", &err) == 0);
    }

    /* No NaN or infinity is ever written (and nothing of that call), and f16
     * refuses what would round to infinity. */
    {
        dv2_matrix_info info;
        dv2_matrix_info_init(&info, DV2_MATRIX_F32, 3);
        dv2_matrix_writer *w;
        uint64_t ids[2] = {1, 0xabcdef};
        float v[6] = {1, 2, 3, 4, NAN, 6};
        CHECK(dv2_matrix_writer_open(&w, "nan.emb", &info, &(dv2_matrix_write_opts){.force = 1}, &err) == 0);
        if (w) {
            CHECK(dv2_matrix_writer_write(w, ids, NULL, v, 2, &err) == DV2_ECORRUPT);
            CHECKF(strstr(err.msg, "0000000000abcdef") && strstr(err.msg, "not finite"), "%s", err.msg);
            v[4] = INFINITY;
            CHECK(dv2_matrix_writer_write(w, ids, NULL, v, 2, &err) == DV2_ECORRUPT);
            CHECK(dv2_matrix_writer_rows(w) == 0);
            v[4] = 5;
            CHECK(dv2_matrix_writer_write(w, ids, NULL, v, 2, &err) == 0);
            CHECK(dv2_matrix_writer_close(w, &err) == 0);
        }
        info.dtype = DV2_MATRIX_F16;
        CHECK(dv2_matrix_writer_open(&w, "nanh.emb", &info, &(dv2_matrix_write_opts){.force = 1}, &err) == 0);
        if (w) {
            v[4] = 65504.0f;
            CHECK(dv2_matrix_writer_write(w, ids, NULL, v, 2, &err) == 0);
            v[4] = 70000.0f;
            CHECK(dv2_matrix_writer_write(w, ids, NULL, v, 2, &err) == DV2_ECORRUPT);
            CHECKF(strstr(err.msg, "float16") != NULL, "%s", err.msg);
            dv2_matrix_writer_abort(w);
        }
    }

    /* Temporaries of killed writers of the same output are removed by the
     * next writer; those of a live process stay. */
    {
        pid_t dead = fork();
        if (dead == 0) _exit(0);
        waitpid(dead, NULL, 0);
        char stale[64], live[64];
        snprintf(stale, sizeof stale, ".t.emb.tmp.%ld", (long)dead);
        snprintf(live, sizeof live, ".t.emb.tmp.%ld", (long)getppid());
        write_bytes(stale, "x", 1);
        write_bytes(live, "x", 1);
        write_bytes(".other.emb.tmp.999999999", "x", 1);
        CHECK(write_matrix("t.emb", 10, 3, DV2_MATRIX_F32, 0, 10) == 0);
        CHECK(access(stale, F_OK) != 0);
        CHECK(access(live, F_OK) == 0);
        CHECK(access(".other.emb.tmp.999999999", F_OK) == 0);
        unlink(live);
        /* append mode too */
        dv2_matrix_info info;
        dv2_matrix_info_init(&info, DV2_MATRIX_F32, 3);
        dv2_matrix_writer *w;
        snprintf(stale, sizeof stale, ".t2.emb.tmp.%ld", (long)dead);
        write_bytes(stale, "x", 1);
        CHECK(dv2_matrix_writer_open(&w, "t2.emb", &info, &(dv2_matrix_write_opts){.append = 1}, &err) == 0);
        if (w) dv2_matrix_writer_abort(w);
        CHECK(access(stale, F_OK) != 0);
    }

    /* Dimension mismatch between two inputs. */
    {
        dv2_matrix_info a, b;
        dv2_matrix_info_init(&a, DV2_MATRIX_F32, 384);
        dv2_matrix_info_init(&b, DV2_MATRIX_F32, 768);
        CHECK(dv2_matrix_check_same_dim(&a, "train.emb", &b, "test.emb", &err) == DV2_EINVAL);
        CHECKF(strstr(err.msg, "test.emb") && strstr(err.msg, "train.emb"), "%s", err.msg);
        CHECK(dv2_matrix_check_same_dim(&a, "x", &a, "y", &err) == 0);
    }

    /* numpy: the documented one-liner reads what we write; we read what
     * plain numpy writes; the .npy export loads with np.load. */
    if (have_numpy()) {
        CHECK(py("check a.emb %zu %zu 1", n, d));
        CHECK(py("check h.emb %zu %zu 2", n, d));
        CHECK(py("check r.emb %zu %zu 1", n, d));
        CHECK(py("npy r.npy %zu %zu", n, d));
        CHECK(py("write np.emb %zu %zu", n, d));
        dv2_matrix_reader *r;
        CHECK(dv2_matrix_reader_open(&r, "np.emb", &err) == 0);
        if (r) {
            CHECK(strcmp(dv2_matrix_reader_info(r)->model, "numpy-writer") == 0);
            dv2_matrix_reader_close(r);
        }
        dv2_matrix m;
        CHECK(dv2_matrix_load(&m, "np.emb", 0, &err) == 0);
        CHECK(m.rows == n && m.mapped);
        dv2_matrix_free(&m);
        CHECK(load_check("a.emb", n, d, 0, 1));
        CHECK(dv2_matrix_load(&m, "a.emb", 0, &err) == 0);
        CHECK(dv2_matrix_write_npy(&m, "a.npy", 0, &err) == 0);
        CHECK(dv2_matrix_write_npy(&m, "a.npy", 0, &err) == DV2_EEXIST);
        dv2_matrix_free(&m);
        CHECK(py("npy a.npy %zu %zu", n, d));
        /* the writer's own .npy mirror, plain and beside a compressed matrix */
        CHECK(write_matrix_npy("w.emb", n, d, DV2_MATRIX_F32, 0, 111, "w.npy") == 0);
        CHECK(py("npy w.npy %zu %zu", n, d));
        CHECK(write_matrix_npy("wz.emb", n, d, DV2_MATRIX_F16, 1, 1000, "wz") == 0);
        CHECK(py("npy wz %zu %zu", n, d));
        CHECK(read_check("wz.emb", n, d, 100));
    } else {
        fprintf(stderr, "numpy not available: numpy checks skipped\n");
    }
    return tu_finish("test_matrix");
}
