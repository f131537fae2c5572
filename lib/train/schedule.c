/* schedule.c — cosine schedules with warm-up (schedule.h, spec §10.4).
 *
 * The reference precomputes each schedule as a numpy array: np.linspace for
 * the warm-up (start + i·step with step = (base-start)/(Tw-1), the last point
 * set to base exactly) followed by the cosine over arange(T-Tw); indexing past
 * the array gives the final value.  We evaluate the same expressions on demand
 * in double precision. */
#include "train/schedule.h"

#include <math.h>

void dv2_cosine_init(dv2_cosine *s, double base, double final, int64_t total, int64_t warmup,
                     double start) {
    s->base = base;
    s->final = final;
    s->start = start;
    s->total = total < 0 ? 0 : total;
    s->warmup = warmup < 0 ? 0 : warmup;
    s->freeze = 0;
}

double dv2_cosine_at(const dv2_cosine *s, int64_t it) {
    if (it < s->freeze) return 0.0;
    if (it >= s->total) return s->final;
    if (it < s->warmup) {
        if (s->warmup == 1) return s->start;
        if (it == s->warmup - 1) return s->base;
        double step = (s->base - s->start) / (double)(s->warmup - 1);
        return s->start + (double)it * step;
    }
    double j = (double)(it - s->warmup), tp = (double)(s->total - s->warmup);
    return s->final + 0.5 * (s->base - s->final) * (1.0 + cos(M_PI * j / tp));
}

void dv2_schedules_init(dv2_schedules *s, const dv2_config *c, int world) {
    double E = c->train.OFFICIAL_EPOCH_LENGTH;
    int64_t T = (int64_t)llround(c->optim.epochs * E);
    s->total = T;
    s->peak_lr = dv2_config_peak_lr(c, world);
    dv2_cosine_init(&s->lr, s->peak_lr, c->optim.min_lr, T, (int64_t)llround(c->optim.warmup_epochs * E), 0.0);
    s->last_layer_lr = s->lr;
    s->last_layer_lr.freeze = (int64_t)llround(c->optim.freeze_last_layer_epochs * E);
    dv2_cosine_init(&s->wd, c->optim.weight_decay, c->optim.weight_decay_end, T, 0, 0.0);
    dv2_cosine_init(&s->momentum, c->teacher.momentum_teacher, c->teacher.final_momentum_teacher, T, 0, 0.0);
    int64_t tw = (int64_t)llround(c->teacher.warmup_teacher_temp_epochs * E);
    dv2_cosine_init(&s->teacher_temp, c->teacher.teacher_temp, c->teacher.teacher_temp, tw, tw,
                    c->teacher.warmup_teacher_temp);
}

void dv2_schedules_at(const dv2_schedules *s, int64_t it, dv2_sched_values *v) {
    v->lr = dv2_cosine_at(&s->lr, it);
    v->last_layer_lr = dv2_cosine_at(&s->last_layer_lr, it);
    v->wd = dv2_cosine_at(&s->wd, it);
    v->momentum = dv2_cosine_at(&s->momentum, it);
    v->teacher_temp = dv2_cosine_at(&s->teacher_temp, it);
}
