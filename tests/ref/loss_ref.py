#!/usr/bin/python3
# loss_ref.py — PyTorch oracle for tests/test_loss.c: the DINOv2 losses and
# teacher targets written the way the reference training code computes them
# (log_softmax of s/tau summed against the targets, Sinkhorn-Knopp on the
# transposed exp matrix, KoLeo with F.normalize + PairwiseDistance), with
# gradients from autograd.  Writes tests/ref/fixtures/loss.bin.
#
# Regenerate:  /usr/bin/python3 tests/ref/loss_ref.py tests/ref/fixtures/loss.bin
import sys

import numpy as np
import torch
import torch.nn.functional as F

from fixture import write_fixture


def sinkhorn(t, temp, n_iter, b_total):
    q = torch.exp(t / temp).t()
    k = q.shape[0]
    q /= torch.sum(q)
    for _ in range(n_iter):
        q /= torch.sum(q, dim=1, keepdim=True)
        q /= k
        q /= torch.sum(q, dim=0, keepdim=True)
        q /= b_total
    q *= b_total
    return q.t()


def dino_loss(students, teachers, temp):
    total = 0
    for s in students:
        lsm = F.log_softmax(s / temp, dim=-1)
        for t in teachers:
            total = total - torch.sum(t * lsm, dim=-1).mean()
    return total


def koleo(x):
    x = F.normalize(x, eps=1e-8, p=2, dim=-1)
    with torch.no_grad():
        dots = torch.mm(x, x.t())
        n = x.shape[0]
        dots.view(-1)[:: (n + 1)].fill_(-1)
        _, nn_idx = torch.max(dots, dim=1)
    d = torch.nn.PairwiseDistance(2, eps=1e-8)(x, x[nn_idx])
    return -torch.log(d + 1e-8).mean(), nn_idx


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(20240611)
    B, L, K, tau_s, tau_t = 3, 2, 29, 0.1, 0.05
    arrays = [("dims", [B, L, K, tau_s, tau_t])]

    # teacher logits (rows already in the swapped order) and a center
    t = rng.normal(0, 0.5, (2 * B, K)).astype(np.float32)
    c = rng.normal(0, 0.1, (K,)).astype(np.float32)
    tt, ct = torch.from_numpy(t), torch.from_numpy(c)
    q_center = F.softmax((tt - ct) / tau_t, dim=-1)
    q_sk = sinkhorn(tt.clone(), tau_t, 3, 2 * B)
    new_center = ct * 0.9 + (torch.sum(tt, dim=0) / (2 * B)) * 0.1
    arrays += [("t", t), ("center", c), ("q_center", q_center), ("q_sk", q_sk), ("new_center", new_center)]

    # DINO local/global with the centered targets
    s_l = torch.tensor(rng.normal(0, 1, (L * B, K)).astype(np.float32), requires_grad=True)
    s_g = torch.tensor(rng.normal(0, 1, (2 * B, K)).astype(np.float32), requires_grad=True)
    n_local_terms = max(L * 2, 1)
    n_global_terms = (2 - 1) * 2
    Z = n_local_terms + n_global_terms
    qv = q_center.view(2, B, K)
    local = dino_loss(s_l.chunk(L), qv, tau_s) / Z
    glob = dino_loss([s_g], [qv.flatten(0, 1)], tau_s) * 2 / Z
    (local * 0.7 + glob * 1.3).backward()
    # no local crops: the reference still counts max(0 * 2, 1) = 1 local term
    z0 = max(0 * 2, 1) + n_global_terms
    glob0 = dino_loss([s_g.detach()], [qv.flatten(0, 1)], tau_s) * 2 / z0
    arrays += [("dino_global_L0", [glob0.item()])]
    arrays += [("s_l", s_l.detach()), ("s_g", s_g.detach()), ("dino_local", [local.item()]),
               ("dino_global", [glob.item()]), ("ds_l", s_l.grad), ("ds_g", s_g.grad)]

    # iBOT: 2B crops, masks on some rows, targets by Sinkhorn-Knopp with B_tot = M
    N = 5
    masks = np.zeros((2 * B, N), dtype=bool)
    masks[0, [1, 3]] = True
    masks[2, [0, 1, 2, 4]] = True
    masks[5, [2]] = True
    M = int(masks.sum())
    w = (1 / torch.from_numpy(masks).sum(-1).clamp(min=1.0)).unsqueeze(-1).expand(2 * B, N)[torch.from_numpy(masks)]
    t_p = torch.from_numpy(rng.normal(0, 0.5, (M, K)).astype(np.float32))
    q_p = sinkhorn(t_p.clone(), tau_t, 3, M)
    s_p = torch.tensor(rng.normal(0, 1, (M, K)).astype(np.float32), requires_grad=True)
    lsm = torch.sum(q_p * F.log_softmax(s_p / tau_s, dim=-1), dim=-1)
    ibot = -(lsm * w).sum() / (2 * B)
    (ibot * 0.9).backward()
    ibot_center_mean = t_p.unsqueeze(0).mean(1).sum(0)
    arrays += [("ibot_w", w), ("t_p", t_p), ("q_p", q_p), ("s_p", s_p.detach()), ("ibot", [ibot.item()]),
               ("ds_p", s_p.grad), ("ibot_center_mean", ibot_center_mean)]

    # KoLeo on one group of 5 rows of dim 6, a near-duplicate pair included
    x = rng.normal(0, 1, (5, 6)).astype(np.float32)
    x[4] = x[1] + 0.01 * rng.normal(0, 1, 6).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    kl, nn_idx = koleo(xt)
    (kl * 1.7).backward()
    arrays += [("koleo_x", x), ("koleo", [kl.item()]), ("koleo_nn", nn_idx.float()), ("koleo_dx", xt.grad)]

    write_fixture(out, arrays)


if __name__ == "__main__":
    main()
