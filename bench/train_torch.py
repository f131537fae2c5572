#!/usr/bin/python3
# train_torch.py — the PyTorch side of bench/b_train.sh: one full DINOv2
# training step at the sizes of configs/fmnist_tiny.cfg (B 32, ViT D 96,
# 4 blocks, 3 heads, patch 4, globals 2x28², locals 2x12², shared head
# 256/64 -> 1024 prototypes), written with the reference model of
# tests/ref/dinov2_ref.py in float32 eager PyTorch: teacher forward and
# targets (centering), student forward on [masked globals, locals], heads,
# DINO + iBOT + KoLeo, backward, per-module clipping, AdamW, EMA.  Inputs are
# random tensors (no data loading).  Prints "BASE <images/s>" (median after
# one warm-up).  Usage: train_torch.py [steps]
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import dinov2_ref as ref  # noqa: E402

torch.set_default_dtype(torch.float32)
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))


def main(steps):
    B, D, L, H, NL, K = 32, 96, 4, 3, 2, 1024
    c = dict(dim=D, depth=L, heads=H, patch=4, img=28, reg=0, ffn="mlp", offset=0.1, antialias=0)
    hd = dict(**{"in": D}, hidden=256, bottleneck=64, K=K, eps=1e-6)
    gen = torch.Generator().manual_seed(3)
    Ps = ref.random_params(ref.backbone_shapes(c), gen)
    Hs = ref.random_params(ref.head_shapes(hd), gen)
    Pt = {k: v.detach().clone() for k, v in Ps.items()}
    Ht = {k: v.detach().clone() for k, v in Hs.items()}
    params = list(Ps.values()) + list(Hs.values())
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.04)
    center, ccenter = torch.zeros(K), torch.zeros(K)
    N = 49
    t = []
    for r in range(steps + 1):
        xg = torch.randn(2 * B, 3, 28, 28, generator=gen)
        xl = torch.randn(NL * B, 3, 12, 12, generator=gen)
        mask = torch.zeros(2 * B, N, dtype=torch.bool)
        mask[torch.randperm(2 * B, generator=gen)[:B]] = torch.rand(B, N, generator=gen) < 0.3
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            tn, _, _ = ref.backbone(Pt, c, [xg], [None])
            cls_t = torch.cat([tn[0][B:, 0], tn[0][:B, 0]])
            pat_t = tn[0][:, 1:][mask]
            lt = ref.head(Ht, hd, torch.cat([cls_t, pat_t]))
            q = torch.softmax((lt[:2 * B] - center) / 0.04, -1)
            qp = torch.softmax((lt[2 * B:] - ccenter) / 0.04, -1)
            center = 0.9 * center + 0.1 * lt[:2 * B].mean(0)
            ccenter = 0.9 * ccenter + 0.1 * lt[2 * B:].mean(0)
        sn, _, _ = ref.backbone(Ps, c, [xg, xl], [mask, None])
        cls_g, cls_l = sn[0][:, 0], sn[1][:, 0]
        pat_s = sn[0][:, 1:][mask]
        ls = ref.head(Hs, hd, torch.cat([cls_l, cls_g, pat_s]))
        s_l, s_g, s_p = ls[:NL * B], ls[NL * B:NL * B + 2 * B], ls[NL * B + 2 * B:]
        Z = 2 * NL + 2
        loss = sum(ref.ce(q[g * B:(g + 1) * B], s_l[v * B:(v + 1) * B], 0.1).mean()
                   for v in range(NL) for g in range(2)) / Z
        loss = loss + 2 * ref.ce(q, s_g, 0.1).mean() / Z
        m_r = mask.sum(1, keepdim=True).clamp(min=1).expand_as(mask)[mask].float()
        loss = loss + (ref.ce(qp, s_p, 0.1) / m_r).sum() / (2 * B)
        loss = loss + 0.1 * (ref.koleo(cls_g[:B]) + ref.koleo(cls_g[B:]))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(Ps.values()), 3.0)
        torch.nn.utils.clip_grad_norm_(list(Hs.values()), 3.0)
        opt.step()
        with torch.no_grad():
            for a, b in zip(list(Pt.values()) + list(Ht.values()), params):
                a.mul_(0.99).add_(b.detach(), alpha=0.01)
        t.append(time.perf_counter() - t0)
        print("step %d: %.3f s" % (r, t[-1]), file=sys.stderr)
    print("BASE %.2f" % (B / statistics.median(t[1:])))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
