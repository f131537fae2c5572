"""copydetect_sweep.py — grouping and verification rules tried on top of the
copy descriptor (dv2-embed --copy), on the benchmark of copydetect_ref.py,
to see whether anything but the descriptor limits pair precision there
(docs/RESULTS.md, "Copy-detection benchmark").

    /usr/bin/python3 tests/ref/copydetect_sweep.py DIR LS.tsv COPY.emb

DIR is a `copydetect_ref.py make` directory, LS.tsv `dv2-pack --ls` of its
packed images, COPY.emb their `dv2-embed --copy` matrix.  Prints pair
precision / recall and per-transform recall (copy in the original's group)
for:
  single   single-link components of cosine > t (what dv2-dedup does)
  margin   an edge only where the cosine exceeds the r-th neighbour's
           cosine of both ends by m (a local-density threshold)
  star     greedy star groups: the image with most edges claims its direct
           neighbours, no chaining
  verify   geometric verification of each image's 8 nearest neighbours:
           the best cosine of the 16x16 low-pass DCT (DC dropped) of any
           crop of one 32x32 grey thumbnail (each side scaled 0.80-1.00,
           1-pixel offsets: 361 regions) against the other thumbnail or its
           mirror image, both directions; then single-link components
"""
import os
import sys
from collections import Counter

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emb_util  # noqa: E402

TRANSFORMS = ["jpeg", "resize", "crop", "flip", "color", "overlay", "combo", "blur"]
N, KD = 32, 16


def load(d, ls, emb):
    ids, _, x = emb_util.read(emb)
    key = {}
    for line in open(ls):
        f = line.rstrip("\n").split("\t")
        if f[0].isdigit():
            key[int(f[0])] = f[1].split("img/", 1)[-1]
    truth = {}
    for line in open(os.path.join(d, "truth.tsv")):
        f = line.rstrip("\n").split("\t")
        truth[f[0]] = (int(f[1]), f[2], f[3])
    keys = [key[int(i)] for i in ids]
    g = np.array([truth[k][0] for k in keys])
    t = np.array([truth[k][1] for k in keys])
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x, g, t, keys


def report(name, comp, g, t):
    cc = Counter(comp)
    pred = sum(v * (v - 1) // 2 for v in cc.values())
    true = sum(v * (v - 1) // 2 for v in Counter(g[g >= 0]).values())
    tp = sum(v * (v - 1) // 2 for v in Counter((c, x) for c, x in zip(comp, g) if x >= 0).values())
    orig = {x: i for i, x in enumerate(g) if t[i] == "orig"}
    rec = [np.mean([comp[i] == comp[orig[g[i]]] for i in np.nonzero(t == tt)[0]]) for tt in TRANSFORMS]
    print("%-22s P %.4f R %.4f largest %5d | %s" % (name, tp / max(pred, 1), tp / true, max(cc.values()),
          " ".join("%s %.2f" % kv for kv in zip(TRANSFORMS, rec))))


def components(edges, n):
    par = np.arange(n)

    def find(a):
        while par[a] != a:
            par[a] = par[par[a]]
            a = par[a]
        return a
    for a, b in zip(*np.nonzero(np.triu(edges, 1))):
        ra, rb = find(a), find(b)
        if ra != rb:
            par[ra] = rb
    return np.array([find(a) for a in range(n)])


def star(edges):
    n = len(edges)
    comp = -np.ones(n, int)
    for i in np.argsort(-edges.sum(1), kind="stable"):
        if comp[i] < 0:
            comp[i] = i
            comp[edges[i] & (comp < 0)] = i
    return comp


def thumbs(d, keys):
    return np.stack([np.asarray(Image.open(os.path.join(d, "img", k)).convert("L").resize((N, N), Image.BOX),
                                dtype=np.float64) for k in keys])


def regions():
    out = []
    for f in (1.0, 0.95, 0.9, 0.85, 0.8):
        span = (1 - f) * N
        for off in np.linspace(0, span, int(np.floor(span)) + 1):
            r = np.zeros((N, N))
            for o in range(N):
                x = min(max(off + (o + 0.5) * f - 0.5, 0), N - 1)
                i = int(np.floor(x))
                w = x - i
                r[o, i] += 1 - w
                r[o, min(i + 1, N - 1)] += w
            out.append(r)
    return np.stack(out)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    d, ls, emb = sys.argv[1:]
    x, g, t, keys = load(d, ls, emb)
    n = len(g)
    s = x @ x.T
    np.fill_diagonal(s, -1)
    for thr in (0.85, 0.95, 0.97):
        report("single t=%.2f" % thr, components(s > thr, n), g, t)
    ranked = -np.sort(-s, axis=1)
    for r in (10, 16):
        bg = ranked[:, r - 1]
        for m in (0.0, 0.03, 0.05):
            report("margin r=%d m=%.2f" % (r, m), components(s - np.maximum(bg[:, None], bg[None, :]) > m, n), g, t)
    for thr in (0.85, 0.93, 0.97):
        report("star t=%.2f" % thr, star(s > thr), g, t)
    # geometric verification of the 8 nearest neighbours
    th = thumbs(d, keys)
    rs = regions()
    nr = len(rs)
    rall = rs.reshape(nr * N, N)
    dct = np.array([[(np.sqrt(2.0 / N) if k else np.sqrt(1.0 / N)) * np.cos(np.pi * (m + 0.5) * k / N)
                     for m in range(N)] for k in range(KD)])

    def lowpass(a):
        c = dct @ a @ dct.T
        c[..., 0, 0] = 0
        return c / (np.sqrt((c * c).sum(axis=(-2, -1), keepdims=True)) + 1e-9)
    lp = lowpass(th)
    lpf = lowpass(th[:, :, ::-1])

    def one_way(a, b):
        reg = lowpass((rall @ th[a] @ rall.T).reshape(nr, N, nr, N).transpose(0, 2, 1, 3))
        return max((reg * lp[b]).sum(axis=(2, 3)).max(), (reg * lpf[b]).sum(axis=(2, 3)).max())
    v = np.full((n, n), -1.0)
    for i in range(n):
        for j in np.argsort(-s[i])[:8]:
            if s[i, j] >= 0.3 and v[i, j] < -0.5:
                v[i, j] = v[j, i] = max(one_way(i, j), one_way(j, i))
    for thr in (0.85, 0.9, 0.96):
        report("verify t=%.2f" % thr, components(v > thr, n), g, t)
    iu = np.triu_indices(n, 1)
    neg = v[iu][(g[iu[0]] != g[iu[1]]) | (g[iu[0]] < 0)]
    neg = neg[neg > -1]
    print("verify: %d candidate pairs of different images, %d above 0.97, %d above 0.98" %
          (len(neg), (neg > 0.97).sum(), (neg > 0.98).sum()))


if __name__ == "__main__":
    main()
