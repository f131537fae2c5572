#!/usr/bin/python3
"""scripts/demo-plant.py — the split and the planted copies of scripts/demo.

Reads the Fashion-MNIST IDX files and writes into OUT (a directory):

  seed.keys      keys of a class-balanced curated seed set drawn from train
  pool.keys      keys of the train images of the uncurated pool (the rest of
                 train, or a random part of it when --pool is given)
  img/           the planted images: near-copies of pool images (copy-*) and
                 of test images (leak-*), PNG or JPEG
  labels.tsv     key <TAB> label of every planted image (its original's)
  truth.tsv      copy key <TAB> original key <TAB> kind

Keys are those dv2-pack gives: train-images-idx3-ubyte/NNNNNN.png for an
IDX image, the file name for a planted one (packed from img/).  The kinds:
jpeg (re-encoded at quality 8-20), resize (to 14-56 px), crop (80-95 % of
each side), flip (horizontal), color (grey to RGB with per-channel gains
and an offset); a leak is one of these applied to a test image.  Everything
follows from --seed: the same arguments write the same bytes.

With --sample N it only draws N lines at random (from --seed) out of the
lines of standard input and prints them in input order: the random
selection the demo compares with the curated one.
"""
import argparse
import gzip
import io
import os
import random
import struct
import sys

from PIL import Image, ImageOps

KINDS = ("jpeg", "resize", "crop", "flip", "color")


def read_idx(path, magic):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    if len(data) < 8 or struct.unpack(">I", data[:4])[0] != magic:
        sys.exit(f"demo-plant.py: {path}: not an IDX file of the expected kind")
    n = struct.unpack(">I", data[4:8])[0]
    if magic == 2049:
        return list(data[8:8 + n])
    rows, cols = struct.unpack(">II", data[8:16])
    size = rows * cols
    if len(data) < 16 + n * size:
        sys.exit(f"demo-plant.py: {path}: truncated ({n} images announced)")
    return [Image.frombytes("L", (cols, rows), data[16 + i * size:16 + (i + 1) * size]) for i in range(n)]


def transform(im, kind, rng):
    """Return (image, extension) of one copy of im."""
    if kind == "jpeg":
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=rng.randint(8, 20))
        return buf.getvalue(), "jpg"
    if kind == "resize":
        side = rng.choice([14, 16, 18, 20, 40, 48, 56])
        out = im.resize((side, side), Image.BILINEAR)
    elif kind == "crop":
        w, h = im.size
        cw, ch = round(w * rng.uniform(0.80, 0.95)), round(h * rng.uniform(0.80, 0.95))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        out = im.crop((x, y, x + cw, y + ch))
    elif kind == "flip":
        out = ImageOps.mirror(im)
    elif kind == "color":
        gains = [rng.uniform(0.6, 1.3) for _ in range(3)]
        offset = rng.randint(-30, 30)
        bands = [b.point(lambda v, g=g: max(0, min(255, round(v * g + offset))))
                 for b, g in zip(Image.merge("RGB", (im, im, im)).split(), gains)]
        out = Image.merge("RGB", bands)
    else:
        raise ValueError(kind)
    buf = io.BytesIO()
    out.save(buf, "PNG")
    return buf.getvalue(), "png"


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fmnist", help="directory of the IDX files")
    ap.add_argument("--out", help="output directory (created)")
    ap.add_argument("--sample", type=int, help="print N random lines of stdin instead")
    ap.add_argument("--seed-set", type=int, default=1000, help="curated seed images (a multiple of 10)")
    ap.add_argument("--pool", type=int, default=0, help="train images in the pool (0: all the rest)")
    ap.add_argument("--copies", type=int, default=1000, help="near-copies of pool images")
    ap.add_argument("--leaks", type=int, default=500, help="near-copies of test images")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.sample is not None:
        lines = sys.stdin.readlines()
        if not 0 <= a.sample <= len(lines):
            sys.exit(f"demo-plant.py: --sample {a.sample}: standard input has {len(lines)} lines")
        pick = sorted(random.Random(a.seed).sample(range(len(lines)), a.sample))
        sys.stdout.write("".join(lines[i] for i in pick))
        return
    if not a.fmnist or not a.out:
        ap.error("--fmnist and --out are required (or --sample)")

    tr_img = read_idx(os.path.join(a.fmnist, "train-images-idx3-ubyte.gz"), 2051)
    tr_lab = read_idx(os.path.join(a.fmnist, "train-labels-idx1-ubyte.gz"), 2049)
    te_img = read_idx(os.path.join(a.fmnist, "t10k-images-idx3-ubyte.gz"), 2051)
    te_lab = read_idx(os.path.join(a.fmnist, "t10k-labels-idx1-ubyte.gz"), 2049)
    if len(tr_img) != len(tr_lab) or len(te_img) != len(te_lab):
        sys.exit("demo-plant.py: image and label counts differ")
    rng = random.Random(a.seed)

    per_class = a.seed_set // 10
    by_class = [[i for i, l in enumerate(tr_lab) if l == c] for c in range(10)]
    seed = sorted(i for c in range(10) for i in rng.sample(by_class[c], per_class))
    taken = set(seed)
    rest = [i for i in range(len(tr_img)) if i not in taken]
    pool = sorted(rng.sample(rest, a.pool)) if 0 < a.pool < len(rest) else rest
    if a.copies > len(pool) or a.leaks > len(te_img):
        sys.exit("demo-plant.py: more copies than images to copy")

    os.makedirs(os.path.join(a.out, "img"), exist_ok=True)
    tkey = "train-images-idx3-ubyte/%06d.png"
    ekey = "t10k-images-idx3-ubyte/%06d.png"
    truth, labels = [], []
    for prefix, src, lab, key, n in (("copy", tr_img, tr_lab, tkey, a.copies),
                                     ("leak", te_img, te_lab, ekey, a.leaks)):
        originals = rng.sample(pool if prefix == "copy" else range(len(te_img)), n)
        for j, o in enumerate(originals):
            kind = KINDS[j % len(KINDS)]
            data, ext = transform(src[o], kind, rng)
            name = "%s-%06d-%s.%s" % (prefix, j, kind, ext)
            write_atomic(os.path.join(a.out, "img", name), data)
            truth.append("%s\t%s\t%s\n" % (name, key % o, kind if prefix == "copy" else "leak-" + kind))
            labels.append("%s\t%d\n" % (name, lab[o]))

    for name, lines in (("seed.keys", [tkey % i + "\n" for i in seed]),
                        ("pool.keys", [tkey % i + "\n" for i in pool]),
                        ("labels.tsv", labels), ("truth.tsv", truth)):
        write_atomic(os.path.join(a.out, name), "".join(lines).encode())


if __name__ == "__main__":
    main()
