#!/usr/bin/python3
# dinov2_ref.py — independent PyTorch oracle for tests/test_parity_model.c:
# the DINOv2 ViT backbone, the DINO/iBOT heads and one full student step
# (teacher forward on the global crops, student forward on [masked globals,
# locals], heads, DINO + iBOT + KoLeo losses, backward), written from
# /work/shared/spec/dinov2-training.md §2, §3, §5–§9 with plain torch ops
# (attention written out; torch 1.13).  Tensors use the official state-dict
# names.  Each crop group is run as its own batch here (the C code packs
# them into one sequence with block-diagonal attention, which must give the
# same numbers).
#
# Writes tests/ref/fixtures/model.bin (DV2REF01 format, tests/ref/fixture.h):
#   cfgA.*  MLP FFN, 1 register, offset-0.1 bicubic pos_embed, full step with
#           centering (DINO) and Sinkhorn-Knopp (iBOT) targets, drop path 0;
#           then the batch-subset drop path with fixed subsets.
#   cfgB.*  SwiGLU FFN, 2 registers, antialiased size-driven pos_embed
#           (down, up and non-square grids), forward with intermediate layers,
#           and gradients of a fixed linear functional of the outputs.
#
# Regenerate:  /usr/bin/python3 tests/ref/dinov2_ref.py tests/ref/fixtures/model.bin
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

from fixture import write_fixture

torch.set_default_dtype(torch.float64)
LN_EPS = 1e-6
FIXTURE_VERSION = 2  # bump with every change of what is written; test_parity_model checks it


# ---------------------------------------------------------------- parameters
def swiglu_hidden(d):
    h = 4 * d
    return 8 * ((int(h * 2 / 3) + 7) // 8)


def backbone_shapes(c):
    D, p, M = c["dim"], c["patch"], c["img"] // c["patch"]
    s = [("cls_token", (1, 1, D)), ("pos_embed", (1, 1 + M * M, D))]
    if c["reg"] > 0:
        s.append(("register_tokens", (1, c["reg"], D)))
    s += [("mask_token", (1, D)), ("patch_embed.proj.weight", (D, 3, p, p)),
          ("patch_embed.proj.bias", (D,))]
    for i in range(c["depth"]):
        b = "blocks.%d." % i
        s += [(b + "norm1.weight", (D,)), (b + "norm1.bias", (D,)),
              (b + "attn.qkv.weight", (3 * D, D)), (b + "attn.qkv.bias", (3 * D,)),
              (b + "attn.proj.weight", (D, D)), (b + "attn.proj.bias", (D,)),
              (b + "ls1.gamma", (D,)), (b + "norm2.weight", (D,)), (b + "norm2.bias", (D,))]
        if c["ffn"] == "swiglu":
            h = swiglu_hidden(D)
            s += [(b + "mlp.w12.weight", (2 * h, D)), (b + "mlp.w12.bias", (2 * h,)),
                  (b + "mlp.w3.weight", (D, h)), (b + "mlp.w3.bias", (D,))]
        else:
            s += [(b + "mlp.fc1.weight", (4 * D, D)), (b + "mlp.fc1.bias", (4 * D,)),
                  (b + "mlp.fc2.weight", (D, 4 * D)), (b + "mlp.fc2.bias", (D,))]
        s.append((b + "ls2.gamma", (D,)))
    s += [("norm.weight", (D,)), ("norm.bias", (D,))]
    return s


def head_shapes(h):
    return [("mlp.0.weight", (h["hidden"], h["in"])), ("mlp.0.bias", (h["hidden"],)),
            ("mlp.2.weight", (h["hidden"], h["hidden"])), ("mlp.2.bias", (h["hidden"],)),
            ("mlp.4.weight", (h["bottleneck"], h["hidden"])), ("mlp.4.bias", (h["bottleneck"],)),
            ("last_layer.weight_g", (h["K"], 1)), ("last_layer.weight_v", (h["K"], h["bottleneck"]))]


def random_params(shapes, gen):
    """Random values of order one (not the training init: every path must matter)."""
    p = {}
    for name, shape in shapes:
        t = torch.randn(shape, generator=gen)
        if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
            t = 1.0 + 0.2 * t
        elif name.endswith("gamma"):
            t = 0.5 * t
        elif name.endswith("weight_g"):
            t = 1.0 + 0.1 * t
        elif name.endswith("weight") or name.endswith("weight_v"):
            t = t / math.sqrt(shape[1] if len(shape) == 2 else np.prod(shape[1:]))
        else:
            t = 0.3 * t
        p[name] = t.requires_grad_(True)
    return p


# ---------------------------------------------------------------- backbone
def layernorm(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + LN_EPS) * w + b


def attention(x, P, pre, H):
    b, n, D = x.shape
    dh = D // H
    qkv = x @ P[pre + "qkv.weight"].t() + P[pre + "qkv.bias"]
    qkv = qkv.reshape(b, n, 3, H, dh).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    a = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(dh), dim=-1)
    o = (a @ v).transpose(1, 2).reshape(b, n, D)
    return o @ P[pre + "proj.weight"].t() + P[pre + "proj.bias"]


def ffn(x, P, pre, kind):
    if kind == "swiglu":
        h = x @ P[pre + "w12.weight"].t() + P[pre + "w12.bias"]
        x1, x2 = h.chunk(2, dim=-1)
        return (F.silu(x1) * x2) @ P[pre + "w3.weight"].t() + P[pre + "w3.bias"]
    h = F.gelu(x @ P[pre + "fc1.weight"].t() + P[pre + "fc1.bias"])  # exact erf GELU
    return h @ P[pre + "fc2.weight"].t() + P[pre + "fc2.bias"]


def interpolate_pos(P, c, gh, gw):
    pos = P["pos_embed"]
    M = c["img"] // c["patch"]
    if gh == M and gw == M:
        return pos
    D = pos.shape[-1]
    grid = pos[:, 1:].reshape(1, M, M, D).permute(0, 3, 1, 2).float()
    if c["offset"] > 0:
        kw = {"scale_factor": ((gh + c["offset"]) / M, (gw + c["offset"]) / M)}
    else:
        kw = {"size": (gh, gw)}
    g = F.interpolate(grid, mode="bicubic", antialias=bool(c["antialias"]), **kw)
    assert g.shape[-2:] == (gh, gw)
    g = g.to(pos.dtype).permute(0, 2, 3, 1).reshape(1, gh * gw, D)
    return torch.cat([pos[:, :1], g], dim=1)


def prepare_tokens(P, c, img, mask):
    b, _, Hpx, Wpx = img.shape
    p, D = c["patch"], c["dim"]
    x = F.conv2d(img, P["patch_embed.proj.weight"], P["patch_embed.proj.bias"], stride=p)
    x = x.flatten(2).transpose(1, 2)                          # (b, N, D), row-major grid
    if mask is not None:                                      # replace before pos_embed
        x = torch.where(mask.unsqueeze(-1), P["mask_token"].to(x.dtype).unsqueeze(0), x)
    x = torch.cat([P["cls_token"].expand(b, -1, -1), x], dim=1)
    x = x + interpolate_pos(P, c, Hpx // p, Wpx // p)
    if c["reg"] > 0:
        x = torch.cat([x[:, :1], P["register_tokens"].expand(b, -1, -1), x[:, 1:]], dim=1)
    return x


def backbone(P, c, imgs, masks, subsets=None, keep_blocks=False):
    """imgs: list of crop groups. subsets[l][br][g]: sample indices of the
    batch-subset drop path (None: no drop path).  Returns per group the
    normed tokens (and the raw block outputs if keep_blocks)."""
    xs = [prepare_tokens(P, c, im, m) for im, m in zip(imgs, masks)]
    blocks = []
    for l in range(c["depth"]):
        pre = "blocks.%d." % l
        branches = [
            lambda x: P[pre + "ls1.gamma"] * attention(
                layernorm(x, P[pre + "norm1.weight"], P[pre + "norm1.bias"]), P, pre + "attn.", c["heads"]),
            lambda x: P[pre + "ls2.gamma"] * ffn(
                layernorm(x, P[pre + "norm2.weight"], P[pre + "norm2.bias"]), P, pre + "mlp.", c["ffn"]),
        ]
        for br, f in enumerate(branches):
            new = []
            for g, x in enumerate(xs):
                if subsets is None:
                    new.append(x + f(x))
                else:
                    idx = torch.tensor(subsets[l][br][g], dtype=torch.long)
                    b, k = x.shape[0], len(subsets[l][br][g])
                    new.append(torch.index_add(x, 0, idx, f(x[idx]), alpha=b / k))
            xs = new
        if keep_blocks:
            blocks.append(xs)
    normed = [layernorm(x, P["norm.weight"], P["norm.bias"]) for x in xs]
    return normed, xs, blocks


# ---------------------------------------------------------------- heads, losses
def head(P, h, x):
    z = F.gelu(x @ P["mlp.0.weight"].t() + P["mlp.0.bias"])
    z = F.gelu(z @ P["mlp.2.weight"].t() + P["mlp.2.bias"])
    z = z @ P["mlp.4.weight"].t() + P["mlp.4.bias"]
    z = z / torch.clamp(z.norm(dim=-1, keepdim=True), min=h["eps"])
    v, g = P["last_layer.weight_v"], P["last_layer.weight_g"]
    w = g * v / v.norm(dim=1, keepdim=True)
    return z @ w.t()


def ce(q, s, temp):
    return -(q * F.log_softmax(s / temp, dim=-1)).sum(-1)


def sinkhorn(t, temp, n_iter, b_total):
    q = torch.exp(t / temp).t()
    k = q.shape[0]
    q = q / q.sum()
    for _ in range(n_iter):
        q = q / q.sum(dim=1, keepdim=True) / k
        q = q / q.sum(dim=0, keepdim=True) / b_total
    return (q * b_total).t()


def koleo(x):
    x = x / torch.clamp(x.norm(dim=-1, keepdim=True), min=1e-8)
    with torch.no_grad():
        dots = x @ x.t()
        n = x.shape[0]
        dots.view(-1)[:: n + 1] = -1
        nn = dots.argmax(dim=1)
    d = (x - x[nn] + 1e-8).norm(dim=-1)
    return -torch.log(d + 1e-8).mean()


# ---------------------------------------------------------------- fixtures
def main(path):
    gen = torch.Generator().manual_seed(20260)
    out = [("version", np.array([FIXTURE_VERSION], dtype=np.float32))]

    def put(name, t):
        out.append((name, t.detach().to(torch.float32).numpy() if torch.is_tensor(t) else np.asarray(t)))

    # ---- configuration A: the training default path ----
    cA = dict(dim=24, depth=2, heads=2, patch=4, img=16, reg=1, ffn="mlp", offset=0.1, antialias=0)
    B, NL, Sg, Sl = 2, 2, 16, 12           # 2 global crops, NL local crops per image
    hd = dict(**{"in": 24}, hidden=32, bottleneck=16, K=48, eps=1e-6)
    hi = dict(**{"in": 24}, hidden=32, bottleneck=12, K=40, eps=1e-6)
    tau_s, tau_t = 0.1, 0.05
    Ps = random_params(backbone_shapes(cA), gen)
    Pt = {k: (v.detach() + 0.05 * torch.randn(v.shape, generator=gen)) for k, v in Ps.items()}
    Hd = random_params(head_shapes(hd), gen)
    Hi = random_params(head_shapes(hi), gen)
    Hdt = {k: (v.detach() + 0.05 * torch.randn(v.shape, generator=gen)) for k, v in Hd.items()}
    Hit = {k: (v.detach() + 0.05 * torch.randn(v.shape, generator=gen)) for k, v in Hi.items()}
    xg = torch.randn(2 * B, 3, Sg, Sg, generator=gen)
    xl = torch.randn(NL * B, 3, Sl, Sl, generator=gen)
    N = (Sg // 4) ** 2
    masks = torch.zeros(2 * B, N, dtype=torch.bool)
    masks[1, [0, 3, 5, 6, 10]] = True      # crop 1 of image 1
    masks[2, [2, 7, 8, 9, 12, 15]] = True  # crop 2 of image 0
    masks[3, [4]] = True
    center = 0.1 * torch.randn(1, hd["K"], generator=gen)
    for k, v in Ps.items():
        put("A.s." + k, v)
    for k, v in Pt.items():
        put("A.t." + k, v)
    for pre, Hh in (("A.sd.", Hd), ("A.si.", Hi), ("A.td.", Hdt), ("A.ti.", Hit)):
        for k, v in Hh.items():
            put(pre + k, v)
    put("A.xg", xg)
    put("A.xl", xl)
    put("A.masks", masks.to(torch.float32))
    put("A.center", center)

    # teacher (no gradient), globals only, unmasked
    with torch.no_grad():
        tn, _, _ = backbone(Pt, cA, [xg], [None])
        t_cls = tn[0][:, 0]
        t_patch = tn[0][:, 1 + cA["reg"]:]
        t_cls_sw = torch.cat([t_cls[B:], t_cls[:B]])
        flat = masks.flatten().nonzero().flatten()
        rowsum = masks.sum(1).clamp(min=1).to(torch.float64)
        wts = (1.0 / rowsum).repeat_interleave(masks.sum(1))
        t_pm = t_patch.reshape(-1, cA["dim"])[flat]
        t_dino = head(Hdt, hd, t_cls_sw)
        t_ibot = head(Hit, hi, t_pm)
        q_dino = torch.softmax((t_dino - center) / tau_t, dim=-1)
        q_ibot = sinkhorn(t_ibot, tau_t, 3, float(t_ibot.shape[0]))
    put("A.t_norm", tn[0])
    put("A.t_dino", t_dino)
    put("A.t_ibot", t_ibot)
    put("A.q_dino", q_dino)
    put("A.q_ibot", q_ibot)

    # student: [masked globals, locals], drop path 0
    sn, _, _ = backbone(Ps, cA, [xg, xl], [masks, None])
    s_cls_g, s_cls_l = sn[0][:, 0], sn[1][:, 0]
    s_pm = sn[0][:, 1 + cA["reg"]:].reshape(-1, cA["dim"])[flat]
    s_dino = head(Hd, hd, torch.cat([s_cls_l, s_cls_g]))
    s_l, s_g = s_dino[:NL * B], s_dino[NL * B:]
    s_p = head(Hi, hi, s_pm)
    Z = 2 * NL + 2
    loss_local = sum(ce(q_dino[g * B:(g + 1) * B], s_l[v * B:(v + 1) * B], tau_s).mean()
                     for v in range(NL) for g in range(2)) / Z
    loss_global = 2 * ce(q_dino, s_g, tau_s).mean() / Z
    loss_ibot = (wts * ce(q_ibot, s_p, tau_s)).sum() / (2 * B)
    k1, k2 = koleo(s_cls_g[:B]), koleo(s_cls_g[B:])
    total = loss_local + loss_global + 0.1 * (k1 + k2) + loss_ibot
    total.backward()
    put("A.s_norm_g", sn[0])
    put("A.s_norm_l", sn[1])
    put("A.s_dino", s_dino)
    put("A.s_ibot", s_p)
    put("A.losses", torch.stack([loss_local, loss_global, k1, k2, loss_ibot, total]))
    for pre, Pp in (("A.gs.", Ps), ("A.gsd.", Hd), ("A.gsi.", Hi)):
        for k, v in Pp.items():
            put(pre + k, v.grad if v.grad is not None else torch.zeros_like(v))
            v.grad = None

    # batch-subset drop path with fixed subsets, r = 0.5: k = max(floor(b/2), 1)
    r = 0.5
    bs = [2 * B, NL * B]
    ks = [max(int(b * (1 - r)), 1) for b in bs]
    sub = [[[torch.randperm(bs[g], generator=gen)[:ks[g]].tolist() for g in range(2)]
            for _ in range(2)] for _ in range(cA["depth"])]
    flat_sub = [i for l in sub for br in l for g in br for i in g]
    put("A.dp_subsets", np.array(flat_sub, dtype=np.float32))
    dn, _, _ = backbone(Ps, cA, [xg, xl], [masks, None], subsets=sub)
    wg = torch.randn(dn[0].shape, generator=gen)
    wl = torch.randn(dn[1].shape, generator=gen)
    ((dn[0] * wg).sum() + (dn[1] * wl).sum()).backward()
    put("A.dp_norm_g", dn[0])
    put("A.dp_norm_l", dn[1])
    put("A.dp_wg", wg)
    put("A.dp_wl", wl)
    for k, v in Ps.items():
        put("A.dpg." + k, v.grad if v.grad is not None else torch.zeros_like(v))
        v.grad = None

    # ---- configuration B: SwiGLU, registers, antialiased resampling ----
    cB = dict(dim=16, depth=3, heads=2, patch=2, img=10, reg=2, ffn="swiglu", offset=0.0, antialias=1)
    Pb = random_params(backbone_shapes(cB), gen)
    for k, v in Pb.items():
        put("B." + k, v)
    ximgs = [torch.randn(3, 3, 10, 10, generator=gen), torch.randn(2, 3, 6, 6, generator=gen),
             torch.randn(2, 3, 14, 14, generator=gen), torch.randn(2, 3, 6, 12, generator=gen)]
    bn, pre, blocks = backbone(Pb, cB, ximgs, [None] * 4, keep_blocks=True)
    fn = 0
    for g in range(4):
        put("B.x%d" % g, ximgs[g])
        put("B.norm%d" % g, bn[g])
        put("B.prenorm%d" % g, pre[g])
        w = torch.randn(bn[g].shape, generator=gen)
        put("B.w%d" % g, w)
        fn = fn + (bn[g] * w).sum()
        # intermediate layer 1 (get_intermediate_layers: final norm of a block output)
        put("B.inter1_%d" % g, layernorm(blocks[1][g], Pb["norm.weight"], Pb["norm.bias"]))
    fn.backward()
    for k, v in Pb.items():  # mask_token is unused here: zero gradient
        put("B.g." + k, v.grad if v.grad is not None else torch.zeros_like(v))

    write_fixture(path, out)
    print("wrote %s (%d arrays)" % (path, len(out)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/ref/fixtures/model.bin")
