/* weights_load.h — the one loader of safetensors weights into model
 * parameters, behind dv2-embed -m, student.pretrained_weights and the
 * teacher of dv2-distill. */
#ifndef DV2_WEIGHTS_LOAD_H
#define DV2_WEIGHTS_LOAD_H

#include "core/dv2.h"
#include "core/hash.h"
#include "format/safetensors.h"
#include "model/weights.h"
#include "ops/params.h"

/* Copies the tensors of f into the parameters p: the one loader of dv2-embed
 * -m, student.pretrained_weights and the teacher of dv2-distill, with one set
 * of rules:
 *   - names: prefix NULL finds each parameter by its canonical backbone name
 *     (dv2_weights_find: plain, chunked, "module."/"backbone." files); a
 *     prefix finds prefix + name, then prefix + canonical name (a
 *     checkpoint's "teacher.backbone.", a head's "dino_head.");
 *   - shapes: equal up to leading dimensions of size 1 ([1, D] and [D] hold
 *     the same values in the same order); anything else is DV2_ECORRUPT
 *     "PATH: tensor NAME is (a, b), NEEDS needs (c, d)";
 *   - mask_token may be missing (it only serves training and exports often
 *     leave it out): the parameter keeps its value; any other missing tensor
 *     is DV2_ECORRUPT naming it and the shape wanted;
 *   - values must be finite (dv2_weights_check_finite);
 *   - every tensor is checked before any parameter is written.
 * No resampling: a pos_embed of another grid is a shape error (callers that
 * follow the file build their model from dv2_weights_arch, so its pos_embed
 * is the file's; the forward resamples at run time).  needs names what set
 * the shapes, for messages ("the config", "the architecture (vit_small)").
 * digest (optional) is updated with the float32 values of each loaded tensor
 * in parameter order; *bad (optional) is the index of the parameter in
 * error, -1 on success. */
int dv2_weights_load(dv2_params *p, const dv2_safetensors_file *f, const char *prefix,
                     const char *needs, dv2_xxh64_state *digest, int *bad, dv2_error *err);

#endif
