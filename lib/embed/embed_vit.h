/* embed_vit.h — the ViT feature extractor of dv2-embed: a backbone loaded
 * from safetensors (or randomly initialized from a preset), run with the
 * model core (lib/model/vit.h) on normalized crops, rows laid out as the DINOv2
 * evaluations use them, and the PCA visualization of patch features.
 *
 * Row layouts (D = embed dim, N = patch tokens, registers never included):
 *   cls      final-normed CLS token                               D
 *   avgpool  mean of the final-normed patch tokens                D
 *   clsavg   cls then avgpool                                     2D
 *   patch    every final-normed patch token, row-major grid       N*D
 *   layers=n CLS of the last n blocks, each through the final
 *            norm, earlier block first, then avgpool of the last  n*D + D */
#ifndef DV2_EMBED_VIT_H
#define DV2_EMBED_VIT_H

#include <stdint.h>
#include "core/dv2.h"
#include "embed/embed.h"
#include "model/arch.h"
#include "ops/ops.h"

typedef struct dv2_embed_vit_opts {
    const char *weights;   /* safetensors path, or NULL with arch */
    const char *arch;      /* preset name for a random init (with seed) */
    uint64_t seed;
    int size;              /* input side, a multiple of the patch size; 0 = the
                            * default (dv2_embed_vit_default_size) */
    const char *features;  /* "cls", "avgpool", "clsavg", "patch" */
    int layers;            /* > 0: the linear-probe layout instead of features */
    int want_patch;        /* keep patch tokens for dv2_embed_vit_pca_write */
    const dv2_backend *backend; /* the backend the model runs on (NULL: the CPU backend) */
} dv2_embed_vit_opts;

void dv2_embed_vit_opts_default(dv2_embed_vit_opts *o);

/* The architecture of a random-init baseline (--arch NAME): the preset with
 * LayerScale 1.0 instead of the training init 1e-5, under which the class
 * token would be the same for every image. */
int dv2_embed_vit_baseline_arch(dv2_arch *a, const char *name, dv2_error *err);
/* The default input side for a model: its img_size when its metadata records
 * one (from_metadata) smaller than 224 (a model trained at low resolution,
 * such as a dv2-train teacher of small images), else 224, the official
 * evaluation crop (released models record 518, the size of their last
 * training phase, and are evaluated at 224). */
int dv2_embed_vit_default_size(const dv2_arch *a, int from_metadata);

/* Builds the extractor.  Weights are checked tensor by tensor against the
 * architecture (from the file's metadata or its shapes): a missing tensor, a
 * shape that does not fit or a non-finite value is DV2_ECORRUPT naming the
 * tensor; a PyTorch checkpoint or a Hugging Face file is DV2_ECORRUPT saying
 * to convert it with scripts/convert-weights.  m->size is the input side
 * used (o->size, or the default). */
int dv2_embed_model_vit(dv2_embed_model **m, const dv2_embed_vit_opts *o, dv2_error *err);

/* For each image of b, writes DIR/<id as 16 hex digits>.jpg: the crop (from
 * b->pixels, de-normalized) beside the first three principal components of
 * its patch tokens (b->patch) mapped to RGB. */
int dv2_embed_vit_pca_write(const char *dir, const dv2_embed_model *m, const dv2_embed_batch *b,
                            dv2_error *err);

#endif
