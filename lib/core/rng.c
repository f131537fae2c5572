/* rng.c — xoshiro256** (Blackman & Vigna) with splitmix64 seeding. */
#include "core/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void dv2_rng_seed(dv2_rng *r, uint64_t seed, uint64_t stream) {
    /* Mix the stream through splitmix first so (seed, stream) pairs that differ
     * in either word start far apart. */
    uint64_t x = seed;
    uint64_t y = stream ^ 0xD1B54A32D192ED03ULL;
    uint64_t m = splitmix64(&x) ^ splitmix64(&y);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&m);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1;
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t dv2_rng_u64(dv2_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double dv2_rng_uniform(dv2_rng *r) { return (double)(dv2_rng_u64(r) >> 11) * 0x1.0p-53; }

double dv2_rng_uniform_range(dv2_rng *r, double a, double b) { return a + (b - a) * dv2_rng_uniform(r); }

uint64_t dv2_rng_below(dv2_rng *r, uint64_t n) {
    /* Rejection of the top partial range keeps it unbiased. */
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = dv2_rng_u64(r); while (x >= lim);
    return x % n;
}

int64_t dv2_rng_randint(dv2_rng *r, int64_t lo, int64_t hi) {
    return lo + (int64_t)dv2_rng_below(r, (uint64_t)(hi - lo) + 1);
}

double dv2_rng_normal(dv2_rng *r) {
    double u1 = dv2_rng_uniform(r), u2 = dv2_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

void dv2_rng_shuffle_u32(dv2_rng *r, uint32_t *a, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)dv2_rng_below(r, i);
        uint32_t t = a[i - 1]; a[i - 1] = a[j]; a[j] = t;
    }
}
