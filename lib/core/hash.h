/* hash.h — XXH64 (written from the published algorithm description), used for
 * record ids and record checksums.  A record's default id is
 * dv2_key_id(key) = XXH64(key bytes, seed 0), so Python's xxhash.xxh64_intdigest
 * reproduces it. */
#ifndef DV2_HASH_H
#define DV2_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct dv2_xxh64_state {
    uint64_t v[4];
    uint64_t total;
    uint8_t buf[32];
    uint32_t buflen;
    uint64_t seed;
} dv2_xxh64_state;

uint64_t dv2_xxh64(const void *data, size_t len, uint64_t seed);
void dv2_xxh64_init(dv2_xxh64_state *s, uint64_t seed);
void dv2_xxh64_update(dv2_xxh64_state *s, const void *data, size_t len);
uint64_t dv2_xxh64_digest(const dv2_xxh64_state *s);
uint64_t dv2_key_id(const char *key);

#endif
