/* test_core.c — the shared core: XXH64 against reference digests from an
 * independent implementation (Python's xxhash package), streaming in pieces,
 * the RNG's determinism and ranges, strict number parsing, atomic files. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/afile.h"
#include "cli/cli.h"
#include "core/hash.h"
#include "core/rng.h"
#include "testutil.h"

static void test_xxh64(void) {
    uint8_t hundred[100];
    for (int i = 0; i < 100; i++) hundred[i] = (uint8_t)i;
    const char *s42 = "0123456789abcdef0123456789abcdef0123456789";
    struct { const void *p; size_t n; uint64_t seed, want; } v[] = {
        {"", 0, 0, 0xef46db3751d8e999ULL},        {"", 0, 7, 0x95f0626f6f0a4409ULL},
        {"a", 1, 0, 0xd24ec4f1a98c6e5bULL},       {"a", 1, 7, 0xdc6349d489e0f965ULL},
        {"abc", 3, 0, 0x44bc2cf5ad770999ULL},     {"abc", 3, 7, 0x9e755206156676d7ULL},
        {s42, 42, 0, 0xa76190c3acf08a1cULL},      {s42, 42, 7, 0x9cdb6129259b938eULL},
        {hundred, 100, 0, 0x6ac1e58032166597ULL}, {hundred, 100, 7, 0x80653e7e9b887cddULL},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        CHECKF(dv2_xxh64(v[i].p, v[i].n, v[i].seed) == v[i].want, "vector %zu", i);
        /* the same digest fed in pieces of every split point */
        for (size_t cut = 0; cut <= v[i].n; cut += 7) {
            dv2_xxh64_state st;
            dv2_xxh64_init(&st, v[i].seed);
            dv2_xxh64_update(&st, v[i].p, cut);
            dv2_xxh64_update(&st, (const uint8_t *)v[i].p + cut, v[i].n - cut);
            CHECKF(dv2_xxh64_digest(&st) == v[i].want, "vector %zu split at %zu", i, cut);
        }
    }
    CHECK(dv2_key_id("abc") == 0x44bc2cf5ad770999ULL);
}

static void test_rng(void) {
    dv2_rng a, b, c;
    dv2_rng_seed(&a, 42, 0);
    dv2_rng_seed(&b, 42, 0);
    dv2_rng_seed(&c, 42, 1);
    int same = 1, diff = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = dv2_rng_u64(&a), y = dv2_rng_u64(&b), z = dv2_rng_u64(&c);
        same &= x == y;
        diff += x != z;
    }
    CHECK(same);
    CHECK(diff == 100);
    double sum = 0, sq = 0;
    int n = 200000, inrange = 1, below_ok = 1, randint_ok = 1, seen_lo = 0, seen_hi = 0;
    for (int i = 0; i < n; i++) {
        double u = dv2_rng_uniform(&a);
        inrange &= u >= 0 && u < 1;
        sum += u;
        double g = dv2_rng_normal(&a);
        sq += g * g;
        below_ok &= dv2_rng_below(&a, 7) < 7;
        int64_t r = dv2_rng_randint(&a, -3, 3);
        randint_ok &= r >= -3 && r <= 3;
        seen_lo |= r == -3;
        seen_hi |= r == 3;
    }
    CHECK(inrange && below_ok && randint_ok && seen_lo && seen_hi);
    CHECKF(fabs(sum / n - 0.5) < 0.01, "mean %g", sum / n);
    CHECKF(fabs(sq / n - 1.0) < 0.02, "normal variance %g", sq / n);
    uint32_t p[50];
    for (int i = 0; i < 50; i++) p[i] = (uint32_t)i;
    dv2_rng_shuffle_u32(&a, p, 50);
    int count[50] = {0}, moved = 0;
    for (int i = 0; i < 50; i++) { if (p[i] < 50) count[p[i]]++; moved += p[i] != (uint32_t)i; }
    int perm = 1;
    for (int i = 0; i < 50; i++) perm &= count[i] == 1;
    CHECK(perm && moved > 25);
}

static void test_parse(void) {
    int64_t v; int i; uint64_t u; double d;
    CHECK(dv2_parse_i64("-12", -100, 100, &v) == 0 && v == -12);
    CHECK(dv2_parse_i64("12x", -100, 100, &v) != 0);
    CHECK(dv2_parse_i64("", -100, 100, &v) != 0);
    CHECK(dv2_parse_i64("101", -100, 100, &v) != 0);
    CHECK(dv2_parse_i64("99999999999999999999", INT64_MIN, INT64_MAX, &v) != 0);
    CHECK(dv2_parse_int(" 5", 0, 10, &i) != 0 || i == 5); /* strtol skips leading space: allowed */
    CHECK(dv2_parse_u64("-1", &u) != 0);
    CHECK(dv2_parse_u64("18446744073709551615", &u) == 0 && u == UINT64_MAX);
    CHECK(dv2_parse_size("1G", &u) == 0 && u == 1ULL << 30);
    CHECK(dv2_parse_size("64KiB", &u) == 0 && u == 64ULL << 10);
    CHECK(dv2_parse_size("3M", &u) == 0 && u == 3ULL << 20);
    CHECK(dv2_parse_size("12", &u) == 0 && u == 12);
    CHECK(dv2_parse_size("1X", &u) != 0);
    CHECK(dv2_parse_size("99999999999T", &u) != 0);
    CHECK(dv2_parse_double("0.25", 0, 1, &d) == 0 && d == 0.25);
    CHECK(dv2_parse_double("nan", 0, 1, &d) != 0);
    CHECK(dv2_parse_double("2", 0, 1, &d) != 0);
    int list[8], n;
    CHECK(dv2_parse_int_list("10,20,100,200", 1, 1000, list, 8, &n) == 0 && n == 4 && list[3] == 200);
    CHECK(dv2_parse_int_list("10,,20", 1, 1000, list, 8, &n) != 0);
    CHECK(dv2_parse_int_list("10,20,", 1, 1000, list, 8, &n) != 0);
}

static void test_afile(void) {
    dv2_error err;
    dv2_afile a;
    unlink("out.bin");
    CHECK(dv2_afile_open(&a, "out.bin", 0, &err) == 0);
    fputs("hello", a.f);
    struct stat st;
    CHECK(stat("out.bin", &st) != 0); /* not visible before commit */
    CHECK(dv2_afile_commit(&a, &err) == 0);
    CHECK(stat("out.bin", &st) == 0 && st.st_size == 5);
    CHECK(dv2_afile_open(&a, "out.bin", 0, &err) == DV2_EEXIST);
    CHECK(strstr(err.msg, "out.bin") != NULL);
    CHECK(dv2_afile_open(&a, "out.bin", 1, &err) == 0);
    fputs("partial", a.f);
    dv2_afile_abort(&a);
    char *data; size_t n;
    CHECK(dv2_read_file("out.bin", 1 << 20, &data, &n, &err) == 0 && n == 5 && memcmp(data, "hello", 5) == 0);
    free(data);
    CHECK(access(".out.bin.tmp", F_OK) != 0);
    CHECK(dv2_read_file("missing.bin", 100, &data, &n, &err) == DV2_EIO && strstr(err.msg, "missing.bin"));
    CHECK(dv2_write_file_atomic("big.bin", "0123456789", 10, &err) == 0);
    CHECK(dv2_read_file("big.bin", 4, &data, &n, &err) == DV2_ENOMEM);
    CHECK(dv2_mkdir_p("a/b/c", &err) == 0 && stat("a/b/c", &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(dv2_mkdir_p("big.bin", &err) != 0);
}

int main(void) {
    test_xxh64();
    test_rng();
    test_parse();
    test_afile();
    return tu_finish("test_core");
}
