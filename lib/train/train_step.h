/* train_step.h — one DINOv2 training iteration (spec §5) on a batch:
 * teacher forward on the global crops, targets (softmax centering or
 * Sinkhorn-Knopp, §6.2/§6.3/§7.3), student forward on the packed global +
 * local crops with iBOT masks and batch-subset stochastic depth, DINO + iBOT +
 * KoLeo losses (§6–§9), backward, gradient averaging over ranks, the
 * non-finite check, per-module clipping (§10.3), AdamW with the parameter
 * groups, and the EMA teacher update (§11).
 *
 * Heads are row-wise, so a shared DINO/iBOT head is run as two passes of the
 * same head (class tokens, then masked patch tokens) whose gradients add up:
 * the same result as the reference's concatenated pass.  Targets, centers,
 * losses and their gradients run on the backend (its loss entries, ops.h):
 * per step the host sends the images and the packing plan, and gets back
 * only the loss terms, the collapse diagnostics and one norm and one
 * finiteness flag per module (the weighted total, lib/model/loss.h, is
 * formed from those scalars on the host). */
#ifndef DV2_TRAIN_STEP_H
#define DV2_TRAIN_STEP_H

#include <stdint.h>
#include "train/config.h"
#include "core/dist.h"
#include "train/schedule.h"
#include "train/loader.h"
#include "train/train_model.h"
#include "train/collapse.h"

typedef struct dv2_train_step_stats {
    double dino_local, dino_global, ibot, koleo, total; /* averaged over ranks */
    double grad_norm[DV2_TM_N];                          /* before clipping */
    int n_masked;                                        /* M summed over ranks */
    int finite;                                          /* 0: step not applied */
    int global_size;                                     /* global crop side of this step */
    dv2_collapse_stats collapse;                         /* of this rank's batch, before the update */
    /* the gradient reduction across ranks (0 with one process): seconds of
     * it after the backward (host time), floats reduced, and of those the
     * floats started during the backward (train.overlap_grad_reduce) */
    double reduce_s;
    size_t reduce_floats, reduce_early;
} dv2_train_step_stats;

typedef struct dv2_train_step dv2_train_step;

int dv2_train_step_create(dv2_train_step **st, const dv2_config *c, dv2_train_model *m, const dv2_dist *dist,
                       dv2_error *err);
void dv2_train_step_free(dv2_train_step *st);
/* Device bytes of the student's pass (its activations and their
 * gradients; dv2_vit_pass_bytes), *bf16_kept as there. */
size_t dv2_train_step_student_bytes(const dv2_train_step *st, int *bf16_kept);
/* Runs iteration `it` on batch b with the schedule values v (b->masks, when
 * set, replaces the iBOT masks the step would draw). */
int dv2_train_step_run(dv2_train_step *st, const dv2_batch *b, int64_t it, const dv2_sched_values *v,
                    dv2_train_step_stats *out, dv2_error *err);

#endif
