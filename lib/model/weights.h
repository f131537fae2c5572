/* weights.h — DINOv2 backbone weights in safetensors files: the official
 * state-dict names ("cls_token", "blocks.3.attn.qkv.weight", ...) and the
 * variants found in the wild (training checkpoints, chunked blocks, DDP
 * prefixes) mapped to them, and the architecture of a weight file, from its
 * "__metadata__" (written by dv2 and by scripts/convert-weights) or inferred
 * from the tensor shapes; and the one loader that copies a file's tensors
 * into model parameters. */
#ifndef DV2_WEIGHTS_H
#define DV2_WEIGHTS_H

#include <stddef.h>
#include "core/dv2.h"
#include "core/hash.h"
#include "format/safetensors.h"
#include "model/arch.h"
#include "ops/params.h"

/* Writes the tensors with the architecture (dv2_arch_to_kv) as metadata, plus
 * "format": "dv2" and nextra extra pairs. */
int dv2_weights_write(const char *path, int force, const dv2_safetensors_entry *t, size_t n,
                               const dv2_arch *arch, const char *const *extra_keys,
                               const char *const *extra_vals, size_t nextra, dv2_error *err);

/* DV2_ECORRUPT "PATH: tensor NAME: element I is nan/inf..." when one of the n
 * values is not finite (weights of a diverged run); DV2_OK otherwise. */
int dv2_weights_check_finite(const float *v, size_t n, const char *path, const char *name,
                             dv2_error *err);

/* ---- names and architecture ------------------------------------------- */

/* Maps a stored name to the official backbone name: strips a leading
 * "module.", then "teacher." or "student." when followed by "backbone.",
 * then "backbone."; rewrites chunked "blocks.<chunk>.<N>." to "blocks.<N>.".
 * Returns 1 if the result is a backbone name (it was stripped of "backbone."
 * or had no head prefix), 0 for head tensors ("dino_head.", "ibot_head.",
 * with their prefixes) which are copied with only "module." stripped, and
 * DV2_EINVAL if out is too small. */
int dv2_weights_canonical_name(char *out, size_t outsz, const char *name);
/* The backbone tensor of f whose canonical name is that of name (which may
 * itself be chunked or prefixed), or NULL: how every loader finds a
 * parameter, so that chunked, prefixed and plain files all load. */
const dv2_safetensors_tensor *dv2_weights_find(const dv2_safetensors_file *f, const char *name);

/* Infers the architecture from tensor shapes (see the .c file for the
 * rules): embed_dim from cls_token, depth from the highest block index,
 * num_heads = dim/64, patch size and channels from patch_embed.proj.weight,
 * FFN kind and width from mlp.w12 / mlp.fc1, registers from register_tokens,
 * img_size from the pos_embed length; interpolation mode from the register
 * count.  DV2_ECORRUPT naming the missing or inconsistent tensor. */
int dv2_weights_infer_arch(const dv2_safetensors_file *f, dv2_arch *arch, dv2_error *err);
/* The architecture from the metadata when it has "embed_dim" (metadata keys
 * override the values inferred from shapes), else inferred; validated. */
int dv2_weights_arch(const dv2_safetensors_file *f, dv2_arch *arch, dv2_error *err);

/* ---- loading ------------------------------------------------------------ */

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
