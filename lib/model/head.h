/* head.h — the DINO / iBOT projection head (spec §3): a 3-layer MLP with
 * exact GELU, a bottleneck, L2 normalization and a weight-normalized last
 * layer without bias (W_k = g_k v_k/||v_k||, g trainable).  Parameter names
 * as in the official state dict, relative to the head: mlp.0.weight/bias,
 * mlp.2.weight/bias, mlp.4.weight/bias, last_layer.weight_g (K,1),
 * last_layer.weight_v (K, bottleneck).  For nlayers = 1 the MLP is the single
 * linear mlp.weight/bias (as in the official code). */
#ifndef DV2_HEAD_H
#define DV2_HEAD_H

#include "core/dv2.h"
#include "ops/ops.h"
#include "ops/params.h"
#include "core/rng.h"

typedef struct dv2_head_arch {
    int in_dim;       /* D of the backbone */
    int hidden_dim;   /* 2048 */
    int bottleneck;   /* 256 or 384 */
    int n_prototypes; /* K */
    int nlayers;      /* 3 (1..3 supported) */
    float l2_eps;     /* eps of the L2 normalization: 1e-6 (fp16 training) or 1e-12 */
} dv2_head_arch;

typedef struct dv2_head {
    dv2_head_arch a;
    const dv2_backend *be;
    dv2_params params;
    int i_w[3], i_b[3]; /* the MLP linears */
    int i_g, i_v;
} dv2_head;

int dv2_head_init(dv2_head *h, const dv2_head_arch *a, const dv2_backend *be, int with_grad,
                  dv2_error *err);
void dv2_head_free(dv2_head *h);
/* Spec §3: MLP weights N(0, 0.02²) truncated at ±2, biases 0, v ~ U(±1/sqrt(bottleneck)), g = 1. */
int dv2_head_init_weights(dv2_head *h, dv2_rng *rng, dv2_error *err);

typedef struct dv2_head_pass dv2_head_pass;

/* Workspace for up to max_rows input rows; DV2_HEAD_TRAIN keeps activations. */
#define DV2_HEAD_TRAIN 1
int dv2_head_pass_create(dv2_head_pass **out, dv2_head *h, int max_rows, int flags,
                         dv2_error *err);
void dv2_head_pass_free(dv2_head_pass *ps);
/* logits (n, K) on the device, caller-owned; x (n, in_dim) device. */
int dv2_head_pass_forward(dv2_head_pass *ps, float *logits, const float *x, int n,
                          dv2_error *err);
/* dx (n, in_dim) += ; parameter gradients += into h->params.grad.  dx may be NULL. */
int dv2_head_pass_backward(dv2_head_pass *ps, float *dx, const float *dlogits, dv2_error *err);

#endif
