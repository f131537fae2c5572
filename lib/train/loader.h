/* loader.h — the training data loader: worker threads (pthreads) that
 * read records, decode them and draw the DINOv2 multi-crop (lib/image/augment.h)
 * into a ring of batch slots ahead of the compute, in iteration order.
 *
 * Iteration it uses the sampler positions it·B .. it·B+B−1 of this rank
 * (lib/train/sampler.h), so the data of any iteration is known from the iteration
 * number alone: resuming at iteration it sets the sampler to position it·B.
 * The crops of image `idx` at iteration `it` are drawn from an RNG seeded
 * with (seed, it, idx), independent of thread timing and of the rank that
 * reads it (so one rank and two ranks see the same crops of an image).
 *
 * Batch layout (spec §4.3, crop-major): global crop c of image i at row
 * c·B + i of global_px (2B, S_g, S_g, 3); local crop v of image i at row
 * v·B + i of local_px (L·B, S_l, S_l, 3); u8 RGB, the crops before the
 * normalisation (which runs on the device). */
#ifndef DV2_TRAIN_DATA_H
#define DV2_TRAIN_DATA_H

#include <stdint.h>
#include "format/dataset.h"
#include "core/dv2.h"

typedef struct dv2_loader_cfg {
    int batch;                 /* B, images per rank */
    int global_size, local_size, n_local;
    double global_scale[2], local_scale[2];
    int64_t highres_from;      /* iterations >= this use highres_size (or -1) */
    int highres_size;
    int workers;               /* threads, >= 1 */
    int depth;                 /* batch slots, >= 2 */
    uint64_t seed;
    int rank, world, shuffle;
} dv2_loader_cfg;

typedef struct dv2_batch {
    int64_t it;
    int B, L, Sg, Sl;
    /* The crops, crop-major (global crop c of image i at c·B + i, local
     * crop v at v·B + i), on the host in one of two forms: u8 RGB pixels
     * (S, S, 3) each, normalised on the device (what the loader gives: a
     * quarter of the bytes, and exactly the floats below), or float CHW
     * already normalised (tests feed those); the step takes the pixels when
     * global_px is set. */
    uint8_t *global_px, *local_px;
    float *global, *local;
    uint64_t *idx;             /* B dataset indices */
    const uint8_t *masks;      /* (2B, N_g) iBOT masks to use instead of drawing
                                * them (NULL, as the loader leaves it: drawn) */
} dv2_batch;

typedef struct dv2_loader dv2_loader;

/* Starts the workers at iteration start_it.  ds must have random access and
 * its index loaded; it is shared by the workers (one record buffer each). */
int dv2_loader_create(dv2_loader **ld, dv2_dataset *ds, const dv2_loader_cfg *c, int64_t start_it,
                      dv2_error *err);
/* The batch of the next iteration (waits for it).  Valid until released. */
int dv2_loader_next(dv2_loader *ld, dv2_batch **b, dv2_error *err);
void dv2_loader_release(dv2_loader *ld, dv2_batch *b);
/* Stops and joins the workers; NULL allowed. */
void dv2_loader_free(dv2_loader *ld);
/* Sampler position (pass, offset) at the start of iteration it. */
void dv2_loader_sampler_state(const dv2_loader *ld, int64_t it, uint64_t st[2]);
/* Seconds the consumer spent waiting for data so far. */
double dv2_loader_wait_seconds(const dv2_loader *ld);

#endif
