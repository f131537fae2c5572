#!/usr/bin/python3
# train_ref.py — independent PyTorch oracle for tests/test_parity_train.c:
# the first NSTEPS full DINOv2 training iterations of a tiny config, built
# from the functions of dinov2_ref.py (backbone, head, ce, koleo) and
# /work/shared/spec/dinov2-training.md §5, §6.2, §7.3, §10, §11, in float64:
#   teacher forward on the globals, swapped CLS, masked-patch gather, one
#   shared-head pass on [swapped CLS; masked patches], softmax centering with
#   the one-iteration lag (the center update is kept pending and applied at
#   the start of the next iteration's target computation), student packed
#   forward with mask tokens, shared-head pass on [local CLS; global CLS;
#   masked patches], DINO + iBOT + KoLeo, backward, per-module clipping to 3
#   (coefficient min(1, 3/(norm+1e-6))), AdamW (0.9/0.999, eps 1e-8,
#   decoupled wd, bias correction) with the parameter groups of §10.2 (no wd
#   on bias/norm/gamma, layer-wise lr decay 0.9, patch embed x0.2, last-layer
#   lr 0 during the freeze), the schedules of §10.4, EMA teacher update.
#
# Tiny config (the C test builds the same from config keys): ViT D 32,
# depth 2, 2 heads, patch 4, no registers, MLP FFN, interpolate offset 0.1;
# global crops 16 px (4x4 patches), 2 local crops of 8 px; B 4; shared head
# 32 -> 64 -> 64 -> 32 -> K 64; drop path 0 (no randomness in the model);
# E = 2 iterations per "epoch", 3 epochs (T = 6), lr 2e-3 with 1 warm-up
# epoch, min lr 1e-6, wd 0.04 -> 0.4, teacher momentum 0.9 -> 1, teacher
# temperature 0.04 -> 0.07 over 2 epochs, last layer frozen for 1 epoch.
#
# Inputs fed to both sides: random initial weights of order one (student =
# teacher, as the spec's start; not the training init, so that every path
# matters and the KoLeo neighbours are well separated), and per step random
# crops and iBOT masks (the count structure of §7.1: floor(2B·0.5) masked
# crops with stratified ratios, shuffled; random patches instead of blocks —
# mask shapes are tested by test_mask) drawn from a seeded torch generator.
#
# Writes tests/ref/fixtures/train.bin (DV2REF01, tests/ref/fixture.h):
#   version; init.<backbone name>, init_head.<head name>; per step s:
#   s<s>.xg, s<s>.xl, s<s>.masks; sched (NSTEPS x 5: lr, last_layer_lr, wd,
#   momentum, teacher_temp); losses (NSTEPS x 5: dino_local, dino_global,
#   ibot, koleo (sum of the two groups, unweighted), total); gnorm (NSTEPS x 2:
#   backbone, head before clipping); final student/teacher tensors
#   fs.*, fsh.*, ft.*, fth.*; final centers dino_center, ibot_center.
#
# Regenerate:  /usr/bin/python3 tests/ref/train_ref.py tests/ref/fixtures/train.bin
#
# --distill: the same iterations in dv2-distill's mode (spec §16), written to
# tests/ref/fixtures/distill.bin for the second part of test_parity_train:
# a frozen random teacher of another width (D 48, 3 heads, 1 register, its
# own head 48 -> 96 -> 96 -> 24 -> K 64) that is never updated; the student
# (the tiny config above) sees unmasked crops; the iBOT loss runs on every
# patch token of both global crops with weight 1/N; the EMA goes into a
# spare copy of the student.  Arrays: init.*, init_head.* (student),
# teacher.*, teacher_head.*; per step s<s>.xg, s<s>.xl; sched, losses,
# gnorm; final fs.*, fsh.* (student), fe.*, feh.* (its EMA); the centers.
#   /usr/bin/python3 tests/ref/train_ref.py --distill tests/ref/fixtures/distill.bin
#
# --long N OUT: N iterations (a multiple of 20) of the same tiny config for
# the curve comparison of test_parity_train --long (tests/t_train_longref.sh,
# not committed: 6 MB at N = 200).  The schedules run over the N iterations
# (epochs of 20: lr warm-up 1 epoch, teacher temperature warm-up 3, last
# layer frozen 1); the crops are windows of a pool of 16 smooth random
# images (3 x 20 x 20, bilinear up from 5 x 5) at random offsets plus 0.1 of
# noise, so the two global views of an image agree.  Arrays: version, run
# (steps, epoch length, epochs, warm-up, temperature warm-up, freeze
# epochs), init.*, init_head.*, per step s<s>.xg, s<s>.xl, s<s>.masks;
# sched, losses, gnorm, koleo_margin (per step: the smallest gap between
# the nearest and the second-nearest KoLeo neighbour's cosine).
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dinov2_ref as R  # noqa: E402  (sets the default dtype to float64)

FIXTURE_VERSION = 1  # bump with every change of what is written; test_parity_train checks it
NSTEPS = 5

CFG = dict(dim=32, depth=2, heads=2, patch=4, img=16, reg=0, ffn="mlp", offset=0.1, antialias=0)
HEAD = dict(**{"in": 32}, hidden=64, bottleneck=32, K=64, eps=1e-6)
B, NL, SG, SL = 4, 2, 16, 8
E, EPOCHS, WARMUP_EP, LR, MIN_LR = 2, 3, 1, 2e-3, 1e-6
WD, WD_END, MOM, MOM_END = 0.04, 0.4, 0.9, 1.0
TT_WARM, TT, TT_EP, FREEZE_EP = 0.04, 0.07, 2, 1
TAU_S, CENTER_MOM, CLIP = 0.1, 0.9, 3.0
BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8
RHO, PE_MULT = 0.9, 0.2
MASK_PROB, MASK_MIN, MASK_MAX = 0.5, 0.1, 0.5
# --long: the epoch length, the seed, and the image pool of the inputs
LONG_E, LONG_SEED, POOL, BASE = 20, 2718, 16, 20
# the frozen teacher of --distill
CFG_T = dict(CFG, dim=48, heads=3, reg=1)
HEAD_T = dict(**{"in": 48}, hidden=96, bottleneck=24, K=64, eps=1e-6)


# ---------------------------------------------------------------- schedules (§10.4)
def cosine(base, final, T, Tw, start=0.0, freeze=0):
    warm = np.linspace(start, base, Tw)
    j = np.arange(T - Tw)
    s = np.concatenate((warm, final + 0.5 * (base - final) * (1 + np.cos(np.pi * j / len(j)))))
    s[:freeze] = 0.0
    return lambda it: final if it >= len(s) else float(s[it])


def set_run(steps, epoch_len, epochs, warmup_ep, tt_ep, freeze_ep):
    """The run's length and the schedules over it (--long stretches them)."""
    global NSTEPS, E, EPOCHS, WARMUP_EP, TT_EP, FREEZE_EP, T, S_LR, S_LAST, S_WD, S_MOM, S_TT
    NSTEPS, E, EPOCHS, WARMUP_EP, TT_EP, FREEZE_EP = steps, epoch_len, epochs, warmup_ep, tt_ep, freeze_ep
    T = EPOCHS * E
    S_LR = cosine(LR, MIN_LR, T, WARMUP_EP * E)
    S_LAST = cosine(LR, MIN_LR, T, WARMUP_EP * E, freeze=FREEZE_EP * E)
    S_WD = cosine(WD, WD_END, T, 0)
    S_MOM = cosine(MOM, MOM_END, T, 0)
    S_TT = cosine(TT, TT, TT_EP * E, TT_EP * E, TT_WARM)


set_run(NSTEPS, E, EPOCHS, WARMUP_EP, TT_EP, FREEZE_EP)


# ---------------------------------------------------------------- parameter groups (§10.2)
def wd_mult(name):
    return 0.0 if name.endswith(".bias") or "norm" in name or "gamma" in name else 1.0


def backbone_group(name):
    L = CFG["depth"]
    if name in ("pos_embed", "mask_token", "cls_token", "register_tokens") or name.startswith("patch_embed"):
        lid = 0
    elif name.startswith("blocks."):
        lid = int(name.split(".")[1]) + 1
    else:
        lid = L + 1
    lr_mult = RHO ** (L + 1 - lid) * (PE_MULT if name.startswith("patch_embed") else 1.0)
    return lr_mult, wd_mult(name), False


def head_group(name):
    return 1.0, wd_mult(name), "last_layer" in name


# ---------------------------------------------------------------- masks (§7.1 counts)
def draw_masks(gen):
    N = (SG // CFG["patch"]) ** 2
    n = 2 * B
    nm = int(n * MASK_PROB)
    probs = np.linspace(MASK_MIN, MASK_MAX, nm + 1, dtype=np.float32).astype(np.float64)
    rows = []
    for i in range(nm):
        rho = probs[i] + (probs[i + 1] - probs[i]) * torch.rand((), generator=gen).item()
        target = min(int(N * rho), int(N * probs[i + 1]))
        m = torch.zeros(N, dtype=torch.bool)
        m[torch.randperm(N, generator=gen)[:target]] = True
        rows.append(m)
    rows += [torch.zeros(N, dtype=torch.bool)] * (n - nm)
    order = torch.randperm(n, generator=gen).tolist()
    return torch.stack([rows[k] for k in order])


# ---------------------------------------------------------------- one iteration (§5)
def step(it, st, xg, xl, masks, out):
    Ps, Hs, Pt, Ht = st["Ps"], st["Hs"], st["Pt"], st["Ht"]
    distill = st.get("distill", False)
    Ct, Hct = (CFG_T, HEAD_T) if distill else (CFG, HEAD)
    lr, lr_last, wd, mom, tt = S_LR(it), S_LAST(it), S_WD(it), S_MOM(it), S_TT(it)
    out["sched"].append([lr, lr_last, wd, mom, tt])
    D = CFG["dim"]
    # lazy center updates from the previous iteration (§6.2, §7.3)
    for key in ("dino", "ibot"):
        if st["pending_" + key] is not None:
            st["c_" + key] = CENTER_MOM * st["c_" + key] + (1 - CENTER_MOM) * st["pending_" + key]
            st["pending_" + key] = None
    if distill:  # no masking: every patch token of both global crops, weight 1/N (§16)
        flat = torch.arange(masks.numel())
        M = flat.numel()
        wts = torch.full((M,), 1.0 / masks.shape[1])
    else:
        flat = masks.flatten().nonzero().flatten()
        M = flat.numel()
        wts = (1.0 / masks.sum(1).clamp(min=1).to(torch.float64)).repeat_interleave(masks.sum(1))
    # teacher: globals, unmasked, no gradient; one shared-head pass
    with torch.no_grad():
        tn, _, _ = R.backbone(Pt, Ct, [xg], [None])
        t_cls = tn[0][:, 0]
        t_cls_sw = torch.cat([t_cls[B:], t_cls[:B]])
        t_pm = tn[0][:, 1 + Ct["reg"]:].reshape(-1, Ct["dim"])[flat]
        tl = R.head(Ht, Hct, torch.cat([t_cls_sw, t_pm]))
        t_dino, t_ibot = tl[:2 * B], tl[2 * B:]
        q_dino = torch.softmax((t_dino - st["c_dino"]) / tt, dim=-1)
        q_ibot = torch.softmax((t_ibot - st["c_ibot"]) / tt, dim=-1)
        st["pending_dino"] = t_dino.sum(0, keepdim=True) / (2 * B)  # W = 1
        st["pending_ibot"] = t_ibot.mean(0, keepdim=True) if M else None
    # student: packed [masked globals, locals]; one shared-head pass
    sn, _, _ = R.backbone(Ps, CFG, [xg, xl], [None if distill else masks, None])
    s_cls_g, s_cls_l = sn[0][:, 0], sn[1][:, 0]
    s_pm = sn[0][:, 1 + CFG["reg"]:].reshape(-1, D)[flat]
    sl = R.head(Hs, HEAD, torch.cat([s_cls_l, s_cls_g, s_pm]))
    s_l, s_g, s_p = sl[:NL * B], sl[NL * B:NL * B + 2 * B], sl[NL * B + 2 * B:]
    Z = 2 * NL + 2
    loss_local = sum(R.ce(q_dino[g * B:(g + 1) * B], s_l[v * B:(v + 1) * B], TAU_S).mean()
                     for v in range(NL) for g in range(2)) / Z
    loss_global = 2 * R.ce(q_dino, s_g, TAU_S).mean() / Z
    loss_ibot = (wts * R.ce(q_ibot, s_p, TAU_S)).sum() / (2 * B)
    k1, k2 = R.koleo(s_cls_g[:B]), R.koleo(s_cls_g[B:])
    total = loss_local + loss_global + 0.1 * (k1 + k2) + loss_ibot
    for P in (Ps, Hs):
        for v in P.values():
            v.grad = None
    total.backward()
    for P in (Ps, Hs):  # unused tensors (the mask token when distilling) get a zero gradient, as in C
        for v in P.values():
            if v.grad is None:
                v.grad = torch.zeros_like(v)
    out["losses"].append([x.item() for x in (loss_local, loss_global, loss_ibot, k1 + k2, total)])
    # KoLeo neighbours must be unambiguous (float32 on the C side)
    with torch.no_grad():
        for g in (s_cls_g[:B], s_cls_g[B:]):
            x = g / g.norm(dim=-1, keepdim=True)
            d = x @ x.t()
            d.fill_diagonal_(-2)
            top = d.topk(2, dim=1).values
            margin = (top[:, 0] - top[:, 1]).min().item()
            out["koleo_margin"] = min(out.get("koleo_margin", 1.0), margin)
            out.setdefault("koleo_margins", []).append(margin)
    # per-module clipping (§10.3), AdamW (§10.1, §10.2), EMA (§11)
    norms = []
    with torch.no_grad():
        for P in (Ps, Hs):
            n = math.sqrt(sum((v.grad ** 2).sum().item() for v in P.values()))
            norms.append(n)
            coef = min(1.0, CLIP / (n + 1e-6))
            for v in P.values():
                v.grad.mul_(coef)
        out["gnorm"].append(norms)
        st["t"] += 1
        t = st["t"]
        for P, grp in ((Ps, backbone_group), (Hs, head_group)):
            for name, p in P.items():
                lm, wm, last = grp(name)
                plr = (lr_last if last else lr) * lm
                m, v = st["m"][id(p)], st["v"][id(p)]
                m.mul_(BETA1).add_((1 - BETA1) * p.grad)
                v.mul_(BETA2).add_((1 - BETA2) * p.grad ** 2)
                p.mul_(1 - plr * wd * wm)
                p.sub_(plr / (1 - BETA1 ** t) * m / (v.sqrt() / math.sqrt(1 - BETA2 ** t) + ADAM_EPS))
        for S, Tt in ((Ps, st["Pe"]), (Hs, st["He"])) if distill else ((Ps, Pt), (Hs, Ht)):
            for name in S:
                Tt[name].mul_(mom).add_((1 - mom) * S[name].detach())


# ---------------------------------------------------------------- --long inputs
def draw_pool(gen):
    """POOL smooth random images of BASE x BASE pixels (bilinear up from 5 x 5),
    so that windows of one image at other offsets are correlated views."""
    return F.interpolate(torch.randn(POOL, 3, 5, 5, generator=gen), size=(BASE, BASE),
                         mode="bilinear", align_corners=False)


def draw_views(gen, pool):
    """B images of the pool; per image 2 global windows (SG) and NL local ones
    (SL) at random offsets, each plus 0.1 of fresh noise.  Laid out as the C
    batch: crop-major, xg[v*B + i] is view v of image i."""
    idx = torch.randperm(POOL, generator=gen)[:B].tolist()

    def window(img, size):
        oy, ox = torch.randint(0, BASE - size + 1, (2,), generator=gen).tolist()
        return img[:, oy:oy + size, ox:ox + size]

    xg = torch.stack([window(pool[i], SG) for _ in range(2) for i in idx])
    xl = torch.stack([window(pool[i], SL) for _ in range(NL) for i in idx])
    return (xg + 0.1 * torch.randn(xg.shape, generator=gen), xl + 0.1 * torch.randn(xl.shape, generator=gen))


def main(path, distill=False, long_steps=0):
    if long_steps:
        set_run(long_steps, LONG_E, long_steps // LONG_E, 1, 3, 1)
    gen = torch.Generator().manual_seed(4244 if distill else LONG_SEED if long_steps else 31337)
    Ps = R.random_params(R.backbone_shapes(CFG), gen)
    Hs = R.random_params(R.head_shapes(HEAD), gen)
    out = {"sched": [], "losses": [], "gnorm": []}
    arrays = [("version", np.array([FIXTURE_VERSION], dtype=np.float32))]

    def put(name, t):
        arrays.append((name, t.detach().to(torch.float32).numpy() if torch.is_tensor(t) else np.asarray(t)))

    if long_steps:
        put("run", np.array([NSTEPS, E, EPOCHS, WARMUP_EP, TT_EP, FREEZE_EP]))
    for k, v in Ps.items():
        put("init." + k, v)
    for k, v in Hs.items():
        put("init_head." + k, v)
    clone = lambda P: {k: v.detach().clone() for k, v in P.items()}  # noqa: E731
    st = dict(Ps=Ps, Hs=Hs, Pt=clone(Ps), Ht=clone(Hs),
              c_dino=torch.zeros(1, HEAD["K"]), c_ibot=torch.zeros(1, HEAD["K"]),
              pending_dino=None, pending_ibot=None, t=0, m={}, v={})
    if distill:  # a frozen teacher of its own width; the EMA goes into a copy of the student
        st.update(distill=True, Pe=st["Pt"], He=st["Ht"],
                  Pt=clone(R.random_params(R.backbone_shapes(CFG_T), gen)),
                  Ht=clone(R.random_params(R.head_shapes(HEAD_T), gen)))
        for k, v in st["Pt"].items():
            put("teacher." + k, v)
        for k, v in st["Ht"].items():
            put("teacher_head." + k, v)
    for P in (Ps, Hs):
        for p in P.values():
            st["m"][id(p)] = torch.zeros_like(p)
            st["v"][id(p)] = torch.zeros_like(p)
    pool = draw_pool(gen) if long_steps else None
    for s in range(NSTEPS):
        if long_steps:
            xg, xl = draw_views(gen, pool)
        else:
            xg = torch.randn(2 * B, 3, SG, SG, generator=gen)
            xl = torch.randn(NL * B, 3, SL, SL, generator=gen)
        masks = torch.zeros(2 * B, (SG // CFG["patch"]) ** 2, dtype=torch.bool) if distill else draw_masks(gen)
        # the C side reads float32 crops: feed the reference the same values
        xg, xl = xg.float().double(), xl.float().double()
        put("s%d.xg" % s, xg)
        put("s%d.xl" % s, xl)
        if not distill:
            put("s%d.masks" % s, masks.to(torch.float32))
        step(s, st, xg, xl, masks, out)
    for key in ("dino", "ibot"):  # the pending updates, as the C side applies them at once
        if st["pending_" + key] is not None:
            st["c_" + key] = CENTER_MOM * st["c_" + key] + (1 - CENTER_MOM) * st["pending_" + key]
    put("sched", np.array(out["sched"]))
    put("losses", np.array(out["losses"]))
    put("gnorm", np.array(out["gnorm"]))
    if long_steps:  # only the curves: after many steps the tensors carry float32 drift
        put("koleo_margin", np.array(out["koleo_margins"]))
        R.write_fixture(path, arrays)
        m = np.array(out["koleo_margins"])
        print("%d steps; koleo margin min %.3g (step %d); wrote %s (%d bytes)"
              % (NSTEPS, m.min(), m.argmin() // 2, path, os.path.getsize(path)))
        return
    final = (("fe.", st["Pe"]), ("feh.", st["He"])) if distill else (("ft.", st["Pt"]), ("fth.", st["Ht"]))
    for pre, P in (("fs.", Ps), ("fsh.", Hs)) + final:
        for k, v in P.items():
            put(pre + k, v)
    put("dino_center", st["c_dino"][0])
    put("ibot_center", st["c_ibot"][0])
    assert out["koleo_margin"] > 1e-3, "KoLeo neighbours too close to call: %g" % out["koleo_margin"]
    R.write_fixture(path, arrays)
    for s, l in enumerate(out["losses"]):
        print("step %d: local %.6f global %.6f ibot %.6f koleo %.6f total %.6f  gnorm %.3f %.3f"
              % ((s,) + tuple(l) + tuple(out["gnorm"][s])))
    print("koleo margin %.4g; wrote %s (%d arrays, %d bytes)"
          % (out["koleo_margin"], path, len(arrays), os.path.getsize(path)))


if __name__ == "__main__":
    args = sys.argv[1:]
    distill = "--distill" in args
    long_steps = 0
    if "--long" in args:
        i = args.index("--long")
        long_steps = int(args[i + 1])
        assert long_steps > 0 and long_steps % LONG_E == 0, "--long N: N a multiple of %d" % LONG_E
        del args[i:i + 2]
    args = [a for a in args if a != "--distill"]
    if long_steps and not args:
        sys.exit("usage: train_ref.py --long N OUT")
    main(args[0] if args else "tests/ref/fixtures/%s.bin" % ("distill" if distill else "train"), distill, long_steps)
