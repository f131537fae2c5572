/* mask.h — the iBOT block masks of one per-process batch (spec §7.1): the
 * BEiT-style block-wise masking generator and the collate step that picks
 * which global crops are masked, with what ratio, and lays out the flat
 * index list, the per-token weights and the buffer upper bound.
 *
 * The algorithm is the reference's step for step (float32 linspace of the
 * ratio bounds, truncations, Python round half-to-even for the rectangle
 * sides, 10 placement attempts, the shuffle of the 2B masks); the random
 * numbers come from lib/core/rng.h, so the masks are not bit-identical to the
 * Python ones, but their distribution is. */
#ifndef DV2_MASK_H
#define DV2_MASK_H

#include <stddef.h>
#include <stdint.h>
#include "core/dv2.h"
#include "core/rng.h"

typedef struct dv2_mask_gen {
    int h, w;               /* patch grid (rows, columns) */
    double min_num_patches; /* 4 */
    double max_num_patches; /* ((0.5·img) // p · img) // p, left to right in floats */
    double log_aspect_min;  /* ln 0.3 */
    double log_aspect_max;  /* ln (1/0.3) */
} dv2_mask_gen;

/* max_num_patches of the reference: ((0.5·img_size) // p · img_size) // p
 * with Python float floor divisions (128 for 224/14, 98 for 224/16, 666 for
 * 518/14). */
double dv2_mask_max_num_patches(int img_size, int patch_size);

/* The generator for global crops of img_size pixels and patch p: grid
 * img/p × img/p, min 4 patches, aspect in [0.3, 1/0.3].  DV2_EINVAL for bad
 * sizes. */
int dv2_mask_gen_init(dv2_mask_gen *g, int img_size, int patch_size, dv2_error *err);

/* One block mask with about `target` patches: mask (h·w) is overwritten
 * (1 = masked).  Returns the number of masked patches (<= target; it may
 * fall short when a placement adds nothing). */
int dv2_mask_block(uint8_t *mask, const dv2_mask_gen *g, int target, dv2_rng *r);

/* The masks of one batch of n_crops = 2B global crops, N = h·w patches each.
 *   n_masked = floor(n_crops·prob) crops get a mask; the i-th draws its ratio
 *   uniformly in [probs[i], probs[i+1]] (probs = float32 linspace of
 *   n_masked+1 values from ratio_min to ratio_max), target = trunc(N·ratio);
 *   the others get none; the n_crops masks are shuffled.
 * Outputs (caller-allocated, overwritten):
 *   masks (n_crops, N) uint8;
 *   idx (capacity n_crops·N) int32: flat indices row·N + patch of the masked
 *     positions in increasing order (I of §5); *M = their number;
 *   weights (capacity n_crops·N) float: weights[j] = 1/max(m_r, 1) for the
 *     row r of idx[j];
 *   *upperbound = Σ_i trunc(N·probs[i+1]) (>= *M; sizes the padded buffers).
 * scratch: dv2_mask_batch_scratch_bytes(n_crops, N) bytes, aligned as malloc's. */
size_t dv2_mask_batch_scratch_bytes(int n_crops, int N);
int dv2_mask_batch(uint8_t *masks, int32_t *idx, float *weights, int *M, int *upperbound,
                   void *scratch, const dv2_mask_gen *g, int n_crops, double prob, float ratio_min,
                   float ratio_max, dv2_rng *r, dv2_error *err);

/* The upper bound alone (deterministic in n_crops, N, prob and the ratios). */
int dv2_mask_upperbound(int n_crops, int N, double prob, float ratio_min, float ratio_max);

/* Value i of torch.linspace(start, end, steps) in float32 (the symmetric
 * formula of the CPU kernel). */
float dv2_mask_linspace_f32(float start, float end, int steps, int i);

#endif
