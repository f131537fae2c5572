#!/usr/bin/python3
# schedule_ref.py — the DINOv2 schedules built as the reference builds them
# (numpy arrays: linspace warm-up, cosine over arange, final value past the
# end; last-layer lr zeroed for the freeze period), printed for the given
# iterations.  Used by tests/test_schedule.c as an independent oracle.
#
# usage: schedule_ref.py E EPOCHS WARMUP_EP BASE_LR BATCH_TOTAL MIN_LR WD WD_END
#                        MOM MOM_END TT_WARM TT TT_EP FREEZE_EP IT...
# prints per IT: "it lr last_layer_lr wd momentum teacher_temp" with %.17g
import sys
import numpy as np


class Cosine:
    def __init__(self, base, final, total, warmup=0, start=0.0, freeze=0):
        warm = np.linspace(start, base, warmup)
        iters = np.arange(total - warmup)
        cos = final + 0.5 * (base - final) * (1 + np.cos(np.pi * iters / len(iters)))
        self.s = np.concatenate((warm, cos))
        self.s[:freeze] = 0.0
        self.final = final

    def __getitem__(self, it):
        return self.final if it >= len(self.s) else self.s[it]


def main(a):
    E, epochs, wep = int(a[0]), float(a[1]), float(a[2])
    base_lr, bt, min_lr = float(a[3]), int(a[4]), float(a[5])
    wd, wd_end, mom, mom_end = map(float, a[6:10])
    ttw, tt, ttep, frz = float(a[10]), float(a[11]), float(a[12]), float(a[13])
    T = int(epochs * E)
    lr = base_lr * np.sqrt(bt / 1024.0)
    s_lr = Cosine(lr, min_lr, T, int(wep * E))
    s_ll = Cosine(lr, min_lr, T, int(wep * E), freeze=int(frz * E))
    s_wd = Cosine(wd, wd_end, T)
    s_m = Cosine(mom, mom_end, T)
    s_tt = Cosine(tt, tt, int(ttep * E), int(ttep * E), ttw)
    for it in map(int, a[14:]):
        print(it, " ".join("%.17g" % s[it] for s in (s_lr, s_ll, s_wd, s_m, s_tt)))


main(sys.argv[1:])
