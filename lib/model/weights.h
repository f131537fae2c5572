/* weights.h — DINOv2 backbone weights in safetensors files: the official
 * state-dict names ("cls_token", "blocks.3.attn.qkv.weight", ...) and the
 * variants found in the wild (training checkpoints, chunked blocks, DDP
 * prefixes) mapped to them, and the architecture of a weight file, from its
 * "__metadata__" (written by dv2 and by scripts/convert-weights) or inferred
 * from the tensor shapes.  The loader of weights into model parameters is
 * weights_load.h. */
#ifndef DV2_WEIGHTS_H
#define DV2_WEIGHTS_H

#include <stddef.h>
#include "core/dv2.h"
#include "format/safetensors.h"
#include "model/arch.h"

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

#endif
