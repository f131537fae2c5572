#!/usr/bin/python3
# model_torch.py — the PyTorch side of bench/b_model.sh: the same two
# workloads as bench/bench_model.c, run with the reference model of
# tests/ref/dinov2_ref.py in float32 eager PyTorch (2 threads):
#   fwd:   vit_small/14 forward at 224x224, batch 16 (no_grad) -> images/s
#   train: the tiny training step (teacher forward, student forward on
#          [masked globals, locals], DINO head, backward) -> steps/s
# Prints "BASE <value>" (median after one warm-up).
# Usage: model_torch.py fwd|train [reps]
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import dinov2_ref as ref  # noqa: E402

torch.set_default_dtype(torch.float32)
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))


def bench_fwd(reps):
    c = dict(dim=384, depth=12, heads=6, patch=14, img=224, reg=0, ffn="mlp", offset=0.1, antialias=0)
    gen = torch.Generator().manual_seed(1)
    P = {k: v.detach() for k, v in ref.random_params(ref.backbone_shapes(c), gen).items()}
    x = torch.randn(16, 3, 224, 224, generator=gen)
    t = []
    with torch.no_grad():
        for r in range(reps + 1):
            t0 = time.perf_counter()
            ref.backbone(P, c, [x], [None])
            t.append(time.perf_counter() - t0)
            print("fwd %d: %.3f s" % (r, t[-1]), file=sys.stderr)
    print("BASE %.2f" % (16 / statistics.median(t[1:])))


def bench_train(reps):
    D, L, H, B, NL, K = 192, 4, 3, 4, 4, 1024
    c = dict(dim=D, depth=L, heads=H, patch=14, img=112, reg=0, ffn="mlp", offset=0.1, antialias=0)
    hd = dict(**{"in": D}, hidden=512, bottleneck=64, K=K, eps=1e-6)
    gen = torch.Generator().manual_seed(2)
    Ps = ref.random_params(ref.backbone_shapes(c), gen)
    Pt = {k: v.detach().clone() for k, v in Ps.items()}
    Hs = ref.random_params(ref.head_shapes(hd), gen)
    Ht = {k: v.detach().clone() for k, v in Hs.items()}
    xg = torch.randn(2 * B, 3, 112, 112, generator=gen)
    xl = torch.randn(NL * B, 3, 56, 56, generator=gen)
    mask = torch.zeros(2 * B, 64, dtype=torch.bool)
    mask[:B, ::3] = True
    dl = torch.randn(2 * B + NL * B, K, generator=gen)
    t = []
    for r in range(reps + 1):
        t0 = time.perf_counter()
        for v in list(Ps.values()) + list(Hs.values()):
            v.grad = None
        with torch.no_grad():
            tn, _, _ = ref.backbone(Pt, c, [xg], [None])
            ref.head(Ht, hd, tn[0][:, 0])
        sn, _, _ = ref.backbone(Ps, c, [xg, xl], [mask, None])
        logits = ref.head(Hs, hd, torch.cat([sn[0][:, 0], sn[1][:, 0]]))
        (logits * dl).sum().backward()
        t.append(time.perf_counter() - t0)
        print("train %d: %.3f s" % (r, t[-1]), file=sys.stderr)
    print("BASE %.3f" % (1 / statistics.median(t[1:])))


if __name__ == "__main__":
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    {"fwd": bench_fwd, "train": bench_train}[sys.argv[1]](reps)
