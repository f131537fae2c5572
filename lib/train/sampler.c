/* sampler.c — sharded infinite sampler (sampler.h, spec §4.1). */
#include "train/sampler.h"

#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

/* Fills s->slice with this rank's indices of pass s->pass (inside-out
 * Fisher-Yates: element i lands at a uniform j <= i, the old occupant moves
 * to i). */
static void build_slice(dv2_sampler *s) {
    const uint64_t r = (uint64_t)s->rank, W = (uint64_t)s->world;
    if (!s->shuffle) {
        for (uint64_t i = 0; i < s->count; i++) s->slice[i] = (uint32_t)(r + i * W);
        return;
    }
    dv2_rng g;
    dv2_rng_seed(&g, s->seed + r + (s->pass << 24), 0);
    for (uint64_t i = 0; i < s->count; i++) {
        uint32_t v = s->perm[r + i * W];
        uint64_t j = i ? dv2_rng_below(&g, i + 1) : 0;
        s->slice[i] = s->slice[j];
        s->slice[j] = v;
    }
}

int dv2_sampler_init(dv2_sampler *s, uint64_t n, int rank, int world, uint64_t seed, int shuffle,
                     dv2_error *err) {
    memset(s, 0, sizeof *s);
    if (world < 1 || rank < 0 || rank >= world)
        return dv2_error_set(err, DV2_EINVAL, "sampler: rank %d of %d", rank, world);
    if (n < (uint64_t)world)
        return dv2_error_set(err, DV2_EINVAL, "sampler: %llu records for %d ranks (need at least one each)",
                             (unsigned long long)n, world);
    if (n > UINT32_MAX)
        return dv2_error_set(err, DV2_ENOMEM, "sampler: %llu records (at most 2^32-1)", (unsigned long long)n);
    s->n = n;
    s->rank = rank;
    s->world = world;
    s->seed = seed;
    s->shuffle = shuffle;
    s->count = n / (uint64_t)world;
    s->slice = dv2_malloc_array(s->count, sizeof *s->slice);
    if (!s->slice) return dv2_error_set(err, DV2_ENOMEM, "sampler: out of memory");
    if (shuffle) {
        s->perm = dv2_malloc_array(n, sizeof *s->perm);
        if (!s->perm) {
            dv2_sampler_free(s);
            return dv2_error_set(err, DV2_ENOMEM, "sampler: out of memory");
        }
        for (uint64_t i = 0; i < n; i++) s->perm[i] = (uint32_t)i;
        dv2_rng g;
        dv2_rng_seed(&g, seed, 0);
        dv2_rng_shuffle_u32(&g, s->perm, n);
    }
    build_slice(s);
    return DV2_OK;
}

void dv2_sampler_free(dv2_sampler *s) {
    if (!s) return;
    free(s->perm);
    free(s->slice);
    s->perm = s->slice = NULL;
}

uint64_t dv2_sampler_next(dv2_sampler *s) {
    if (s->offset >= s->count) {
        s->pass++;
        s->offset = 0;
        build_slice(s);
    }
    return s->slice[s->offset++];
}

void dv2_sampler_get_state(const dv2_sampler *s, uint64_t st[2]) {
    st[0] = s->pass;
    st[1] = s->offset;
}

int dv2_sampler_set_state(dv2_sampler *s, const uint64_t st[2], dv2_error *err) {
    if (st[1] > s->count)
        return dv2_error_set(err, DV2_ECORRUPT, "sampler: offset %llu beyond %llu indices per pass",
                             (unsigned long long)st[1], (unsigned long long)s->count);
    int rebuild = st[0] != s->pass;
    s->pass = st[0];
    s->offset = st[1];
    if (rebuild) build_slice(s);
    return DV2_OK;
}
