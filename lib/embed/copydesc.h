/* copydesc.h — a model-free copy descriptor for dv2-embed --copy.
 *
 * Each image (the evaluation crop, (3, S, S), ImageNet-normalized) becomes:
 * luma, area-resampled to a 32x32 grid, mean 0 and standard deviation 1 per
 * image (brightness and contrast drop out), the lowest K x K coefficients of
 * its orthonormal 2-D DCT-II without the DC term (blur, re-encoding and
 * resizing change mostly what lies above), flip-symmetrised,
 * L2-normalized: K*K - 1 = 255 dims.  (Weighting the coefficients up with
 * frequency separated more unrelated images but lost more crops; see
 * docs/RESULTS.md.)
 *
 * Flip symmetry: a horizontal flip of the grid negates exactly the
 * coefficients of odd horizontal frequency and keeps the others.  The odd
 * ones are multiplied by the sign of the lowest one, c(0,1), so flip(x) and
 * x give the same vector (up to rounding) while the odd half keeps its
 * relative signs.  Deterministic: no fitted statistics, nothing learned. */
#ifndef DV2_COPYDESC_H
#define DV2_COPYDESC_H

#include "embed/embed.h"

#define DV2_COPYDESC_GRID 32
#define DV2_COPYDESC_K 16
#define DV2_COPYDESC_DIM (DV2_COPYDESC_K * DV2_COPYDESC_K - 1)
/* Calibrated on tests/t_dedup_copydetect.sh (docs/RESULTS.md): the cosine
 * dv2-dedup uses for this descriptor when -t / --against-threshold are not
 * given.  Recorded in the matrix header's features string. */
#define DV2_COPYDESC_THRESHOLD 0.85
#define DV2_COPYDESC_AGAINST_THRESHOLD 0.80

/* The copy descriptor over inputs of side size (>= 8). */
int dv2_embed_model_copy(dv2_embed_model **m, int size, dv2_error *err);

/* One descriptor: out (DV2_COPYDESC_DIM) from img (3, size, size). */
void dv2_copydesc_compute(float *out, const float *img, int size);

/* Reads "dedup-threshold X" / "against-threshold X" from a matrix features
 * string; returns 1 and sets *t when present, else 0. */
int dv2_copydesc_threshold(const char *features, const char *key, double *t);

#endif
