"""scale_data.py — synthetic pools for the scaling runs (docs/SCALING.md).

    python3 scale_data.py dedup DIR [--n 1000000] [--dim 256] [--copies N/20]
                                    [--subsets 100000,200000] [--seed 0]
    python3 scale_data.py hkmeans DIR [--n 1000000] [--dim 384] [--modes 20000]
                                      [--subsets 100000] [--seed 1]

dedup: L2-normalised copy-descriptor-like vectors.  --modes (20,000) unit
centres; a background row is its centre plus isotropic noise (expected
cosine 0.49 to the centre, about 0.24 between two rows of one mode, so no
two background rows come near the 0.6 threshold).  --copies of the rows are
planted near-duplicates: a copy of original o is cos·x_o + sin·u with u a
random unit vector orthogonal to x_o and cos uniform in [0.9, 0.99], so its
cosine to the original is exactly that.  An original may get more than one
copy (they are drawn with replacement), which makes groups of 3 or more.
The rows are shuffled; DIR/dedup_1000000.emb (float32, ids = row + 1,
label = -1) and DIR/dedup_pairs.npy (copy row, original row, cosine) are
written, and the first N rows again as DIR/dedup_N.emb for every --subsets
N (planted pairs with both rows below N are the subset's).

hkmeans: a long-tailed mixture, --modes centres with Zipf(1) sizes, each row
centre + noise (cosine about 0.6 to its centre), L2-normalised, float16,
DIR/hkm_N.emb; the first N rows again for every --subsets N.
"""
import argparse
import os
import struct
import sys

import numpy as np


def header(n, d, code, model, features):
    h = bytearray(4096)
    h[0:8] = b"DV2MATRX"
    vb = 4 if code == 1 else 2
    struct.pack_into("<IIIIIIQ", h, 8, 1, 4096, code, d, 12 + vb * d, 0, n)
    h[256:256 + len(model)] = model.encode()
    h[512:512 + len(features)] = features.encode()
    return bytes(h)


def write_matrix(path, x, code, model, features, chunk=100000):
    """x: (n, d) float32; code 1 = float32, 2 = float16.  Written to a
    temporary name and renamed, ids 1..n, labels -1."""
    n, d = x.shape
    vt = "<f4" if code == 1 else "<f2"
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(header(n, d, code, model, features))
        for s in range(0, n, chunk):
            m = min(chunk, n - s)
            rec = np.zeros(m, [("id", "<u8"), ("label", "<i4"), ("vec", vt, (d,))])
            rec["id"] = np.arange(s + 1, s + m + 1)
            rec["label"] = -1
            rec["vec"] = x[s:s + m]
            f.write(rec.tobytes())
    os.replace(tmp, path)


def unit(x):
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def dedup(a):
    rng = np.random.default_rng(a.seed)
    n, d, nc = a.n, a.dim, a.copies
    centres = unit(rng.standard_normal((a.modes, d), dtype=np.float32))
    x = np.empty((n, d), np.float32)
    sigma = 1.8  # noise norm relative to the unit centre: cos to centre 1/sqrt(1+sigma^2)
    for s in range(0, n, 100000):
        m = min(100000, n - s)
        x[s:s + m] = centres[rng.integers(0, a.modes, m)]
        x[s:s + m] += sigma / np.sqrt(d) * rng.standard_normal((m, d), dtype=np.float32)
        unit(x[s:s + m])
    # rows 0 .. n-nc-1 are the originals (and the unrelated rows), the last nc the copies
    orig = rng.integers(0, n - nc, nc)
    cos = rng.uniform(0.9, 0.99, nc).astype(np.float32)
    for s in range(0, nc, 100000):
        m = min(100000, nc - s)
        xo = x[orig[s:s + m]]
        u = rng.standard_normal((m, d), dtype=np.float32)
        u -= np.sum(u * xo, axis=1, keepdims=True) * xo
        unit(u)
        c = cos[s:s + m, None]
        x[n - nc + s:n - nc + s + m] = unit(c * xo + np.sqrt(1 - c * c) * u)
    perm = rng.permutation(n)  # new row r holds old row perm[r]
    inv = np.empty(n, np.int64)
    inv[perm] = np.arange(n)
    x = x[perm]
    pairs = np.stack([inv[np.arange(n - nc, n)], inv[orig], np.round(cos * 1e6)], 1).astype(np.int64)
    np.save(os.path.join(a.dir, "dedup_pairs.npy"), pairs)
    feat = "synthetic copy descriptors, %d planted copies" % nc
    write_matrix(os.path.join(a.dir, "dedup_%d.emb" % n), x, 1, "scale_data.py dedup", feat)
    for m in a.subsets:
        write_matrix(os.path.join(a.dir, "dedup_%d.emb" % m), x[:m], 1, "scale_data.py dedup", feat)
    inside = {m: int(np.sum((pairs[:, 0] < m) & (pairs[:, 1] < m))) for m in a.subsets}
    print("dedup: %d x %d float32, %d planted copies of %d originals; pairs inside subsets: %s"
          % (n, d, nc, len(np.unique(orig)), inside), file=sys.stderr)


def hkmeans(a):
    rng = np.random.default_rng(a.seed)
    n, d = a.n, a.dim
    centres = unit(rng.standard_normal((a.modes, d), dtype=np.float32))
    w = 1.0 / np.arange(1, a.modes + 1)
    lab = rng.choice(a.modes, n, p=w / w.sum())
    x = np.empty((n, d), np.float32)
    for s in range(0, n, 100000):
        m = min(100000, n - s)
        x[s:s + m] = centres[lab[s:s + m]]
        x[s:s + m] += 1.3 / np.sqrt(d) * rng.standard_normal((m, d), dtype=np.float32)
        unit(x[s:s + m])
    write_matrix(os.path.join(a.dir, "hkm_%d.emb" % n), x, 2, "scale_data.py hkmeans", "synthetic long tail")
    for m in a.subsets:
        write_matrix(os.path.join(a.dir, "hkm_%d.emb" % m), x[:m], 2, "scale_data.py hkmeans", "synthetic long tail")
    sizes = np.bincount(lab, minlength=a.modes)
    print("hkmeans: %d x %d float16, %d modes, largest %d, median %d, %d modes empty"
          % (n, d, a.modes, sizes.max(), int(np.median(sizes)), int(np.sum(sizes == 0))), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["dedup", "hkmeans"])
    ap.add_argument("dir")
    ap.add_argument("--n", type=int, default=1000000)
    ap.add_argument("--dim", type=int)
    ap.add_argument("--copies", type=int)
    ap.add_argument("--modes", type=int, default=20000)
    ap.add_argument("--subsets", default=None)
    ap.add_argument("--seed", type=int)
    a = ap.parse_args()
    if a.copies is None:
        a.copies = a.n // 20
    if a.dim is None:
        a.dim = 256 if a.what == "dedup" else 384
    if a.seed is None:
        a.seed = 0 if a.what == "dedup" else 1
    if a.subsets is None:
        a.subsets = "100000,200000" if a.what == "dedup" else "100000"
    a.subsets = [int(s) for s in a.subsets.split(",") if s and int(s) < a.n]
    os.makedirs(a.dir, exist_ok=True)
    (dedup if a.what == "dedup" else hkmeans)(a)


if __name__ == "__main__":
    sys.exit(main())
