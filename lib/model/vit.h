/* vit.h — the DINOv2 Vision Transformer backbone (spec §2, §13): parameters
 * with the official state-dict names, initialization (§2.10), and forward /
 * backward passes over a packed sequence of image groups, written once on
 * top of the op table of lib/ops/ops.h.
 *
 * Usage (eval, e.g. dv2-embed):
 *     dv2_backend *be;  dv2_backend_open(&be, "cpu", NULL, 0, err);
 *     dv2_vit m;  dv2_vit_init(&m, &arch, be, 0, err);
 *     ... load weights into m.params (dv2_params_set by name) ...
 *     dv2_vit_group g = { .n_img = B, .height = 224, .width = 224 };
 *     dv2_vit_pass *ps;  dv2_vit_pass_create(&ps, &m, &g, 1, 0, err);
 *     dv2_vit_pass_forward(ps, &d_img, NULL, NULL, err);
 *     out = dv2_vit_pass_output(ps);         (T, D) final-normed tokens
 *     row of image i, token j in group g: dv2_vit_pass_row(ps, g, i, j)
 *     (token 0 = CLS, 1..R = registers, 1+R.. = patches)
 *
 * Training (student): groups {globals 2B at 224 with masks, locals 8B at 98},
 * flag DV2_VIT_TRAIN keeps activations; dv2_vit_pass_backward takes the
 * gradient of the normed output (T, D) and ACCUMULATES (+=) into m.params.grad.
 *
 * Stochastic depth in the batch-subset form (§2.9): per block, per branch
 * (attention, FFN), per group, the caller gives the k sample indices that
 * are computed (k = dv2_vit_droppath_k(b, rate)); their branch output is
 * added with weight gamma·b/k, other samples get no update.
 * dv2_vit_droppath_draw fills the subsets from an RNG. */
#ifndef DV2_VIT_H
#define DV2_VIT_H

#include <stdint.h>
#include "model/arch.h"
#include "core/dv2.h"
#include "ops/ops.h"
#include "ops/params.h"
#include "core/rng.h"

#define DV2_VIT_LN_EPS 1e-6f

/* Indices into params of one block's tensors (-1 when absent). */
typedef struct dv2_vit_block_idx {
    int norm1_w, norm1_b, qkv_w, qkv_b, proj_w, proj_b, ls1;
    int norm2_w, norm2_b, fc1_w, fc1_b, fc2_w, fc2_b, ls2; /* fc1/fc2 = w12/w3 for SwiGLU */
} dv2_vit_block_idx;

typedef struct dv2_vit {
    dv2_arch arch;
    const dv2_backend *be;
    dv2_params params; /* names: cls_token, pos_embed, register_tokens, mask_token,
                          patch_embed.proj.{weight,bias}, blocks.N.*, norm.{weight,bias} */
    int i_cls, i_pos, i_reg, i_mask, i_pe_w, i_pe_b, i_norm_w, i_norm_b;
    dv2_vit_block_idx *blk; /* depth entries */
} dv2_vit;

/* Builds the parameter table for arch (validated) and allocates it on be;
 * with_grad allocates the gradient buffer too.  Values start at zero. */
int dv2_vit_init(dv2_vit *m, const dv2_arch *arch, const dv2_backend *be, int with_grad,
                 dv2_error *err);
void dv2_vit_free(dv2_vit *m);
/* Initialization of spec §2.10 drawn from rng (order: tensors in table order). */
int dv2_vit_init_weights(dv2_vit *m, dv2_rng *rng, dv2_error *err);

/* One group of same-sized images in a packed pass. */
typedef struct dv2_vit_group {
    int n_img;          /* b */
    int height, width;  /* pixels, multiples of the patch size */
} dv2_vit_group;

/* Stochastic depth subsets for one training forward. */
typedef struct dv2_vit_droppath {
    double rate;        /* r, the same for every block (drop_path_uniform) */
    /* host; for block l, branch br (0 attention, 1 FFN), group g in that
     * nesting order: k_g sample indices in [0, b_g), k_g = dv2_vit_droppath_k(b_g, rate).
     * Total length depth * 2 * Σ_g k_g. */
    const int *subset;
} dv2_vit_droppath;

/* k = max(floor(b(1 − rate)), 1), in double as the reference's Python
 * int(b * (1 - r)); pass the rate as the double parsed from the config (a
 * float 0.3f would give k = 6 for b = 10 where the reference has 7). */
int dv2_vit_droppath_k(int b, double rate);
/* Length of the subset array for these groups. */
size_t dv2_vit_droppath_len(const dv2_vit_group *g, int n_groups, int depth, double rate);
/* Fills subset (dv2_vit_droppath_len ints): for each (block, branch, group)
 * a uniformly random permutation of [0, b) truncated to k.  Returns 0 or
 * DV2_ENOMEM. */
int dv2_vit_droppath_draw(int *subset, const dv2_vit_group *g, int n_groups, int depth,
                           double rate, dv2_rng *rng);

enum {
    DV2_VIT_TRAIN = 1,       /* keep activations for dv2_vit_pass_backward */
    DV2_VIT_KEEP_BLOCKS = 2, /* keep every block's output for dv2_vit_pass_layer */
};

typedef struct dv2_vit_pass dv2_vit_pass;

/* Allocates the workspace of a pass over these groups (group g's tokens
 * follow group g-1's in the packed buffer, image by image). */
int dv2_vit_pass_create(dv2_vit_pass **out, dv2_vit *m, const dv2_vit_group *g, int n_groups,
                        int flags, dv2_error *err);
void dv2_vit_pass_free(dv2_vit_pass *ps);
/* Forward.  img[g]: device (b_g, 3, H_g, W_g) normalized images; mask[g]:
 * device (b_g, N_g) uint8 (1 = replace by mask_token) or NULL (mask itself
 * may be NULL); dp NULL or rate 0: no stochastic depth.  The mask buffers
 * must stay valid until dv2_vit_pass_backward (the images need not).
 * Packed groups give the same numbers as separate passes up to float32
 * rounding (GEMM blocking differs; tested to 1e-6). */
int dv2_vit_pass_forward(dv2_vit_pass *ps, const float *const *img,
                         const uint8_t *const *mask, const dv2_vit_droppath *dp,
                         dv2_error *err);
/* Final-normed tokens (T, D) on the device, valid after forward. */
const float *dv2_vit_pass_output(const dv2_vit_pass *ps);
/* Un-normed final tokens (x_prenorm), (T, D). */
const float *dv2_vit_pass_prenorm(const dv2_vit_pass *ps);
int dv2_vit_pass_tokens(const dv2_vit_pass *ps);          /* T */
/* Device bytes of the pass's buffers; *bf16_kept (may be NULL) ← 1 when a
 * training pass on a bf16 backend keeps its blocks' GEMM and attention
 * outputs for the backward in 16-bit containers (DV2_VIT_BF16_STASH=0: f32). */
size_t dv2_vit_pass_bytes(const dv2_vit_pass *ps, int *bf16_kept);
int dv2_vit_pass_seqlen(const dv2_vit_pass *ps, int g);   /* 1 + R + N_g */
int dv2_vit_pass_npatch(const dv2_vit_pass *ps, int g);   /* N_g */
/* Row of token j of image i of group g in the packed (T, D) buffers. */
int dv2_vit_pass_row(const dv2_vit_pass *ps, int g, int i, int j);
/* Intermediate layer (§2.11): out (T, D) = final LayerNorm of the output of
 * block `block` (0-based; needs DV2_VIT_KEEP_BLOCKS or dv2_vit_pass_keep_blocks). */
int dv2_vit_pass_layer(dv2_vit_pass *ps, int block, float *out, dv2_error *err);
/* Keeps the outputs of exactly these blocks (0-based) for dv2_vit_pass_layer,
 * with or without DV2_VIT_KEEP_BLOCKS (which keeps all of them): one (T, D)
 * buffer per kept block.  Call before the forward. */
int dv2_vit_pass_keep_blocks(dv2_vit_pass *ps, const int *blocks, int n, dv2_error *err);
/* Backward of the last forward (needs DV2_VIT_TRAIN): dout (T, D) is the
 * gradient of the normed output; parameter gradients ACCUMULATE into
 * m->params.grad. */
int dv2_vit_pass_backward(dv2_vit_pass *ps, const float *dout, dv2_error *err);

/* The gradients of block l's parameters, one contiguous range of
 * m->params.grad: *offset floats from its start, *numel floats.  A
 * DV2_EINVAL if the block's tensors are not contiguous (they are, as
 * dv2_vit_init lays them out). */
int dv2_vit_block_grad_range(const dv2_vit *m, int l, size_t *offset, size_t *numel, dv2_error *err);
/* Called by dv2_vit_pass_backward as soon as block l's parameter gradients
 * are complete (blocks come last first), with their range of the gradient
 * buffer: a backend can start reducing them across processes while the
 * backward of the blocks below runs.  A non-zero return ends the backward
 * with that status. */
typedef int (*dv2_vit_block_done_fn)(void *ctx, int block, float *grad, size_t numel, dv2_error *err);
void dv2_vit_pass_on_block_done(dv2_vit_pass *ps, dv2_vit_block_done_fn fn, void *ctx);

#endif
