#!/usr/bin/python3
"""image_ref.py — reference outputs of PIL 9.x / torchvision 0.14 for the
image parity test (tests/t_image_parity.sh, checked by build/tests/test_image
--parity DIR).

Usage: /usr/bin/python3 tests/ref/image_ref.py OUTDIR
       /usr/bin/python3 tests/ref/image_ref.py --check-augment DIR IMAGE

Writes into OUTDIR the input images (real photographs from skimage and
matplotlib, plus JPEG/PNG/PNM variants re-encoded here: grayscale, CMYK,
progressive, 4:4:4, palette, RGBA) and, for each case, the reference output as
raw bytes (uint8 HWC RGB) or raw float32 (CHW), listed in OUTDIR/cases.txt:

    decode FILE REF W H                 PIL Image.open(FILE).convert("RGB")
    bad FILE                            PIL fails to load FILE
    eval FILE REF RESIZE CROP           Resize(RESIZE, BICUBIC), CenterCrop(CROP), ToTensor, Normalize
    bilin FILE REF W H                  Image.resize((W, H), BILINEAR)
    square FILE REF SIDE                Resize([SIDE, SIDE]) (BILINEAR), ToTensor, Normalize (SSCD)
    rcrop FILE REF X Y W H SIZE         F.resized_crop(img, Y, X, H, W, [SIZE, SIZE], BICUBIC)
    op FILE REF NAME PARAM              flip, brightness, contrast, saturation, hue, gray, blur, solarize

Nothing is committed: the test regenerates everything in its temp directory.
Exit status 77 when PIL/torchvision are missing (the test then skips)."""
import glob
import os
import sys

try:
    import numpy as np
    from PIL import Image
    import torch
    import torchvision.transforms as T
    import torchvision.transforms.functional as F
    from torchvision.transforms import InterpolationMode
except Exception as e:  # pragma: no cover
    print("skip: needs numpy, PIL, torch, torchvision: %s" % e)
    sys.exit(77)

torch.set_num_threads(1)


def check_augment(d, image):
    """Replays the crops written by test_image --augment-dump with the
    torchvision functional ops and compares the tensors: exact to 1e-6, except
    that a blurred crop may differ by one level (1/255/std) on at most 0.5% of
    its values (torch's float32 summation order; see test_image.c)."""
    src = Image.open(image).convert("RGB")
    norm = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    bad = 0
    lines = open(os.path.join(d, "params.txt")).read().split("\n")
    lines = [l for l in lines if l.strip()]
    for i, line in enumerate(lines):
        f = line.split()
        x, y, w, h, size, flip, jitter = (int(v) for v in f[:7])
        order = [int(v) for v in f[7:11]]
        b, c, s, hue = (float(v) for v in f[11:15])
        gray, blur, sigma, sol = int(f[15]), int(f[16]), float(f[17]), int(f[18])
        img = F.resized_crop(src, y, x, h, w, [size, size], InterpolationMode.BICUBIC)
        if flip:
            img = F.hflip(img)
        if jitter:
            for o in order:
                img = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue][o](img, [b, c, s, hue][o])
        if gray:
            img = F.rgb_to_grayscale(img, 3)
        if blur:
            img = F.gaussian_blur(img, [9, 9], [sigma, sigma])
        if sol:
            img = F.solarize(img, 128)
        ref = norm(F.to_tensor(img)).numpy().ravel()
        got = np.fromfile(os.path.join(d, "crop_%d.f32" % i), dtype="<f4")
        if got.shape != ref.shape:
            print("crop %d: %d values, want %d" % (i, got.size, ref.size))
            bad += 1
            continue
        diff = np.abs(got - ref)
        off = int((diff > 1e-6).sum())
        limit = 0.005 * ref.size if blur else 0
        if off > limit or diff.max() > 1.01 / 255 / 0.224:
            print("crop %d (%s): %d values differ, max %.3g" % (i, line, off, diff.max()))
            bad += 1
    print("%d crops replayed, %d differ" % (len(lines), bad))
    return 1 if bad or not lines else 0


if len(sys.argv) == 4 and sys.argv[1] == "--check-augment":
    sys.exit(check_augment(sys.argv[2], sys.argv[3]))
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
lines = []
SK = "/usr/lib/python3/dist-packages/skimage/data"
MPL = "/usr/share/matplotlib/mpl-data/sample_data"


def u8(img, name):
    a = np.asarray(img.convert("RGB"), dtype=np.uint8)
    a.tofile(os.path.join(out, name))
    return a.shape[1], a.shape[0]


def f32(t, name):
    t.numpy().astype(np.float32).tofile(os.path.join(out, name))


def copy_in(src, name):
    with open(src, "rb") as f:
        data = f.read()
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    return name


# ---- inputs ----
inputs = []
for p in sorted(glob.glob(SK + "/*.jpg")) + [MPL + "/grace_hopper.jpg"]:
    if os.path.exists(p):
        inputs.append(copy_in(p, os.path.basename(p)))
for n in ["astronaut.png", "camera.png", "logo.png", "foo3x5x4indexed.png", "green_palette.png",
          "horse.png", "chelsea.png", "text.png"]:
    if os.path.exists(os.path.join(SK, n)):
        inputs.append(copy_in(os.path.join(SK, n), n))

base = Image.open(os.path.join(SK, "chelsea.png")).convert("RGB")
base.convert("L").save(os.path.join(out, "gray.jpg"), quality=90)
base.convert("CMYK").save(os.path.join(out, "cmyk.jpg"), quality=90)
base.save(os.path.join(out, "prog.jpg"), quality=85, progressive=True)
base.save(os.path.join(out, "s444.jpg"), quality=95, subsampling=0)
base.save(os.path.join(out, "s422.jpg"), quality=75, subsampling=1)
base.crop((0, 0, 33, 17)).save(os.path.join(out, "odd.jpg"), quality=80)
base.save(os.path.join(out, "rgb.ppm"))
base.convert("L").save(os.path.join(out, "gray.pgm"))
base.convert("P", palette=Image.ADAPTIVE, colors=37).save(os.path.join(out, "pal.png"))
base.convert("LA").save(os.path.join(out, "la.png"))
base.save(os.path.join(out, "interlaced.png"))  # PIL writes non-interlaced; still a plain RGB case
Image.fromarray((np.arange(64 * 8) % 2).reshape(8, 64).astype(bool)).save(os.path.join(out, "bits.png"))


def png16(path, arr, ctype):
    """A 16-bit PNG (PIL cannot write 16-bit RGB): rows with filter 0."""
    import struct, zlib
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    with open(os.path.join(out, path), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


r16 = np.random.RandomState(0)
png16("rgb16.png", r16.randint(0, 65536, (31, 47, 3)), 2)    # PIL: "RGB;16B", the high byte
png16("rgba16.png", r16.randint(0, 65536, (31, 47, 4)), 6)
inputs += ["rgb16.png", "rgba16.png"]
inputs += ["gray.jpg", "cmyk.jpg", "prog.jpg", "s444.jpg", "s422.jpg", "odd.jpg", "rgb.ppm", "gray.pgm",
           "pal.png", "la.png", "interlaced.png", "bits.png"]

for n in inputs:
    try:
        im = Image.open(os.path.join(out, n))
        im.load()
    except Exception:
        lines.append("bad %s" % n)
        continue
    w, h = u8(im, n + ".ref")
    lines.append("decode %s %s.ref %d %d" % (n, n, w, h))

# Corrupt inputs PIL refuses: truncated JPEG and PNG.
with open(os.path.join(out, "chelsea.png"), "rb") as f:
    png = f.read()
with open(os.path.join(out, "trunc.png"), "wb") as f:
    f.write(png[: len(png) // 2])
with open(os.path.join(out, "s444.jpg"), "rb") as f:
    jpg = f.read()
with open(os.path.join(out, "trunc.jpg"), "wb") as f:
    f.write(jpg[: len(jpg) * 2 // 3])
for n in ["trunc.png", "trunc.jpg"]:
    try:
        Image.open(os.path.join(out, n)).convert("RGB")
        print("warning: PIL accepted %s" % n)
    except Exception:
        lines.append("bad %s" % n)

# ---- evaluation transform ----
def eval_case(n, resize, crop):
    img = Image.open(os.path.join(out, n)).convert("RGB")
    t = T.Compose([T.Resize(resize, interpolation=InterpolationMode.BICUBIC), T.CenterCrop(crop),
                   T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    ref = "%s.eval%d_%d" % (n, resize, crop)
    f32(t(img), ref)
    lines.append("eval %s %s %d %d" % (n, ref, resize, crop))


for n in ["hubble_deep_field.jpg", "retina.jpg", "rocket.jpg", "grace_hopper.jpg", "astronaut.png",
          "camera.png", "horse.png", "odd.jpg", "text.png"]:
    if n in inputs:
        eval_case(n, 256, 224)
small = Image.open(os.path.join(SK, "camera.png")).resize((28, 28), Image.BICUBIC)
small.save(os.path.join(out, "small28.png"))
inputs.append("small28.png")
eval_case("small28.png", 56, 56)
eval_case("small28.png", 32, 48)    # crop larger than the image: zero padding
eval_case("rocket.jpg", 257, 224)   # odd margins: Python round half to even
eval_case("chelsea.png", 97, 98)

# ---- bilinear resizes and SSCD's square transform ----
for n, w, h in [("chelsea.png", 320, 320), ("chelsea.png", 97, 51), ("chelsea.png", 900, 611),
                ("rocket.jpg", 288, 288), ("small28.png", 320, 320), ("odd.jpg", 5, 40),
                ("astronaut.png", 333, 200)]:
    if n in inputs:
        ref = "%s.bilin%d_%d" % (n, w, h)
        u8(Image.open(os.path.join(out, n)).convert("RGB").resize((w, h), Image.BILINEAR), ref)
        lines.append("bilin %s %s %d %d" % (n, ref, w, h))
sq = T.Compose([T.Resize([288, 288]), T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
for n in ["hubble_deep_field.jpg", "rocket.jpg", "grace_hopper.jpg", "small28.png", "odd.jpg"]:
    if n in inputs:
        ref = "%s.square288" % n
        f32(sq(Image.open(os.path.join(out, n)).convert("RGB")), ref)
        lines.append("square %s %s 288" % (n, ref))

# ---- resized crops (torchvision resized_crop: crop then resize) ----
src = "chelsea.png"
img = Image.open(os.path.join(out, src)).convert("RGB")
for (x, y, w, h, size) in [(10, 20, 300, 250, 224), (100, 50, 40, 37, 224), (0, 0, 451, 300, 96),
                           (5, 7, 200, 120, 98), (200, 100, 224, 96, 224), (3, 3, 17, 250, 96)]:
    ref = "rcrop_%d_%d_%d_%d_%d" % (x, y, w, h, size)
    u8(F.resized_crop(img, y, x, h, w, [size, size], InterpolationMode.BICUBIC), ref)
    lines.append("rcrop %s %s %d %d %d %d %d" % (src, ref, x, y, w, h, size))

# ---- photometric operations on a real image ----
ops = [("flip", 0, lambda im, p: F.hflip(im)),
       ("gray", 0, lambda im, p: F.rgb_to_grayscale(im, 3)),
       ("solarize", 128, lambda im, p: F.solarize(im, p))]
for f in [0.0, 0.6, 0.93, 1.0, 1.37, 2.5]:
    ops.append(("brightness", f, lambda im, p: F.adjust_brightness(im, p)))
    ops.append(("contrast", f, lambda im, p: F.adjust_contrast(im, p)))
for f in [0.0, 0.8, 1.1, 1.2, 3.0]:
    ops.append(("saturation", f, lambda im, p: F.adjust_saturation(im, p)))
for f in [-0.5, -0.1, -0.037, 0.0, 0.002, 0.05, 0.1, 0.5]:
    ops.append(("hue", f, lambda im, p: F.adjust_hue(im, p)))
for s in [0.1, 0.35, 1.0, 1.7, 2.0]:
    ops.append(("blur", s, lambda im, p: F.gaussian_blur(im, [9, 9], [p, p])))

# A second input with every hue: a 256x256 sweep of r,g at 8 blue levels.
r, g = np.meshgrid(np.arange(256), np.arange(256))
sweep = np.concatenate([np.stack([r, g, np.full_like(r, b)], -1) for b in (0, 37, 101, 128, 180, 255)], 0)
Image.fromarray(sweep.astype(np.uint8)).save(os.path.join(out, "sweep.png"))
for src in ["chelsea.png", "sweep.png"]:
    img = Image.open(os.path.join(out, src)).convert("RGB")
    for i, (name, p, fn) in enumerate(ops):
        if src == "sweep.png" and name not in ("hue", "gray", "saturation", "contrast"):
            continue
        ref = "%s.op%d_%s" % (src, i, name)
        u8(fn(img, p), ref)
        lines.append("op %s %s %s %r" % (src, ref, name, p))

with open(os.path.join(out, "cases.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
print("%d cases" % len(lines))
