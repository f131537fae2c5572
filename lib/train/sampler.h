/* sampler.h — the sharded infinite sampler of DINOv2 training (spec §4.1).
 *
 * The dataset's indices 0..n-1 are permuted once with a generator seeded by
 * `seed`.  Rank r owns the positions r, r+W, r+2W, ... of that permutation,
 * truncated to n/W entries so every rank has the same count (the remainder
 * is dropped, as in the reference).  Each pass over its slice uses a fresh
 * inside-out Fisher-Yates shuffle seeded with seed + r + (pass << 24), so a
 * position (pass, offset) is reproducible without replaying earlier passes.
 *
 * The generator is our own (lib/core/rng.h); the orders differ from torch's but
 * have the same structure.  The state (pass, offset) is two integers, saved in
 * checkpoints: dv2_sampler_set_state continues exactly where a run stopped. */
#ifndef DV2_SAMPLER_H
#define DV2_SAMPLER_H

#include <stdint.h>
#include "core/dv2.h"

typedef struct dv2_sampler {
    uint64_t n;          /* dataset size */
    int rank, world;
    uint64_t seed;
    int shuffle;         /* 0: the slice in dataset order, every pass */
    uint32_t *perm;      /* the global permutation (n), or NULL without shuffle */
    uint32_t *slice;     /* this pass's order of this rank's indices (count) */
    uint64_t count;      /* indices per rank and pass: n / world */
    uint64_t pass;       /* current pass */
    uint64_t offset;     /* next position in slice */
} dv2_sampler;

/* n must be >= world and < 2^32. */
int dv2_sampler_init(dv2_sampler *s, uint64_t n, int rank, int world, uint64_t seed, int shuffle,
                     dv2_error *err);
void dv2_sampler_free(dv2_sampler *s);

/* The next dataset index of this rank (never ends). */
uint64_t dv2_sampler_next(dv2_sampler *s);

/* State: st[0] = pass, st[1] = offset.  set_state checks offset <= count. */
void dv2_sampler_get_state(const dv2_sampler *s, uint64_t st[2]);
int dv2_sampler_set_state(dv2_sampler *s, const uint64_t st[2], dv2_error *err);

#endif
