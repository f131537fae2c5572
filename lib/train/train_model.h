/* train_model.h — the state of a DINOv2 training run that lives on the
 * backend: the student (backbone, DINO head, iBOT head when separate) with
 * gradients, the EMA teacher (same modules, no gradients), the AdamW moments,
 * the parameter groups of spec §10.2, the DINO/iBOT centers; and the
 * operations on whole modules: gradient norms and clipping (§10.3), the AdamW
 * step with per-tensor lr/wd multipliers, the EMA update (§11), checkpoint
 * tensors out/in, and the export of the teacher backbone (dv2-embed input).
 *
 * Modules are numbered DV2_TM_BACKBONE, DV2_TM_DINO, DV2_TM_IBOT; the iBOT
 * module exists only with ibot.separate_head.
 *
 * Distillation (dv2-distill, spec §16): the teacher t_* is a frozen network
 * of its own architecture (loaded, never updated), and the EMA runs into a
 * spare copy of the student, e_* ("student_ema"), which is the final model.
 * ema_mod[] names the EMA target in both modes (t_mod when training).
 *
 * Sharded optimizer state (ZeRO-1, train.shard_optimizer): with W ranks,
 * module k's flat buffer of numel floats is cut into W contiguous chunks of
 * chunk[k] = floor(numel / W) floats and a tail of tail[k] = numel mod W
 * (< W) floats.  Rank r keeps the AdamW moments of chunk r and of the tail
 * only.  The chunks of the gradient are reduce-scattered (the tail is
 * all-reduced: no padding, no copy of the buffer), so rank r's reduced
 * chunk lies at its place in the gradient buffer; AdamW updates the rank's
 * chunk and the tail of the parameters (fp32: the parameters are the master
 * weights), every rank the tail alike; the chunks are then all-gathered
 * into every rank's whole buffer, which the forward and the EMA read.
 * The collectives run on pieces of at most 2^22/W floats per rank (at
 * least 4096; DV2_TRAIN_SHARD_PIECE sets it, for tests), staged through a
 * buffer of W+1 pieces, so the memory they add stays near 16 MiB.
 * Checkpoints gather the moments on save, so a checkpoint has the unsharded
 * layout and resumes at any world size (each rank takes its part on load).
 * Unsharded: shard_w = 1, chunk[k] = numel, tail[k] = 0. */
#ifndef DV2_TRAIN_MODEL_H
#define DV2_TRAIN_MODEL_H

#include <stdint.h>
#include "model/arch.h"
#include "train/config.h"
#include "core/dv2.h"
#include "core/dist.h"
#include "model/head.h"
#include "ops/ops.h"
#include "ops/params.h"
#include "format/safetensors.h"
#include "model/weights.h"
#include "model/vit.h"

enum { DV2_TM_BACKBONE = 0, DV2_TM_DINO = 1, DV2_TM_IBOT = 2, DV2_TM_N = 3 };

/* Per-tensor optimizer settings (spec §10.2). */
typedef struct dv2_train_model_group {
    float lr_mult, wd_mult;
    int is_last_layer;
} dv2_train_model_group;

typedef struct dv2_train_model {
    const dv2_backend *be;
    dv2_arch arch;
    dv2_vit s_bb, t_bb;
    dv2_head s_dino, t_dino, s_ibot, t_ibot;
    int separate_ibot;
    int n_mod;                      /* 2, or 3 with a separate iBOT head */
    dv2_params *s_mod[DV2_TM_N], *t_mod[DV2_TM_N]; /* module tables */
    const char *mod_name[DV2_TM_N]; /* "backbone", "dino_head", "ibot_head" */
    float *adam_m[DV2_TM_N], *adam_v[DV2_TM_N]; /* device, chunk[k] + tail[k] floats */
    int sharded;                    /* train.shard_optimizer (dv2_train_model_shard done) */
    int shard_w, shard_r;           /* ranks the state is sharded over and this rank (1, 0: unsharded) */
    const dv2_dist *dist;           /* sharded: the ranks */
    size_t chunk[DV2_TM_N];         /* floats of module k per rank (unsharded: numel) */
    size_t tail[DV2_TM_N];          /* numel mod W floats after the W chunks (unsharded: 0) */
    size_t piece;                   /* sharded: floats per rank in one collective */
    float *shard_buf;               /* sharded: device, one piece: the reduce-scatter's output,
                                     * the all-gather's input */
    float *shard_stage;             /* sharded: device, W pieces after shard_buf, or NULL when
                                     * every chunk is one piece */
    size_t optim_bytes;             /* resident optimizer state of this rank (AdamW moments) */
    struct dv2_train_model_range { int k; size_t lo, hi; } *red; /* gradient ranges started this step */
    int red_n, red_cap;
    dv2_train_model_group *group[DV2_TM_N];  /* host, one per tensor */
    int64_t adam_t;                 /* AdamW steps applied */
    float *dino_center, *ibot_center; /* device, K and K_i floats */
    int K, K_ibot;
    int distill;                    /* frozen teacher, EMA into e_* */
    dv2_arch t_arch;                /* the teacher's backbone (= arch when training) */
    dv2_vit e_bb;                   /* distillation: the student's EMA */
    dv2_head e_dino, e_ibot;
    dv2_params *ema_mod[DV2_TM_N];  /* EMA target: t_mod, or e_* when distilling */
} dv2_train_model;

/* The architecture of a frozen teacher (distillation): its backbone and
 * heads (ibot used with a separate iBOT head). */
typedef struct dv2_train_frozen {
    dv2_arch arch;
    dv2_head_arch dino, ibot;
} dv2_train_frozen;

/* Builds student and teacher from the config on be (weights zero). */
int dv2_train_model_init(dv2_train_model *m, const dv2_config *c, const dv2_backend *be, dv2_error *err);
/* Distillation: the student from the config, the teacher from t (weights
 * zero, to be loaded), the student's EMA copy. */
int dv2_train_model_init_distill(dv2_train_model *m, const dv2_config *c, const dv2_train_frozen *t,
                                 const dv2_backend *be, dv2_error *err);
void dv2_train_model_free(dv2_train_model *m);
/* Initial weights (spec §2.10, §3) from seed; EMA target (teacher, or the
 * student's EMA when distilling) = student. */
int dv2_train_model_init_weights(dv2_train_model *m, uint64_t seed, dv2_error *err);
/* Loads backbone weights from a safetensors file into the student and its
 * EMA target (official names; shapes must match, pos_embed included). */
int dv2_train_model_load_backbone(dv2_train_model *m, const char *path, dv2_error *err);

/* Shards the optimizer state over the ranks of dist (ZeRO-1): allocates
 * this rank's moments and the chunk buffer of the collectives.  Required once after init when
 * train.shard_optimizer is set (the moments are not allocated before). */
int dv2_train_model_shard(dv2_train_model *m, const dv2_dist *dist, dv2_error *err);

int dv2_train_model_zero_grad(dv2_train_model *m);
/* Global L2 norm of module k's gradient (host double). */
double dv2_train_model_grad_norm(const dv2_train_model *m, int k);
/* 1 if every gradient is finite. */
int dv2_train_model_grads_finite(const dv2_train_model *m);
/* Scales module k's gradient by a (sharded: this rank's chunk and the tail). */
void dv2_train_model_scale_grad(dv2_train_model *m, int k, float a);
/* Sharded: reduces every module's gradient over the ranks into this rank's
 * chunk and the tail, in place, divided by W (the mean).  Collective. */
int dv2_train_model_shard_grads(dv2_train_model *m, dv2_error *err);
/* The gradient reduction overlapped with the backward
 * (train.overlap_grad_reduce).  reduce_start starts reducing [lo, hi) of
 * module k's gradient over the ranks of dist as soon as that range is
 * final, without waiting (the range must not be written again this step):
 * an all-reduce, or sharded, a reduce of each rank's part of the range to
 * that rank and an all-reduce of the tail.  Ranges of one module must not
 * overlap.  reduce_finish starts the ranges that were not started, waits
 * for all of them and divides by W, which leaves the gradients as the
 * blocking reduction (dv2_train_model_shard_grads, or an all-reduce of every
 * module) does; *early (may be NULL) gets the floats started before it.
 * Collective: every rank starts the same ranges in the same order. */
int dv2_train_model_reduce_start(dv2_train_model *m, const dv2_dist *dist, int k, size_t lo, size_t hi,
                                 dv2_error *err);
int dv2_train_model_reduce_finish(dv2_train_model *m, const dv2_dist *dist, size_t *early, dv2_error *err);
/* Sharded: the global L2 norm of each module's reduced gradient (norm[k])
 * and whether all of them are finite, from the shards' sums all-reduced,
 * so clipping sees what the unsharded step sees.  Collective. */
int dv2_train_model_shard_grad_stats(const dv2_train_model *m, double *norm, int *finite, dv2_error *err);
/* AdamW on every student tensor with lr·lr_mult (last layers: last_lr),
 * wd·wd_mult; increments adam_t.  Sharded: only on the part of each tensor
 * in this rank's chunk, with the tensor's multipliers; then call
 * dv2_train_model_gather_params. */
void dv2_train_model_adamw(dv2_train_model *m, double lr, double last_lr, double wd, double beta1,
                  double beta2);
/* Sharded: all-gathers the updated chunks into every rank's whole
 * parameter buffers (collective); unsharded: nothing. */
int dv2_train_model_gather_params(dv2_train_model *m, dv2_error *err);
/* ema ← mom·ema + (1 − mom)·student, every module (ema_mod). */
void dv2_train_model_ema(dv2_train_model *m, double mom);

/* Checkpoint tensors: fills *entries (malloc'd, host copies in *bufs to free
 * with dv2_train_model_entries_free) with student.*, teacher.* (distillation:
 * student_ema.*; the frozen teacher is not stored), optimizer.* and the
 * centers.  Names: "student.backbone.<official>", "teacher.dino_head.<...>",
 * "optimizer.backbone.exp_avg.<...>", "optimizer.backbone.exp_avg_sq.<...>",
 * "dino_center", "ibot_center".  Sharded: collective (the moments are
 * gathered): every rank calls it, and only rank 0 gets entries (the others
 * get *n = 0 and NULL pointers). */
int dv2_train_model_entries(const dv2_train_model *m, dv2_safetensors_entry **entries, size_t *n,
                   float **host, dv2_error *err);
void dv2_train_model_entries_free(dv2_safetensors_entry *entries, float *host);
/* Restores everything dv2_train_model_entries saved (shapes checked);
 * sharded: each rank keeps the moments of its chunk. */
int dv2_train_model_restore(dv2_train_model *m, const dv2_safetensors_file *f, dv2_error *err);

/* Writes the teacher backbone with official names (blocks.N., no chunk
 * level) and its architecture as metadata, atomically. */
int dv2_train_model_export_teacher(const dv2_train_model *m, const char *path, dv2_error *err);
/* Writes one student-shaped network k (0: the student, 1: its EMA target)
 * like the teacher export, plus its heads as dino_head.<name> and
 * ibot_head.<name> (a file dv2-embed reads and dv2-distill takes as a
 * teacher); source goes into the metadata. */
int dv2_train_model_export_student(const dv2_train_model *m, int k, const char *source, const char *path,
                                   dv2_error *err);

/* XXH64 over the student and EMA-target parameters (for resume tests). */
uint64_t dv2_train_model_digest(const dv2_train_model *m);

#endif
