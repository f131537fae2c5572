/* rng.h — the one random generator of dv2: xoshiro256** seeded through
 * splitmix64.  Its state is four words, saved in checkpoints so a resumed run
 * draws the same numbers.  dv2_rng_seed(seed, stream) gives independent,
 * reproducible streams (one per rank, worker, sample, ...). */
#ifndef DV2_RNG_H
#define DV2_RNG_H

#include <stdint.h>
#include <stddef.h>

typedef struct dv2_rng { uint64_t s[4]; } dv2_rng;

void dv2_rng_seed(dv2_rng *r, uint64_t seed, uint64_t stream);
uint64_t dv2_rng_u64(dv2_rng *r);
double dv2_rng_uniform(dv2_rng *r);                 /* [0, 1), 53 bits */
double dv2_rng_uniform_range(dv2_rng *r, double a, double b); /* a + (b-a)*U */
uint64_t dv2_rng_below(dv2_rng *r, uint64_t n);     /* [0, n), unbiased; n > 0 */
int64_t dv2_rng_randint(dv2_rng *r, int64_t lo, int64_t hi); /* [lo, hi] inclusive */
double dv2_rng_normal(dv2_rng *r);                  /* N(0,1), Box-Muller, no cached value */
void dv2_rng_shuffle_u32(dv2_rng *r, uint32_t *a, size_t n);  /* Fisher-Yates */

#endif
