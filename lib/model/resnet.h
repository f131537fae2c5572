/* resnet.h — the SSCD copy-detection network on the CPU: a torchvision
 * ResNet trunk (v1.5 bottlenecks: the stride on the 3x3 convolution), GeM
 * pooling, a linear projection and L2 normalisation, in eval mode.
 *
 * Weights come from a dv2 safetensors file written by scripts/convert-weights
 * with torchvision's state-dict names (conv1.weight, bn1.{weight,bias,
 * running_mean,running_var}, layerK.N.{conv1,bn1,conv2,bn2,conv3,bn3}.*,
 * layerK.0.downsample.{0,1}.*, fc.{weight,bias}) and the architecture in the
 * "__metadata__": arch (sscd_resnet50; sscd_resnext101_32x4d for
 * sscd_disc_large), resnet_layers ("3,4,6,3"; "3,4,23,3"), resnet_groups
 * (1; 32), resnet_width (width per group: 64; 4), dims (512; 1024), gem_p.
 * Stage s (0..3) has 3x3 convolutions of (64 << s) * width / 64 * groups
 * channels, torchvision's rule; every tensor's shape follows from these.
 *
 * Batch norm is folded into the convolution before it at load: w' = w *
 * gamma / sqrt(var + 1e-5), b' = beta - mean * gamma / sqrt(var + 1e-5)
 * (computed in double, stored in float32).  Convolutions are im2col + one
 * OpenBLAS SGEMM over the whole sub-batch: activations are stored channel
 * first, (C, N, H, W), so a 1x1 convolution is a single product (Cout, Cin) x
 * (Cin, N*H*W) with no copy.  Grouped 3x3 convolutions (groups > 1) run
 * without BLAS: per group and image an im2col of the group's channels and a
 * plain-loop product four output rows at a time.  This is a CPU model
 * outside the backend table (lib/ops/ops.h has no convolution op). */
#ifndef DV2_RESNET_H
#define DV2_RESNET_H

#include <stddef.h>
#include "core/dv2.h"
#include "format/safetensors.h"

typedef struct dv2_resnet_arch {
    char name[32];   /* "sscd_resnet50" */
    int layers[4];   /* bottleneck blocks per stage (3, 4, 6, 3) */
    int groups;      /* groups of the 3x3 convolutions (1; 32 for ResNeXt) */
    int width;       /* width per group of the first stage (64; 4 for 32x4d) */
    int dims;        /* projection output (512) */
    float gem_p;     /* GeM exponent (3) */
} dv2_resnet_arch;

/* The sscd_resnet50 architecture (torchvision resnet50(num_classes=512),
 * GeM p = 3). */
void dv2_resnet_arch_sscd50(dv2_resnet_arch *a);
/* 1 when f's metadata says it holds a ResNet (an "arch" starting with
 * "sscd_" or a "resnet_layers" key), else 0. */
int dv2_resnet_is_weights(const dv2_safetensors_file *f);
/* The architecture from f's metadata (sscd_resnet50 defaults for missing
 * keys); DV2_ECORRUPT on a bad value. */
int dv2_resnet_arch_read(const dv2_safetensors_file *f, dv2_resnet_arch *a, dv2_error *err);

typedef struct dv2_resnet dv2_resnet;

/* Builds the network of arch a from f: every tensor is checked for its
 * name, shape and finite values (DV2_ECORRUPT naming it), and batch norm is
 * folded.  *r is freed with dv2_resnet_free. */
int dv2_resnet_create(dv2_resnet **r, const dv2_resnet_arch *a, const dv2_safetensors_file *f,
                      dv2_error *err);
void dv2_resnet_free(dv2_resnet *r); /* NULL allowed */

/* The architecture r was built with. */
const dv2_resnet_arch *dv2_resnet_get_arch(const dv2_resnet *r);

/* XXH64 over the folded parameters in network order. */
unsigned long long dv2_resnet_digest(const dv2_resnet *r);

/* out (n, dims): L2-normalised descriptors of img (n, 3, h, w), normalised
 * pixels.  Works through sub-batches of a few images; buffers are kept in r
 * between calls (a forward is not reentrant). */
int dv2_resnet_forward(dv2_resnet *r, float *out, const float *img, int n, int h, int w,
                       dv2_error *err);

#endif
