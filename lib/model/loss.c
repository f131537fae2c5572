/* loss.c — the total of the DINOv2 loss terms (see loss.h). */
#include "model/loss.h"

dv2_loss_weights dv2_loss_default_weights(void) {
    dv2_loss_weights w = {1.0f, 0.1f, 1.0f};
    return w;
}

float dv2_loss_total(dv2_loss_terms *t, const dv2_loss_weights *w) {
    double tot = (double)w->dino * ((double)t->dino_local + t->dino_global) + (double)w->ibot * t->ibot;
    if (w->dino > 0) tot += (double)w->koleo * ((double)t->koleo1 + t->koleo2);
    t->total = (float)tot;
    return t->total;
}

void dv2_loss_total_backward(dv2_loss_terms *d, const dv2_loss_weights *w, float dtotal) {
    d->dino_local = d->dino_global = w->dino * dtotal;
    d->koleo1 = d->koleo2 = w->dino > 0 ? w->koleo * dtotal : 0.0f;
    d->ibot = w->ibot * dtotal;
    d->total = dtotal;
}
