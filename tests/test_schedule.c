/* test_schedule.c — the schedules of lib/train/schedule.h at the iterations of spec
 * §19.5 ({0, 1, 1249, 1250, 12499, 12500, 37499, 37500, T-1, T}) for the
 * default and the vitl14 configs, against (1) closed-form values computed
 * here from the formulas of §10.4 and (2) the reference's numpy construction
 * (tests/ref/schedule_ref.py), when /usr/bin/python3 has numpy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "train/schedule.h"
#include "testutil.h"

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-300); }

static void check_config(const char *name, dv2_config *c, int W, const char *root) {
    dv2_schedules s;
    dv2_schedules_init(&s, c, W);
    const int64_t E = c->train.OFFICIAL_EPOCH_LENGTH;
    const int64_t T = (int64_t)(c->optim.epochs * E), Tw = (int64_t)(c->optim.warmup_epochs * E);
    const double peak = c->optim.base_lr * sqrt(c->train.batch_size_per_gpu * (double)W / 1024.0);
    int64_t its[] = {0, 1, 1249, 1250, 12499, 12500, 37499, 37500, T - 1, T, T + 5};
    const int nit = (int)(sizeof its / sizeof its[0]);
    dv2_sched_values v[16];
    for (int i = 0; i < nit; i++) dv2_schedules_at(&s, its[i], &v[i]);

    /* closed forms */
    CHECK(rel(s.peak_lr, peak) < 1e-15);
    for (int i = 0; i < nit; i++) {
        int64_t it = its[i];
        double lr = it < Tw ? peak * it / (Tw - 1)
                  : it < T ? c->optim.min_lr + 0.5 * (peak - c->optim.min_lr) * (1 + cos(M_PI * (it - Tw) / (double)(T - Tw)))
                  : c->optim.min_lr;
        double wd = it < T ? c->optim.weight_decay_end + 0.5 * (c->optim.weight_decay - c->optim.weight_decay_end) *
                                 (1 + cos(M_PI * it / (double)T)) : c->optim.weight_decay_end;
        double m = it < T ? 1.0 + 0.5 * (c->teacher.momentum_teacher - 1.0) * (1 + cos(M_PI * it / (double)T)) : 1.0;
        int64_t tw = (int64_t)(c->teacher.warmup_teacher_temp_epochs * E);
        double tt = it < tw ? 0.04 + 0.03 * it / (double)(tw - 1) : 0.07;
        double ll = it < (int64_t)(c->optim.freeze_last_layer_epochs * E) ? 0.0 : lr;
        CHECKF(rel(v[i].lr, lr) < 1e-12 || fabs(v[i].lr - lr) < 1e-18, "%s lr it %lld: %.17g vs %.17g", name, (long long)it, v[i].lr, lr);
        CHECKF(rel(v[i].last_layer_lr, ll) < 1e-12 || fabs(v[i].last_layer_lr - ll) < 1e-18, "%s last lr it %lld", name, (long long)it);
        CHECKF(rel(v[i].wd, wd) < 1e-12, "%s wd it %lld: %.17g vs %.17g", name, (long long)it, v[i].wd, wd);
        CHECKF(rel(v[i].momentum, m) < 1e-12, "%s mom it %lld", name, (long long)it);
        CHECKF(rel(v[i].teacher_temp, tt) < 1e-12, "%s temp it %lld: %.17g vs %.17g", name, (long long)it, v[i].teacher_temp, tt);
    }
    /* anchor points stated in the spec */
    dv2_sched_values a;
    dv2_schedules_at(&s, Tw - 1, &a);
    CHECK(a.lr == peak);                            /* inclusive warm-up */
    dv2_schedules_at(&s, Tw, &a);
    CHECK(a.lr == peak);                            /* cosine starts at base */
    dv2_schedules_at(&s, T - 1, &a);
    CHECK(a.lr > c->optim.min_lr && a.lr < c->optim.min_lr * 1.01); /* slightly above final */
    dv2_schedules_at(&s, 0, &a);
    CHECK(a.lr == 0 && a.last_layer_lr == 0 && a.teacher_temp == 0.04);
    CHECK(rel(a.wd, c->optim.weight_decay) < 1e-15); /* final + ½(base-final)·2 rounds */
    dv2_schedules_at(&s, 1249, &a);
    CHECK(a.last_layer_lr == 0 && a.lr > 0);         /* frozen for 1250 iterations */
    dv2_schedules_at(&s, 1250, &a);
    CHECK(a.last_layer_lr == a.lr);
    dv2_schedules_at(&s, 37499, &a);
    CHECK(a.teacher_temp == 0.07);

    /* the reference's numpy arrays */
    if (!root || system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) {
        fprintf(stderr, "numpy oracle not available, closed forms only\n");
        return;
    }
    char cmd[4096];
    int n = snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/ref/schedule_ref.py %d %.17g %.17g %.17g %d %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g",
                     root, (int)E, c->optim.epochs, c->optim.warmup_epochs, c->optim.base_lr,
                     c->train.batch_size_per_gpu * W, c->optim.min_lr, c->optim.weight_decay,
                     c->optim.weight_decay_end, c->teacher.momentum_teacher, c->teacher.final_momentum_teacher,
                     c->teacher.warmup_teacher_temp, c->teacher.teacher_temp,
                     c->teacher.warmup_teacher_temp_epochs, c->optim.freeze_last_layer_epochs);
    for (int i = 0; i < nit; i++) n += snprintf(cmd + n, sizeof cmd - n, " %lld", (long long)its[i]);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    if (!p) return;
    int got = 0;
    long long it;
    double r[5];
    while (fscanf(p, "%lld %lf %lf %lf %lf %lf", &it, &r[0], &r[1], &r[2], &r[3], &r[4]) == 6) {
        int i = got++;
        if (i >= nit) break;
        CHECK(it == its[i]);
        double mine[5] = {v[i].lr, v[i].last_layer_lr, v[i].wd, v[i].momentum, v[i].teacher_temp};
        for (int k = 0; k < 5; k++)
            CHECKF(mine[k] == r[k] || rel(mine[k], r[k]) < 1e-14, "%s numpy it %lld col %d: %.17g vs %.17g",
                   name, it, k, mine[k], r[k]);
    }
    CHECK(pclose(p) == 0);
    CHECKF(got == nit, "%s: numpy oracle gave %d rows", name, got);
}

int main(void) {
    const char *root = getenv("DV2_ROOT");
    dv2_config c;
    dv2_error err = {0};
    /* default config, README fast setup (32 ranks x 64) */
    dv2_config_defaults(&c);
    check_config("default", &c, 32, root);
    /* vitl14: 96 ranks x 32, 500 epochs, 80 warm-up */
    dv2_config_defaults(&c);
    const char *ov[] = {"train.batch_size_per_gpu=32", "optim.epochs=500", "optim.warmup_epochs=80",
                        "optim.base_lr=2e-4", "optim.weight_decay_end=0.2", "teacher.momentum_teacher=0.994"};
    for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++) CHECK(dv2_config_override(&c, ov[i], &err) == 0);
    check_config("vitl14", &c, 96, root);
    dv2_schedules s;
    dv2_schedules_init(&s, &c, 96);
    CHECK(fabs(s.peak_lr - 2e-4 * sqrt(3.0)) < 1e-15);
    CHECK(s.total == 625000);

    /* degenerate warm-ups */
    dv2_cosine k;
    dv2_cosine_init(&k, 1.0, 0.0, 10, 1, 0.5);
    CHECK(dv2_cosine_at(&k, 0) == 0.5 && dv2_cosine_at(&k, 1) == 1.0 && dv2_cosine_at(&k, 10) == 0.0);
    dv2_cosine_init(&k, 1.0, 0.0, 0, 0, 0.0);
    CHECK(dv2_cosine_at(&k, 0) == 0.0);
    return tu_finish("test_schedule");
}
