"""Writes N real-photograph JPEGs (jpg/00000.jpg ...) for the benchmarks:
random crops (60-100% of the side) of the photographs that Debian packages
ship (skimage, sklearn, matplotlib sample data), scaled so the longer side is
about 500 px, quality 90, seeded so every run gets the same files.
Usage: make_jpegs.py N [OUTDIR]"""
import glob, os, random, sys
from PIL import Image

n = int(sys.argv[1])
out = sys.argv[2] if len(sys.argv) > 2 else "jpg"
os.makedirs(out, exist_ok=True)
srcs = sorted(glob.glob("/usr/lib/python3/dist-packages/skimage/data/*.jpg") +
              glob.glob("/usr/lib/python3/dist-packages/skimage/data/*.png") +
              glob.glob("/usr/lib/python3/dist-packages/sklearn/datasets/images/*.jpg") +
              glob.glob("/usr/share/matplotlib/mpl-data/sample_data/*.jpg"))
ims = []
for p in srcs:
    try:
        im = Image.open(p).convert("RGB")
    except Exception:
        continue
    if min(im.size) >= 256:
        ims.append(im)
if not ims:
    sys.exit("no source photographs found")
rng = random.Random(0)
for i in range(n):
    im = ims[i % len(ims)]
    w, h = im.size
    s = rng.uniform(0.6, 1.0)
    cw, ch = int(w * s), int(h * s)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    c = im.crop((x, y, x + cw, y + ch))
    f = 500 / max(c.size)
    c = c.resize((max(256, int(c.size[0] * f)), max(256, int(c.size[1] * f))), Image.BICUBIC)
    c.save(os.path.join(out, "%05d.jpg" % i), quality=90)
