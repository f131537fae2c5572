/* cpu_loss.h — the DINOv2 training losses on the CPU, float32 storage with double
 * accumulation: teacher targets (softmax centering §6.2, Sinkhorn-Knopp §6.3),
 * the DINO cross-view loss (§6.1), the iBOT masked-patch loss (§7.3/§7.4),
 * KoLeo (§8) and the weighted total (§9), forward and backward.
 *
 * Conventions (as lib/ops/ops.h): outputs first, then inputs, parameters,
 * dimensions.  Forward outputs OVERWRITE (=).  EVERY GRADIENT OUTPUT
 * ACCUMULATES (+=): the caller zeroes it first.  No function allocates: the
 * *_ws forms take their scratch from the caller (the backend entries of
 * ops/cpu/cpu.c pass the backend's workspace).  Collectives stay outside:
 * functions that need a sum over processes take a dv2_allreduce_fn (NULL =
 * one process); the backend entries pass its allreduce_sum.
 *
 * One training step, per process (B images, L local crops, W processes):
 *   targets, centering mode:
 *     center_apply(c_dino, pending_dino, 1/(2B·W), 0.9)   (if a sum is pending)
 *     center_apply(c_ibot, pending_ibot, 1/W, 0.9)
 *     softmax_center_forward(q_dino, t_dino (2B,K, swapped), c_dino, tau_t)
 *     softmax_center_forward(q_ibot, t_ibot (M,K_i), c_ibot, tau_t)
 *     center_sum(pending_dino, t_dino, 2B, K, 1)      then all-reduce it
 *     center_sum(pending_ibot, t_ibot, M, K_i, 1/M)   then all-reduce it
 *   targets, Sinkhorn-Knopp mode:
 *     sinkhorn_knopp(q_dino, t_dino, 2B, K, tau_t, 3, 2B·W, allreduce)
 *     sinkhorn_knopp(q_ibot, t_ibot, M, K_i, tau_t, 3, all-reduced M, allreduce)
 *   losses: dino_forward (local, global), koleo on each global-crop group
 *     of the normed student CLS tokens, ibot_forward, dv2_loss_total;
 *   backward: dv2_loss_total_backward gives each term's upstream gradient;
 *     dino_backward, koleo_backward (per group), ibot_backward add into the
 *     zeroed logit / CLS gradients. */
#ifndef DV2_CPU_LOSS_H
#define DV2_CPU_LOSS_H

#include <stddef.h>
#include "core/dv2.h"
#include "ops/ops.h"

/* Sum-all-reduce across processes, in place, of n floats; returns 0 or a
 * DV2_E* status.  NULL means a single process. */
typedef int (*dv2_allreduce_fn)(float *buf, size_t n, void *ctx);

/* ---- teacher targets ------------------------------------------------------ */

/* Teacher targets, centering mode: q (N,K) = softmax((t − center)/temp) per
 * row; center (K).  q may alias t (in place). */
void dv2_cpu_softmax_center_forward(float *q, const float *t, const float *center, int N, int K,
                                     float temp);

/* Teacher targets, Sinkhorn-Knopp (§6.3/§7.3): q (N,K) from logits t (N,K):
 * Q = exp(t/temp) (no max subtraction), divided by its global sum, then
 * n_iter times: per-prototype sums over all samples of all processes
 * (all-reduced, K floats) → Q[:,k] /= r_k·K; per-sample sums (local) →
 * Q[j,:] /= c_j·n_total; finally Q *= n_total so that each row sums to 1.
 * n_total = B_tot, the number of samples over all processes (DINO: N·W;
 * iBOT: the all-reduced masked-token count).  N may be 0 on a process (it
 * still takes part in every all-reduce).  work: K+1 floats of scratch.
 * q may alias t.  Returns 0 or the all-reduce's error status. */
int dv2_cpu_sinkhorn_knopp_ws(float *q, float *work, const float *t, int N, int K, float temp,
                               int n_iter, double n_total, dv2_allreduce_fn allreduce,
                               void *allreduce_ctx);

/* ---- centers (§6.2, §7.3) ----------------------------------------------- */
/* The center update is lagged by one iteration: at iteration it, compute
 * the targets with the current center, then dv2_cpu_center_sum of the
 * teacher logits, all-reduce the K-vector (caller), and call
 * dv2_cpu_center_apply with it at the start of iteration it+1, before that
 * iteration's targets.
 *   DINO: sum over the 2B rows, scale 1, then apply with scale 1/(2B·W).
 *   iBOT: scale 1/M (the per-process token mean; zeros when M = 0), then
 *         apply with scale 1/W (averages the per-process means). */
/* sum (K) = scale · Σ_i t[i,:]  (overwrite); t (N,K). */
void dv2_cpu_center_sum(float *sum, const float *t, int N, int K, float scale);
/* center (K) ← momentum·center + (1 − momentum)·scale·sum (momentum 0.9). */
void dv2_cpu_center_apply(float *center, const float *sum, float scale, float momentum, int K);

/* ---- DINO cross-view loss (§6.1) ---------------------------------------- */
/* Two global crops, L local crops, B images, crop-major rows:
 *   s_l (L·B, K): student logits of local crop v of image i at row v·B + i;
 *   s_g (2B, K):  student logits of global crop c of image i at row c·B + i;
 *   q   (2B, K):  teacher targets in the SWAPPED order: row i (i < B) is the
 *                 target from teacher crop 2 of image i, row B+i from crop 1,
 *                 so student row r pairs with target row r for the global term.
 * Z = max(2L, 1) + 2 (all pairs of different views; the reference counts at
 * least one local term, so Z = 3 when L = 0).
 *   local  = (1/Z) Σ_v Σ_{g∈{0,1}} mean_i CE(q[g·B+i], s_l[v·B+i])
 *   global = (1/Z) · 2 · mean_{r<2B} CE(q[r], s_g[r])
 * temp = student temperature (0.1).  Either output may be NULL. */
void dv2_cpu_dino_forward(float *loss_local, float *loss_global, const float *s_l,
                           const float *s_g, const float *q, int B, int L, int K, float temp);
/* ds_l (L·B,K) += dloss_local · ∂local/∂s_l; ds_g (2B,K) += dloss_global · ∂global/∂s_g.
 * ds_l or ds_g may be NULL (skipped). */
void dv2_cpu_dino_backward(float *ds_l, float *ds_g, float dloss_local, float dloss_global,
                            const float *s_l, const float *s_g, const float *q, int B, int L,
                            int K, float temp);

/* ---- iBOT masked-patch loss (§7.4) -------------------------------------- */
/* s_p, q (M,K): student logits and teacher targets of the M masked tokens
 * (same view, no swap); w (M) the per-token weights 1/max(m_r,1) (lib/model/mask.h);
 * n_crops = 2B, the number of global crops (masked or not).
 *   loss = (1/n_crops) Σ_j w_j · CE(q_j, s_p_j).    M may be 0 (loss 0). */
void dv2_cpu_ibot_forward(float *loss, const float *s_p, const float *q, const float *w, int M,
                           int K, int n_crops, float temp);
/* ds_p (M,K) += dloss · ∂loss/∂s_p. */
void dv2_cpu_ibot_backward(float *ds_p, float dloss, const float *s_p, const float *q,
                            const float *w, int M, int K, int n_crops, float temp);

/* ---- KoLeo (§8) --------------------------------------------------------- */
/* On one group x (N,C) (call once per global-crop group of B rows):
 * x̂_i = x_i / max(||x_i||, 1e-8); nn(i) = argmax_j G[i,j] of the Gram matrix
 * G = x̂ x̂ᵀ with its diagonal set to −1 (first index on ties);
 * d_i = ||x̂_i − x̂_nn(i) + 1e-8|| (eps added to every element of the
 * difference); loss = −(1/N) Σ_i log(d_i + 1e-8).  nn (N) is saved for the
 * backward.  work: N floats (the row norms).  As in the reference, N = 1
 * pairs the row with itself (nn[0] = 0, d = 1e-8·sqrt(C)). */
void dv2_cpu_koleo_forward_ws(float *h_loss, int *nn, float *work, const float *x, int N, int C);
/* dx (N,C) += dloss · ∂loss/∂x, through both x_i and x_nn(i) and the L2
 * normalization; nn fixed (no gradient through the argmax).
 * work: N·(C+1) floats. */
void dv2_cpu_koleo_backward_ws(float *dx, float *work, float dloss, const float *x, const int *nn,
                                int N, int C);

#endif
