#!/usr/bin/python3
"""embed_torch.py — the PyTorch baseline of bench/b_embed.sh: the standard
evaluation pipeline over a directory of JPEG files, PIL decode +
torchvision Resize(256, BICUBIC) / CenterCrop(224) / ToTensor / Normalize in
a DataLoader worker, batched, then a ViT-S/14 forward in float32 with the
model core's reference implementation (tests/ref/dinov2_ref.py), CLS tokens
collected.  Prints "BASE <seconds>" for the whole pass (model built before
the clock starts).

Usage: embed_torch.py DIR [BATCH] [WORKERS] [THREADS]"""
import os
import sys
import time

import torch
from PIL import Image
import torchvision.transforms as T
from torchvision.transforms import InterpolationMode

sys.path.insert(0, os.path.join(os.environ.get("DV2_ROOT", "."), "tests", "ref"))
import dinov2_ref as ref  # noqa: E402

torch.set_default_dtype(torch.float32)
d = sys.argv[1]
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 32
workers = int(sys.argv[3]) if len(sys.argv) > 3 else 1
torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else os.cpu_count())

tf = T.Compose([T.Resize(256, interpolation=InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
                T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
files = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".jpg"))


class Files(torch.utils.data.Dataset):
    def __len__(self):
        return len(files)

    def __getitem__(self, i):
        with open(files[i], "rb") as f:
            return tf(Image.open(f).convert("RGB"))


c = {"dim": 384, "depth": 12, "heads": 6, "patch": 14, "img": 224, "ffn": "mlp", "reg": 0,
     "offset": 0.1, "antialias": 0}
gen = torch.Generator().manual_seed(0)
P = {k: v.detach().float() for k, v in ref.random_params(ref.backbone_shapes(c), gen).items()}
dl = torch.utils.data.DataLoader(Files(), batch_size=batch, num_workers=workers)
t0 = time.time()
out = []
with torch.inference_mode():
    for x in dl:
        normed, _, _ = ref.backbone(P, c, [x], [None])
        out.append(normed[0][:, 0])
n = sum(o.shape[0] for o in out)
dt = time.time() - t0
assert n == len(files)
print("BASE %.3f" % dt)
