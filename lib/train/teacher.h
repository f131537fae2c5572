/* teacher.h — the frozen teacher of dv2-distill (spec §16): a backbone with
 * its DINO head (and iBOT head when separate), read from
 *   - a dv2-train run directory: its newest complete checkpoint, tensors
 *     teacher.backbone.*, teacher.dino_head.*, teacher.ibot_head.*, the
 *     architecture from the checkpoint's resolved config;
 *   - a checkpoint file (ckpt-*.safetensors) of such a run;
 *   - safetensors holding the backbone under the official names plus
 *     dino_head.* (and ibot_head.*), the architecture in the metadata or
 *     inferred from the shapes (dv2-distill's student_ema.safetensors is such
 *     a file).
 *
 * The teacher keeps its own width, depth and head MLP sizes; what must agree
 * with the student's config is checked before any work starts: the patch
 * size (patch tokens are compared one to one), the prototype counts, whether
 * the iBOT head is separate, and then every tensor's shape (the message
 * names the tensor and both shapes). */
#ifndef DV2_TEACHER_H
#define DV2_TEACHER_H

#include <stdint.h>
#include "core/dv2.h"
#include "train/config.h"
#include "train/train_model.h"

typedef struct dv2_teacher {
    char path[4096];          /* the safetensors file the tensors come from */
    char prefix[DV2_TM_N][32]; /* tensor name prefixes: backbone, DINO head, iBOT head */
    dv2_train_frozen arch;
} dv2_teacher;

/* Finds the teacher file of source (directory or file) and its architecture,
 * and checks it against the student config c. */
int dv2_teacher_open(dv2_teacher *t, const char *source, const dv2_config *c, dv2_error *err);

/* Loads the teacher into m->t_* (m built by dv2_train_model_init_distill
 * with t->arch), checking every tensor's shape first; *digest = XXH64 of the
 * teacher's values (resume checks that the teacher did not change). */
int dv2_teacher_load(const dv2_teacher *t, dv2_train_model *m, uint64_t *digest, dv2_error *err);

#endif
