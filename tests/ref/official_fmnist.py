#!/usr/bin/python3
"""official_fmnist.py — configs/fmnist_tiny.cfg trained with the official
DINOv2 modules, for outcome parity with dv2-train (docs/RESULTS.md, "The
official modules on the same recipe").

Usage: DINOV2_SRC=DIR OMP_NUM_THREADS=1 /usr/bin/python3 official_fmnist.py \
           --seed 0 --iters 800 --out RUN [--lr 7.071e-4] [--wd-end 0.4]
  DIR: a checkout of facebookresearch/dinov2 (the package dinov2/ inside
  it), imported as it is, never modified.

A single-process CPU loop assembled from the official pieces
(DinoVisionTransformer, DINOHead, DINOLoss, iBOTPatchLoss, KoLeoLoss,
MaskingGenerator, DataAugmentationDINO, collate_data_and_cast,
CosineScheduler, the parameter groups) the way SSLMetaArch.forward_backward,
do_train and update_teacher combine them.  What differs: fp32 on the CPU
instead of fp16 under FSDP; without xformers the student backbone runs the
global and the local crops in two calls, and the head a plain concatenation
(attention never mixes images, so the outputs are the same); torch < 2.0
gets a plain softmax attention as F.scaled_dot_product_attention; the data
order is one shuffled pass seeded by --seed (the official sampler ignores
the seed).  Writes RUN/train.jsonl (the loss terms as the official loss_dict
shows them, every --log-every iterations), RUN/summary.json and RUN/ckpt.pth
({"teacher": {"backbone.*": ...}}, which scripts/convert-weights reads).
"""
import argparse
import gzip
import json
import math
import os
import random
import sys
import time
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

SRC = os.environ.get("DINOV2_SRC")
if not SRC or not os.path.isdir(os.path.join(SRC, "dinov2")):
    sys.exit("official_fmnist.py: set DINOV2_SRC to a checkout of facebookresearch/dinov2 (holding dinov2/)")
sys.path.insert(0, SRC)


# --- environment shim: torch 1.13 has no F.scaled_dot_product_attention, which
# dinov2.layers.attention.Attention.forward calls (xformers absent).  Plain
# softmax attention, no mask, no dropout (the official attn_drop is 0).
def _sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False):
    assert attn_mask is None and not is_causal and dropout_p == 0.0
    scale = q.shape[-1] ** -0.5
    attn = torch.matmul(q * scale, k.transpose(-2, -1)).softmax(dim=-1)
    return torch.matmul(attn, v)


if not hasattr(F, "scaled_dot_product_attention"):
    F.scaled_dot_product_attention = _sdpa

import warnings  # noqa: E402

warnings.filterwarnings("ignore", message="xFormers is not available")

from dinov2.data import DataAugmentationDINO, MaskingGenerator, collate_data_and_cast  # noqa: E402
from dinov2.layers import DINOHead, MemEffAttention, NestedTensorBlock  # noqa: E402
from dinov2.loss import DINOLoss, iBOTPatchLoss, KoLeoLoss  # noqa: E402
from dinov2.models.vision_transformer import DinoVisionTransformer  # noqa: E402
from dinov2.utils.param_groups import fuse_params_groups, get_params_groups_with_decay  # noqa: E402
from dinov2.utils.utils import CosineScheduler  # noqa: E402


R = dict(  # the recipe (configs/fmnist_tiny.cfg + official defaults)
    embed_dim=96, depth=4, num_heads=3, patch_size=4, img_size=28, layerscale=1e-5,
    n_prototypes=1024, head_hidden=256, head_bottleneck=64, head_nlayers=3,
    batch=32, epoch_len=100, epochs=8, warmup_epochs=1, freeze_last_layer_epochs=1,
    min_lr=1e-6, wd=0.04, mom=0.99, mom_end=1.0,
    warmup_teacher_temp=0.04, teacher_temp=0.07, warmup_teacher_temp_epochs=4,
    clip_grad=3.0, betas=(0.9, 0.999), layerwise_decay=1.0, patch_embed_lr_mult=0.2,
    global_crops_scale=(0.4, 1.0), local_crops_scale=(0.1, 0.4), local_crops_number=2,
    global_crops_size=28, local_crops_size=12,
    dino_w=1.0, ibot_w=1.0, koleo_w=0.1, mask_ratio=(0.1, 0.5), mask_prob=0.5,
)


def read_idx_images(path):
    with gzip.open(path, "rb") as f:
        buf = f.read()
    magic, n, h, w = np.frombuffer(buf[:16], dtype=">u4")
    assert magic == 2051, magic
    return np.frombuffer(buf[16:], dtype=np.uint8).reshape(int(n), int(h), int(w))


def to_pil_rgb(a):
    return Image.fromarray(a, mode="L").convert("RGB")


def build_vit():
    return DinoVisionTransformer(
        img_size=R["img_size"], patch_size=R["patch_size"], embed_dim=R["embed_dim"], depth=R["depth"],
        num_heads=R["num_heads"], mlp_ratio=4, block_fn=partial(NestedTensorBlock, attn_class=MemEffAttention),
        init_values=R["layerscale"], ffn_layer="mlp", block_chunks=0, qkv_bias=True, proj_bias=True,
        ffn_bias=True, num_register_tokens=0, interpolate_offset=0.1, interpolate_antialias=False,
        drop_path_rate=0.0, drop_path_uniform=True,
    )


def build_head():
    return DINOHead(in_dim=R["embed_dim"], out_dim=R["n_prototypes"], hidden_dim=R["head_hidden"],
                    bottleneck_dim=R["head_bottleneck"], nlayers=R["head_nlayers"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iters", type=int, default=800, help="iterations to run (schedules always span 8x100)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--lr", type=float, default=7.071e-4, help="peak lr (0.004*sqrt(32/1024))")
    ap.add_argument("--wd-end", type=float, default=0.4, help="final weight decay (optim.weight_decay_end)")
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    images = read_idx_images(args.data)

    # models, built in the order build_model / SSLMetaArch use (teacher backbone,
    # student backbone, student head, teacher head); then, as
    # prepare_for_distributed_training does, the teacher takes the student's weights.
    t_backbone = build_vit()
    s_backbone = build_vit()
    s_head = build_head()
    t_head = build_head()
    student = torch.nn.ModuleDict({"backbone": s_backbone, "dino_head": s_head})
    teacher = torch.nn.ModuleDict({"backbone": t_backbone, "dino_head": t_head})
    for k in student.keys():
        teacher[k].load_state_dict(student[k].state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    student.train()
    teacher.eval()

    dino_loss = DINOLoss(R["n_prototypes"])
    ibot_loss = iBOTPatchLoss(R["n_prototypes"])
    koleo_loss = KoLeoLoss()

    groups = []
    for m in student.values():
        g = list(fuse_params_groups(get_params_groups_with_decay(
            model=m, lr_decay_rate=R["layerwise_decay"], patch_embed_lr_mult=R["patch_embed_lr_mult"])))
        for d in g:
            d["foreach"] = True
        groups += g
    opt = torch.optim.AdamW(groups, betas=R["betas"])

    E = R["epoch_len"]
    total = R["epochs"] * E
    lr_s = CosineScheduler(args.lr, R["min_lr"], total, warmup_iters=R["warmup_epochs"] * E, start_warmup_value=0)
    wd_s = CosineScheduler(R["wd"], args.wd_end, total)
    mom_s = CosineScheduler(R["mom"], R["mom_end"], total)
    tt_iters = R["warmup_teacher_temp_epochs"] * E
    tt_s = CosineScheduler(R["teacher_temp"], R["teacher_temp"], tt_iters, warmup_iters=tt_iters,
                           start_warmup_value=R["warmup_teacher_temp"])
    ll_s = CosineScheduler(args.lr, R["min_lr"], total, warmup_iters=R["warmup_epochs"] * E, start_warmup_value=0)
    ll_s.schedule[: R["freeze_last_layer_epochs"] * E] = 0

    gs, ps = R["global_crops_size"], R["patch_size"]
    n_tokens = (gs // ps) ** 2
    mask_gen = MaskingGenerator(input_size=(gs // ps, gs // ps), max_num_patches=0.5 * gs // ps * gs // ps)
    aug = DataAugmentationDINO(R["global_crops_scale"], R["local_crops_scale"], R["local_crops_number"],
                               global_crops_size=gs, local_crops_size=R["local_crops_size"])

    # data order: one shuffled pass over the 60000 images (800*32 = 25600 < 60000,
    # so no image is seen twice), permutation from a generator seeded with the seed.
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed)).tolist()
    B = R["batch"]
    n_g = 2
    n_l = R["local_crops_number"]
    n_local_terms = max(n_l * n_g, 1)
    n_global_terms = (n_g - 1) * n_g

    log = open(os.path.join(args.out, "train.jsonl"), "w")
    hist = []
    t0 = time.time()
    t_data = 0.0
    for it in range(args.iters):
        td = time.time()
        idx = [order[(it * B + j) % len(order)] for j in range(B)]
        samples = [(aug(to_pil_rgb(images[i])), ()) for i in idx]
        data = collate_data_and_cast(samples, mask_ratio_tuple=R["mask_ratio"], mask_probability=R["mask_prob"],
                                     dtype=torch.float32, n_tokens=n_tokens, mask_generator=mask_gen)
        t_data += time.time() - td

        lr, wd, mom, tt, ll = lr_s[it], wd_s[it], mom_s[it], tt_s[it], ll_s[it]
        for g in opt.param_groups:
            g["weight_decay"] = wd * g["wd_multiplier"]
            g["lr"] = (ll if g["is_last_layer"] else lr) * g["lr_multiplier"]
        opt.zero_grad(set_to_none=True)

        gcrops = data["collated_global_crops"]
        lcrops = data["collated_local_crops"]
        masks = data["collated_masks"]
        midx = data["mask_indices_list"]
        n_masked = midx.shape[0]
        upper = data["upperbound"]
        mweight = data["masks_weight"]

        # ---- teacher (no grad): cls of crop B matched to crop A, masked patch tokens
        with torch.no_grad():
            tout = teacher["backbone"](gcrops, is_training=True)
            tcls = tout["x_norm_clstoken"].chunk(n_g)
            tcls = torch.cat((tcls[1], tcls[0]))
            tpatch = tout["x_norm_patchtokens"]
            ncls = tcls.shape[0]
            buf = tpatch.new_zeros(upper + ncls, tpatch.shape[-1])
            buf[:ncls] = tcls
            buf[ncls:ncls + n_masked] = tpatch.flatten(0, 1).index_select(0, midx)
            th = teacher["dino_head"](buf)
            t_cls_h = th[:ncls]
            t_patch_h = th[ncls:ncls + n_masked]
            t_dino = dino_loss.softmax_center_teacher(t_cls_h, teacher_temp=tt).view(n_g, -1, t_cls_h.shape[-1])
            dino_loss.update_center(t_cls_h)
            t_patch_h = t_patch_h.unsqueeze(0)
            t_ibot = ibot_loss.softmax_center_teacher(t_patch_h[:, :n_masked], teacher_temp=tt).squeeze(0)
            ibot_loss.update_center(t_patch_h[:n_masked])

        # ---- student: global crops with masks, local crops without (two calls in
        # place of the official nested-tensor list call, which needs xformers)
        sg = student["backbone"](gcrops, masks=masks, is_training=True)
        sl = student["backbone"](lcrops, masks=None, is_training=True)
        s_lcls = sl["x_norm_clstoken"]
        s_gcls = sg["x_norm_clstoken"]
        sp = sg["x_norm_patchtokens"]
        s_buf = sp.new_zeros(upper, sp.shape[-1])
        s_buf[:n_masked] = sp.flatten(0, 1).index_select(0, midx)
        sizes = [s_lcls.shape[0], s_gcls.shape[0], upper]
        s_out = student["dino_head"](torch.cat([s_lcls, s_gcls, s_buf], 0)).split(sizes, 0)
        s_lcls_h, s_gcls_h, s_patch_h = s_out[0], s_out[1], s_out[2][:n_masked]

        denom = n_global_terms + n_local_terms
        l_local = dino_loss(student_output_list=s_lcls_h.chunk(n_l),
                            teacher_out_softmaxed_centered_list=t_dino) / denom
        l_global = dino_loss(student_output_list=[s_gcls_h],
                             teacher_out_softmaxed_centered_list=[t_dino.flatten(0, 1)]) * 2 / denom
        l_koleo = R["koleo_w"] * sum(koleo_loss(p) for p in s_gcls.chunk(2))
        l_ibot = ibot_loss.forward_masked(s_patch_h, t_ibot, student_masks_flat=masks, n_masked_patches=n_masked,
                                          masks_weight=mweight) * 2 * (1.0 / n_g)
        total_loss = R["dino_w"] * l_local + R["dino_w"] * l_global + l_koleo + R["ibot_w"] * l_ibot
        total_loss.backward()

        for m in student.values():
            torch.nn.utils.clip_grad_norm_(m.parameters(), R["clip_grad"])
        opt.step()

        with torch.no_grad():
            tp, sp_ = [], []
            for k in student.keys():
                tp += list(teacher[k].parameters())
                sp_ += list(student[k].parameters())
            torch._foreach_mul_(tp, mom)
            torch._foreach_add_(tp, sp_, alpha=1 - mom)

        # displayed values as in the official loss_dict
        rec = dict(dino_local_crops_loss=l_local.item(), dino_global_crops_loss=l_global.item(),
                   koleo_loss=(l_koleo / 2).item(), ibot_loss=(l_ibot / 2).item())
        if any(math.isnan(v) for v in rec.values()):
            raise SystemExit(f"NaN at iteration {it}")
        hist.append(rec)
        if (it + 1) % args.log_every == 0 or it + 1 == args.iters:
            w = hist[-args.log_every:]
            line = dict(it=it + 1, lr=float(lr), wd=float(wd), mom=float(mom), teacher_temp=float(tt),
                        last_layer_lr=float(ll), time_s=round(time.time() - t0, 2),
                        **rec, **{"mean_" + k: float(np.mean([r[k] for r in w])) for k in rec})
            log.write(json.dumps(line) + "\n")
            log.flush()
            print(json.dumps(line), flush=True)

    wall = time.time() - t0
    ckpt = {"teacher": {"backbone." + k: v.detach().clone() for k, v in teacher["backbone"].state_dict().items()}}
    torch.save(ckpt, os.path.join(args.out, "ckpt.pth"))
    last = hist[-50:]
    summary = dict(seed=args.seed, iters=args.iters, lr=args.lr, wd_end=args.wd_end, wall_s=round(wall, 1),
                   data_s=round(t_data, 1), s_per_it=round(wall / args.iters, 3),
                   last50_mean={k: float(np.mean([r[k] for r in last])) for k in hist[0]},
                   final=hist[-1])
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
