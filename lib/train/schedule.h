/* schedule.h — the per-iteration schedules of DINOv2 training (spec §10.4):
 * the cosine schedule with an inclusive linear warm-up, and the five
 * schedules of a run (learning rate, last-layer learning rate, weight decay,
 * teacher momentum, teacher temperature) built from a config.
 *
 * dv2_cosine(base, final, T, Tw, start) at iteration it:
 *   it < Tw        start + (base - start)·it/(Tw - 1)   (numpy linspace: the
 *                  value at Tw-1 is exactly base; Tw = 1 gives start)
 *   Tw <= it < T   final + ½(base - final)(1 + cos(π (it-Tw)/(T-Tw)))
 *   it >= T        final
 * All in double precision, as the reference's numpy arrays. */
#ifndef DV2_SCHEDULE_H
#define DV2_SCHEDULE_H

#include <stdint.h>
#include "train/config.h"

typedef struct dv2_cosine {
    double base, final, start;
    int64_t total;  /* T */
    int64_t warmup; /* Tw */
    int64_t freeze; /* value is 0 for it < freeze (last-layer lr); 0 = none */
} dv2_cosine;

void dv2_cosine_init(dv2_cosine *s, double base, double final, int64_t total, int64_t warmup,
                     double start);
double dv2_cosine_at(const dv2_cosine *s, int64_t it);

typedef struct dv2_schedules {
    dv2_cosine lr, last_layer_lr, wd, momentum, teacher_temp;
    double peak_lr;    /* after the scaling rule */
    int64_t total;     /* epochs * OFFICIAL_EPOCH_LENGTH */
} dv2_schedules;

/* The values of one iteration. */
typedef struct dv2_sched_values {
    double lr, last_layer_lr, wd, momentum, teacher_temp;
} dv2_sched_values;

/* Builds the schedules of a config for `world` ranks (lr scaling rule). */
void dv2_schedules_init(dv2_schedules *s, const dv2_config *c, int world);
void dv2_schedules_at(const dv2_schedules *s, int64_t it, dv2_sched_values *v);

#endif
