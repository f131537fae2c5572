/* hash.c — XXH64, written from the algorithm's published description
 * (primes, 4-lane 32-byte stripes, merge rounds, avalanche).  Little-endian
 * reads are done byte-wise so the result is the same on any host. */
#include "core/hash.h"

#include <string.h>

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static uint64_t rd64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t round1(uint64_t acc, uint64_t in) {
    acc += in * P2;
    acc = rotl(acc, 31);
    return acc * P1;
}
static uint64_t merge(uint64_t acc, uint64_t v) {
    acc ^= round1(0, v);
    return acc * P1 + P4;
}

/* Folds the final < 32 bytes and avalanches. */
static uint64_t finish(uint64_t h, const uint8_t *p, size_t len) {
    while (len >= 8) { h ^= round1(0, rd64(p)); h = rotl(h, 27) * P1 + P4; p += 8; len -= 8; }
    if (len >= 4) { h ^= (uint64_t)rd32(p) * P1; h = rotl(h, 23) * P2 + P3; p += 4; len -= 4; }
    while (len > 0) { h ^= (*p) * P5; h = rotl(h, 11) * P1; p++; len--; }
    h ^= h >> 33; h *= P2; h ^= h >> 29; h *= P3; h ^= h >> 32;
    return h;
}

void dv2_xxh64_init(dv2_xxh64_state *s, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->seed = seed;
    s->v[0] = seed + P1 + P2;
    s->v[1] = seed + P2;
    s->v[2] = seed;
    s->v[3] = seed - P1;
}

void dv2_xxh64_update(dv2_xxh64_state *s, const void *data, size_t len) {
    const uint8_t *p = data;
    s->total += len;
    if (s->buflen + len < 32) {
        memcpy(s->buf + s->buflen, p, len);
        s->buflen += (uint32_t)len;
        return;
    }
    if (s->buflen) {
        size_t fill = 32 - s->buflen;
        memcpy(s->buf + s->buflen, p, fill);
        for (int i = 0; i < 4; i++) s->v[i] = round1(s->v[i], rd64(s->buf + 8 * i));
        p += fill; len -= fill; s->buflen = 0;
    }
    while (len >= 32) {
        for (int i = 0; i < 4; i++) s->v[i] = round1(s->v[i], rd64(p + 8 * i));
        p += 32; len -= 32;
    }
    memcpy(s->buf, p, len);
    s->buflen = (uint32_t)len;
}

uint64_t dv2_xxh64_digest(const dv2_xxh64_state *s) {
    uint64_t h;
    if (s->total >= 32) {
        h = rotl(s->v[0], 1) + rotl(s->v[1], 7) + rotl(s->v[2], 12) + rotl(s->v[3], 18);
        for (int i = 0; i < 4; i++) h = merge(h, s->v[i]);
    } else {
        h = s->seed + P5;
    }
    h += s->total;
    return finish(h, s->buf, s->buflen);
}

uint64_t dv2_xxh64(const void *data, size_t len, uint64_t seed) {
    dv2_xxh64_state s;
    dv2_xxh64_init(&s, seed);
    dv2_xxh64_update(&s, data, len);
    return dv2_xxh64_digest(&s);
}

uint64_t dv2_key_id(const char *key) { return dv2_xxh64(key, strlen(key), 0); }
