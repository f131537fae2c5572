/* loss.h — the weighting of the DINOv2 loss terms (spec §9): the weights of
 * the DINO, KoLeo and iBOT terms, the terms of one step and their total and
 * its backward.  The terms themselves are backend ops (ops/ops.h); their CPU
 * numerics are ops/cpu/cpu_loss.h. */
#ifndef DV2_LOSS_H
#define DV2_LOSS_H

/* ---- total (§9) ---------------------------------------------------------- */
typedef struct dv2_loss_weights {
    float dino;  /* dino.loss_weight, 1.0 */
    float koleo; /* dino.koleo_loss_weight, 0.1 */
    float ibot;  /* ibot.loss_weight, 1.0 */
} dv2_loss_weights;

typedef struct dv2_loss_terms {
    float dino_local, dino_global; /* as defined above */
    float koleo1, koleo2;          /* KoLeo of global crop 1 and 2 groups */
    float ibot;
    float total;                   /* set by dv2_loss_total */
} dv2_loss_terms;

/* The default weights 1.0 / 0.1 / 1.0. */
dv2_loss_weights dv2_loss_default_weights(void);
/* t->total = w.dino·(local + global) + w.koleo·(koleo1 + koleo2) + w.ibot·ibot;
 * KoLeo counts only when w.dino > 0 (as in the reference).  Returns total. */
float dv2_loss_total(dv2_loss_terms *t, const dv2_loss_weights *w);
/* The upstream gradients of each term for dtotal = 1 (scaled by dtotal):
 * the dloss arguments to pass to the backward functions above. */
void dv2_loss_total_backward(dv2_loss_terms *d, const dv2_loss_weights *w, float dtotal);

#endif
