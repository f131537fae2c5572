/* posembed.h — resampling of the positional-embedding table to another patch
 * grid (spec §2.4), forward and backward, as PyTorch's
 * F.interpolate(mode="bicubic", align_corners=False) does it.
 *
 * The table pos (1+M·M, D) holds the CLS entry then an M×M grid, row-major.
 * The CLS entry is copied unchanged; the grid is resampled to oh×ow.  The
 * resampling is linear and separable: a plan holds one dense 1-D weight
 * matrix per axis, wy (oh, M) and wx (ow, M), built here once per grid size
 * on the host; the backend's posembed_forward applies them and its
 * posembed_backward their transposes (ops/ops.h), on the device.
 *
 * Two modes, chosen by the architecture (lib/model/arch.h):
 *   offset > 0, antialias 0 (non-register checkpoints, training default):
 *     driven by the scale factor s = (n + offset)/M: output index o samples
 *     source coordinate (o + 0.5)/s − 0.5; cubic convolution a = −0.75 on
 *     the taps floor(src)−1 … floor(src)+2, each clamped to [0, M−1].
 *   offset = 0, antialias 1 (register checkpoints): to an explicit size,
 *     scale = M/n; antialiased bicubic (a = −0.5); when downsampling the
 *     support is widened by the scale; weights renormalized over the
 *     in-range taps (no border replication).
 * The other two combinations follow the same rules (offset 0 without
 * antialias = size-driven plain bicubic; offset > 0 with antialias =
 * scale-factor-driven antialiased bicubic).
 *
 * A plan with oh = ow = M is the identity (the reference skips the
 * interpolation when the grid is unchanged and square).
 *
 * Axis order: oh is the number of patch rows (Hpx/p), ow of columns
 * (Wpx/p).  The reference names them the other way round ("w" is tensor
 * dim 2, the height) but resamples dim 2 to the row count, so this is the
 * same computation. */
#ifndef DV2_POSEMBED_H
#define DV2_POSEMBED_H

#include <stddef.h>
#include "core/dv2.h"

typedef struct dv2_posembed_plan {
    int M;          /* source grid side */
    int oh, ow;     /* output grid rows, columns */
    int identity;   /* oh == ow == M: plain copy */
    float *wy;      /* (oh, M) row weights */
    float *wx;      /* (ow, M) column weights */
} dv2_posembed_plan;

/* Fills w (n_out, n_in), dense, with the 1-D interpolation weights of one
 * axis (mode as above).  Each row sums to 1. */
void dv2_posembed_weights(float *w, int n_out, int n_in, float offset, int antialias);

/* Builds a plan (allocates wy and wx; not for the hot path: keep it per grid
 * size).  DV2_EINVAL for sizes < 1 or > 4096. */
int dv2_posembed_plan_init(dv2_posembed_plan *p, int M, int oh, int ow, float offset, int antialias,
                           dv2_error *err);
void dv2_posembed_plan_free(dv2_posembed_plan *p);

/* Scratch floats that posembed_forward/backward need: oh·M·D (0 for the
 * identity). */
size_t dv2_posembed_scratch_floats(const dv2_posembed_plan *p, int D);

#endif
