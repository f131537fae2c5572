"""copydetect_ref.py — a copy-detection benchmark with known ground truth for
dv2-dedup, from photographs that ship with Debian (python3-skimage data) and
Fashion-MNIST (dataset-fashion-mnist).

    make DIR [--fashion N] [--faces N] [--distractors N] [--seed S]
        writes DIR/img/{orig,copy,dist}/... image files and DIR/truth.tsv
        (key<TAB>group<TAB>transform; group -1 for distractors).  The
        originals are 24 photographs, N faces of skimage's LFW subset
        (25x25, upscaled to 100x100) and N Fashion-MNIST train images.  Every
        original gets one copy per transform:
          jpeg     JPEG re-encode at quality 12
          resize   downscale to 50% (bicubic)
          crop     a random crop keeping 80-95% of each side
          flip     horizontal flip
          color    brightness x1.3, contrast x0.75
          overlay  a filled rectangle and a text line over ~6% of the image
          combo    crop 90%, resize 75%, JPEG quality 30
          blur     Gaussian blur, radius max(1, short side / 100)
        Distractors are other Fashion-MNIST images (the test split, the
        originals come from the train split).
    eval DIR LS.tsv GROUPS.tsv [LEAK.tsv THRESHOLD]
        LS.tsv is `dv2-pack --ls` of the packed dataset (id, key, ...),
        GROUPS.tsv is `dv2-dedup --groups`.  A predicted duplicate pair is two
        images in one component; a true pair is two images of one group.
        Prints precision and recall of pairs, recall per transform (pairs
        original-copy), the same among photographs and faces only
        (*_nofashion), and the pair counts, as key=value lines.  With
        LEAK.tsv (`dv2-dedup --groups` of the pool with --against the
        originals) also the leak recall (copies whose best similarity to an
        original is above THRESHOLD) and the leak false-positive rate
        (distractors above it).
"""
import gzip
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

SKIMAGE = "/usr/lib/python3/dist-packages/skimage/data"
FASHION = "/usr/share/datasets/fashion-mnist"
# distinct photographs (stereo pairs and grey/colour twins left out so the
# originals are not copies of each other)
PHOTOS = ["astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png",
          "coffee.png", "coins.png", "color.png", "grass.png", "gravel.png", "horse.png",
          "hubble_deep_field.jpg", "ihc.png", "logo.png", "microaneurysms.png", "moon.png",
          "motorcycle_left.png", "page.png", "phantom.png", "retina.jpg", "rocket.jpg", "text.png",
          "bw_text.png"]
TRANSFORMS = ["jpeg", "resize", "crop", "flip", "color", "overlay", "combo", "blur"]


def fashion(split, n, rng):
    name = "train-images-idx3-ubyte.gz" if split == "train" else "t10k-images-idx3-ubyte.gz"
    with gzip.open(os.path.join(FASHION, name)) as f:
        data = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    idx = rng.choice(len(data), n, replace=False)
    return [Image.fromarray(data[i]).convert("RGB") for i in idx]


def transform(img, t, rng):
    w, h = img.size
    if t == "jpeg":
        return img, dict(format="JPEG", quality=12)
    if t == "resize":
        return img.resize((max(8, w // 2), max(8, h // 2)), Image.BICUBIC), {}
    if t == "crop":
        fw, fh = rng.uniform(0.8, 0.95), rng.uniform(0.8, 0.95)
        cw, ch = int(w * fw), int(h * fh)
        x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
        return img.crop((x, y, x + cw, y + ch)), {}
    if t == "flip":
        return img.transpose(Image.FLIP_LEFT_RIGHT), {}
    if t == "color":
        return ImageEnhance.Contrast(ImageEnhance.Brightness(img).enhance(1.3)).enhance(0.75), {}
    if t == "overlay":
        out = img.copy()
        d = ImageDraw.Draw(out)
        rw, rh = max(2, w // 5), max(2, h // 6)
        x, y = rng.integers(0, w - rw + 1), rng.integers(0, h - rh + 1)
        d.rectangle([x, y, x + rw, y + rh], fill=(220, 30, 30))
        d.text((2, h - max(10, h // 10)), "copy", fill=(255, 255, 0))
        return out, {}
    if t == "blur":
        return img.filter(ImageFilter.GaussianBlur(max(1.0, min(w, h) / 100))), {}
    if t == "combo":
        cw, ch = int(w * 0.9), int(h * 0.9)
        out = img.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))
        out = out.resize((max(8, cw * 3 // 4), max(8, ch * 3 // 4)), Image.BICUBIC)
        return out, dict(format="JPEG", quality=30)
    raise ValueError(t)


def faces(n, rng):
    data = np.load(os.path.join(SKIMAGE, "lfw_subset.npy"))[:100]  # the first 100 are faces
    idx = rng.choice(len(data), n, replace=False)
    return [Image.fromarray((data[i] * 255).round().astype(np.uint8)).convert("RGB").resize((100, 100), Image.BICUBIC)
            for i in idx]


def make(out, n_fashion=60, n_faces=0, n_distract=1200, seed=0):
    rng = np.random.default_rng(seed)
    originals = []
    for p in PHOTOS:
        img = Image.open(os.path.join(SKIMAGE, p)).convert("RGB")
        if max(img.size) > 512:
            img.thumbnail((512, 512), Image.BICUBIC)
        originals.append(img)
    originals += faces(n_faces, rng) if n_faces else []
    originals += fashion("train", n_fashion, rng)
    distract = fashion("test", n_distract, rng)
    for sub in ("orig", "copy", "dist"):
        os.makedirs(os.path.join(out, "img", sub), exist_ok=True)
    source = ["photo"] * len(PHOTOS) + ["face"] * n_faces + ["fashion"] * n_fashion
    rows = []
    for g, img in enumerate(originals):
        key = "orig/%04d.png" % g
        img.save(os.path.join(out, "img", key))
        rows.append((key, g, "orig", source[g]))
        for t in TRANSFORMS:
            im, kw = transform(img, t, rng)
            ext = "jpg" if kw.get("format") == "JPEG" else "png"
            key = "copy/%04d_%s.%s" % (g, t, ext)
            im.save(os.path.join(out, "img", key), **kw)
            rows.append((key, g, t, source[g]))
    for i, img in enumerate(distract):
        key = "dist/%05d.png" % i
        img.save(os.path.join(out, "img", key))
        rows.append((key, -1, "distractor", "fashion"))
    with open(os.path.join(out, "truth.tsv"), "w") as f:
        for k, g, t, src in rows:
            f.write("%s\t%d\t%s\t%s\n" % (k, g, t, src))
    print("images=%d originals=%d copies=%d distractors=%d" %
          (len(rows), len(originals), len(originals) * len(TRANSFORMS), len(distract)))


def pairs_of(groups):
    """Set of unordered pairs of members sharing a group key."""
    by = {}
    for item, g in groups.items():
        by.setdefault(g, []).append(item)
    out = set()
    for members in by.values():
        members.sort()
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                out.add((members[i], members[j]))
    return out


def read_truth(d):
    truth, ttype, src = {}, {}, {}
    for line in open(os.path.join(d, "truth.tsv")):
        f = line.rstrip("\n").split("\t")
        truth[f[0]], ttype[f[0]] = int(f[1]), f[2]
        src[f[0]] = f[3] if len(f) > 3 else ("photo" if 0 <= int(f[1]) < len(PHOTOS) else "fashion")
    return truth, ttype, src


def read_groups(ls_path, groups_path, truth):
    """{key: (component, status, leak)} of a --groups file, keys through --ls."""
    key_of = {}
    for line in open(ls_path):
        f = line.rstrip("\n").split("\t")
        if not f[0].isdigit():
            continue
        key = f[1]
        # dv2-pack keys are paths relative to the input directory
        for k in (key, key.split("img/", 1)[-1]):
            if k in truth:
                key_of[int(f[0])] = k
    out = {}
    for line in open(groups_path):
        if line.startswith("#"):
            continue
        f = line.rstrip("\n").split("\t")
        out[key_of[int(f[0])]] = (int(f[1]), f[4] if len(f) > 4 else "", float(f[5]) if len(f) > 5 and f[5] != "-" else -2.0)
    return out


def evaluate(d, ls_path, groups_path, leak_path=None, thr=None):
    truth, ttype, src = read_truth(d)
    g = read_groups(ls_path, groups_path, truth)
    comp = {k: v[0] for k, v in g.items()}
    assert len(comp) == len(truth), "groups cover %d of %d images" % (len(comp), len(truth))
    true_pairs = pairs_of({k: g for k, g in truth.items() if g >= 0})
    pred_pairs = pairs_of(comp)
    tp = len(true_pairs & pred_pairs)
    prec = tp / len(pred_pairs) if pred_pairs else 1.0
    rec = tp / len(true_pairs) if true_pairs else 1.0
    print("true_pairs=%d predicted_pairs=%d correct=%d" % (len(true_pairs), len(pred_pairs), tp))
    print("precision=%.4f" % prec)
    print("recall=%.4f" % rec)
    for t in TRANSFORMS:
        ks = [k for k in truth if ttype[k] == t]
        hit = sum(comp[k] == comp["orig/%04d.png" % truth[k]] for k in ks)
        print("recall_%s=%.4f" % (t, hit / len(ks) if ks else 1.0))
    for name, s in (("photos", "photo"), ("faces", "face"), ("fashion", "fashion")):
        ks = [k for k in truth if truth[k] >= 0 and src[k] == s and ttype[k] != "orig"]
        hit = sum(comp[k] == comp["orig/%04d.png" % truth[k]] for k in ks)
        print("recall_%s=%.4f" % (name, hit / len(ks) if ks else 1.0))
    sizes = {}
    for c in comp.values():
        sizes[c] = sizes.get(c, 0) + 1
    print("largest_group=%d" % max(sizes.values()))
    # pairs among photographs and faces only (no Fashion-MNIST on either side)
    keep = [k for k in truth if src[k] != "fashion"]
    tp2 = pairs_of({k: g for k, g in truth.items() if g >= 0 and src[k] != "fashion"})
    pp2 = pairs_of({k: comp[k] for k in keep})
    print("precision_nofashion=%.4f" % (len(tp2 & pp2) / len(pp2) if pp2 else 1.0))
    print("recall_nofashion=%.4f" % (len(tp2 & pp2) / len(tp2) if tp2 else 1.0))
    if leak_path:
        lk = read_groups(ls_path, leak_path, truth)
        copies = [k for k in truth if truth[k] >= 0 and ttype[k] != "orig"]
        dist = [k for k in truth if truth[k] < 0]
        flagged = lambda k: lk[k][2] > float(thr)
        print("leak_recall=%.4f" % (sum(map(flagged, copies)) / len(copies)))
        print("leak_false=%.4f" % (sum(map(flagged, dist)) / max(1, len(dist))))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "make":
        kw = {}
        a = sys.argv[3:]
        for i in range(0, len(a), 2):
            kw[{"--fashion": "n_fashion", "--faces": "n_faces", "--distractors": "n_distract", "--seed": "seed"}[a[i]]] = int(a[i + 1])
        make(sys.argv[2], **kw)
    elif len(sys.argv) in (5, 7) and sys.argv[1] == "eval":
        evaluate(*sys.argv[2:])
    else:
        sys.exit(__doc__)
