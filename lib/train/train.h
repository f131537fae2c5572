/* train.h — the DINOv2 training engine behind dv2-train: builds the student
 * and teacher from a config, feeds batches from the data loader threads,
 * runs the iterations (lib/train/train_step.h) with the schedules, logs metrics,
 * writes checkpoints and the exported teacher into the run directory, and
 * resumes from the newest complete checkpoint.
 *
 * Run directory:
 *   config.cfg                  the resolved config
 *   metrics.jsonl               one JSON line per iteration
 *   loss.svg                    loss curves, refreshed as the run goes
 *   ckpt-<step>.safetensors     checkpoints (the newest train.keep_checkpoints)
 *   teacher.safetensors         teacher backbone, official names + arch metadata
 *
 * Distillation (o->teacher set, dv2-distill, spec §16): the teacher is the
 * frozen network of lib/train/teacher.h, checked and loaded before anything
 * is written; the student has no masking (iBOT on every patch token) and no
 * stochastic depth; the EMA runs into a spare copy of the student.  The run
 * directory then holds, instead of teacher.safetensors:
 *   student_ema.safetensors     the student's EMA (the final model): backbone
 *                               with official names + dino_head.*, ibot_head.*
 *   student.safetensors         the raw student, same layout
 * and checkpoints store student_ema.* instead of teacher.*, plus the
 * teacher's digest (resume refuses a changed teacher).
 *
 * Stopping: SIGTERM or SIGUSR1 (dv2_graceful_install) ends the run after the
 * current iteration with a checkpoint; the result says it was interrupted.
 * Every rank takes part in every collective; rank 0 writes the files. */
#ifndef DV2_TRAIN_H
#define DV2_TRAIN_H

#include <stdint.h>
#include "train/config.h"
#include "core/dist.h"
#include "core/dv2.h"
#include "ops/ops.h"

typedef struct dv2_train_opts {
    const char *data;      /* dataset directory or shard */
    const char *run_dir;
    int resume;            /* continue from the newest checkpoint in run_dir */
    int threads;           /* data worker threads (0: train.num_workers) */
    /* called by rank 0 with one line of text every train.log_period
     * iterations and for notices (may be NULL) */
    void (*on_log)(void *ctx, const char *line);
    void *log_ctx;
    const char *teacher;   /* distillation: teacher run directory or weights (NULL: training) */
    const dv2_backend *backend; /* the backend the step runs on (NULL: the CPU backend) */
} dv2_train_opts;

typedef struct dv2_train_result {
    int64_t start_iter;    /* first iteration run by this process */
    int64_t end_iter;      /* iterations completed (the checkpoint step) */
    int64_t total_iters;
    double seconds;        /* wall time of the loop */
    double images_per_s;   /* global images per second over the loop */
    double last_loss;
    int interrupted;       /* stopped by a signal (checkpoint written) */
    int bad_steps;         /* non-finite steps skipped */
    uint64_t digest;       /* XXH64 of student and teacher parameters at the end */
    size_t optim_bytes;    /* resident optimizer state (AdamW moments) of one rank */
    int optim_shards;      /* ranks that state is sharded over (0: not sharded) */
    /* bytes through the backend's to_host / to_device inside the training
     * steps of this process (checkpoints and exports not counted), and the
     * bytes of the input batches among the latter, summed over steps_run */
    uint64_t step_to_host, step_to_device, step_input;
    int64_t steps_run;
    /* the gradient reduction across ranks, summed over steps_run: seconds
     * after the backward, floats reduced, floats started during the backward */
    double reduce_s;
    uint64_t reduce_floats, reduce_early;
    int reduce_overlap;    /* 1: train.overlap_grad_reduce was in effect */
    size_t student_bytes;  /* device bytes of the student's pass at the last step */
    int student_bf16_kept; /* 1: it keeps its blocks' outputs in 16-bit containers */
} dv2_train_result;

/* Runs the training described by c.  Returns 0 when the run finished or was
 * interrupted cleanly; a DV2_E* status with err filled otherwise. */
int dv2_train_run(const dv2_config *c, const dv2_train_opts *o, const dv2_dist *dist,
                  dv2_train_result *res, dv2_error *err);

#endif
