/* embed_sscd.h — the SSCD copy detector as a feature extractor of dv2-embed:
 * a ResNet + GeM + projection + L2 norm (lib/model/resnet.h) loaded from a
 * dv2 safetensors file (scripts/convert-weights converts the released
 * TorchScript and torchvision files), fed SSCD's square preprocessing
 * (Resize([S, S]) with PIL's bilinear filter, ImageNet mean/std; S = 288 by
 * default, the size of the SSCD repository's inference and evaluation code).
 * Rows are the 512-d (dims) L2-normalised descriptors. */
#ifndef DV2_EMBED_SSCD_H
#define DV2_EMBED_SSCD_H

#include "core/dv2.h"
#include "embed/embed.h"

#define DV2_EMBED_SSCD_SIZE 288

/* 1 when path is a safetensors file whose metadata names a ResNet (SSCD)
 * model, 0 otherwise (not readable, not safetensors, a ViT). */
int dv2_embed_sscd_is_model(const char *path);

/* Builds the extractor from the weight file at path with input side size
 * (0: DV2_EMBED_SSCD_SIZE).  Missing or misshapen tensors are DV2_ECORRUPT
 * naming the tensor.  m->transform is DV2_EMBED_SQUARE, or with keep_aspect
 * DV2_EMBED_SHORT (the shorter side resized to size, the README's
 * Resize(288); images run one at a time). */
int dv2_embed_model_sscd(dv2_embed_model **m, const char *path, int size, int keep_aspect, dv2_error *err);

#endif
