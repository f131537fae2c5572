#!/usr/bin/python3
# model_torch.py — the PyTorch side of bench/b_model.sh: the same two
# workloads as bench/bench_model.c, run with the reference model of
# tests/ref/dinov2_ref.py in float32 eager PyTorch (2 threads):
#   fwd:   vit_small/14 forward at 224x224, batch 16 (no_grad) -> images/s
#   train: the tiny training step (teacher forward, student forward on
#          [masked globals, locals], DINO head, backward) -> steps/s
# Prints "BASE <value>" (median after one warm-up).
# DV2_BENCH_DEVICE=cuda runs it on the GPU in float32 without TF32,
# cuda-bf16 under bf16 autocast (the baselines of bench/b_model_gpu.sh);
# DV2_BENCH_BATCH sets the batch as for bench_model.
# Usage: model_torch.py fwd|train [reps]
import contextlib
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import dinov2_ref as ref  # noqa: E402

torch.set_default_dtype(torch.float32)
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
DEV = os.environ.get("DV2_BENCH_DEVICE", "cpu")
GPU = DEV.startswith("cuda")
if GPU:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def dev(t):
    return t.to("cuda") if GPU else t


def sync():
    if GPU:
        torch.cuda.synchronize()


def autocast():
    if DEV != "cuda-bf16":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16)


def batch(default):
    v = int(os.environ.get("DV2_BENCH_BATCH", "0") or 0)
    return v if v > 0 else default


def bench_fwd(reps):
    c = dict(dim=384, depth=12, heads=6, patch=14, img=224, reg=0, ffn="mlp", offset=0.1, antialias=0)
    gen = torch.Generator().manual_seed(1)
    P = {k: dev(v.detach()) for k, v in ref.random_params(ref.backbone_shapes(c), gen).items()}
    B = batch(16)
    x = dev(torch.randn(B, 3, 224, 224, generator=gen))
    t = []
    with torch.no_grad(), autocast():
        for r in range(reps + 1):
            sync()
            t0 = time.perf_counter()
            ref.backbone(P, c, [x], [None])
            sync()
            t.append(time.perf_counter() - t0)
            print("fwd %d: %.4f s" % (r, t[-1]), file=sys.stderr)
    print("BASE %.2f" % (B / statistics.median(t[1:])))


def bench_train(reps):
    D, L, H, B, NL, K = 192, 4, 3, batch(4), 4, 1024
    c = dict(dim=D, depth=L, heads=H, patch=14, img=112, reg=0, ffn="mlp", offset=0.1, antialias=0)
    hd = dict(**{"in": D}, hidden=512, bottleneck=64, K=K, eps=1e-6)
    gen = torch.Generator().manual_seed(2)
    def leaf(P):
        return {k: dev(v.detach()).requires_grad_(v.requires_grad) for k, v in P.items()}
    Ps = leaf(ref.random_params(ref.backbone_shapes(c), gen))
    Pt = {k: v.detach().clone() for k, v in Ps.items()}
    Hs = leaf(ref.random_params(ref.head_shapes(hd), gen))
    Ht = {k: v.detach().clone() for k, v in Hs.items()}
    xg = dev(torch.randn(2 * B, 3, 112, 112, generator=gen))
    xl = dev(torch.randn(NL * B, 3, 56, 56, generator=gen))
    mask = torch.zeros(2 * B, 64, dtype=torch.bool)
    mask[:B, ::3] = True
    mask = dev(mask)
    dl = dev(torch.randn(2 * B + NL * B, K, generator=gen))
    t = []
    for r in range(reps + 1):
        sync()
        t0 = time.perf_counter()
        for v in list(Ps.values()) + list(Hs.values()):
            v.grad = None
        with autocast():
            with torch.no_grad():
                tn, _, _ = ref.backbone(Pt, c, [xg], [None])
                ref.head(Ht, hd, tn[0][:, 0])
            sn, _, _ = ref.backbone(Ps, c, [xg, xl], [mask, None])
            logits = ref.head(Hs, hd, torch.cat([sn[0][:, 0], sn[1][:, 0]]))
            (logits.float() * dl).sum().backward()
        sync()
        t.append(time.perf_counter() - t0)
        print("train %d: %.4f s" % (r, t[-1]), file=sys.stderr)
    print("BASE %.3f" % (1 / statistics.median(t[1:])))


if __name__ == "__main__":
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    {"fwd": bench_fwd, "train": bench_train}[sys.argv[1]](reps)
