"""hkmeans_ref.py — a numpy re-implementation of hierarchical k-means with
resampling and hierarchical balanced sampling, written from the description
in Vo et al. 2024 (arXiv 2405.15613, §3 and Algorithm 1), plus the data and
measures of tests/t_hkmeans.sh and docs/RESULTS.md.

    rings OUT.emb [--seed S] [--scale F]
        five 2-D rings of 20,000 / 200 / 1,000 / 500 / 8,000 points (the toy
        data of the ssl-data-curation README), divided by F (default 1);
        label = ring
    run IN.emb --clusters K1,K2 --steps S --sample-size N1,N2 --target T
        [--resample closest|random] [--seed S] [--multiplier M]
        the numpy method; prints the ids of the sample, one per line (an
        id up to M times)
    random IN.emb --target T [--seed S]
        a uniform random sample of T ids
    shares IN.emb IDS
        share of each label among the ids (an id listed twice counts
        twice): label=share lines, then
        entropy=H (bits) and n=count
    blobs OUT.emb [--n 9000] [--dim 160] [--seed S]
        n points around 300 centres of Zipf-like sizes that span a 16-d
        subspace of dim dimensions, with isotropic noise a tenth of the
        centres' spread: data with the low-dimensional structure of real
        embeddings, on which the seeding's projection bound prunes
    longtail IN.emb OUT.emb [--max 6000] [--min 60] [--seed S]
        a long-tailed subset of a labelled matrix: class c (in label order)
        keeps max * (min/max)^(c/9) rows, drawn at random
"""
import sys

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
import emb_util  # noqa: E402

RINGS = [20000, 200, 1000, 500, 8000]


def rings(out, seed=0, scale=1):
    rng = np.random.default_rng(seed)
    pts, lab = [], []
    for i, n in enumerate(RINGS):
        n //= scale
        a = rng.uniform(0, 2 * np.pi, n)
        r = 1.0 + rng.normal(0, 0.08, n)
        c = 5.0 * np.array([np.cos(2 * np.pi * i / 5), np.sin(2 * np.pi * i / 5)])
        pts.append(np.stack([c[0] + r * np.cos(a), c[1] + r * np.sin(a)], 1))
        lab.append(np.full(n, i))
    x = np.concatenate(pts).astype(np.float32)
    y = np.concatenate(lab)
    perm = rng.permutation(len(x))
    emb_util.write(out, np.arange(len(x)) + 1, x[perm], y[perm], features="five rings")


def blobs(out, n=9000, dim=160, seed=0):
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((dim, 16)))[0]
    centres = rng.standard_normal((300, 16)) @ basis.T
    w = 1.0 / np.arange(1, 301)
    lab = rng.choice(300, n, p=w / w.sum())
    x = centres[lab] + 0.1 * rng.standard_normal((n, dim)) * np.sqrt(16 / dim)
    emb_util.write(out, np.arange(n) + 1, x.astype(np.float32), lab, features="blobs in a 16-d subspace")


def sqdist(x, c):
    return (x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :]


def kmeans(x, k, rng, niter=50):
    """Lloyd's algorithm from k-means++ seeds; an empty cluster keeps its centroid."""
    x = x.astype(np.float64)
    c = np.empty((k, x.shape[1]))
    c[0] = x[rng.integers(len(x))]
    d = ((x - c[0]) ** 2).sum(1)
    for j in range(1, k):
        c[j] = x[rng.choice(len(x), p=d / d.sum())] if d.sum() > 0 else x[rng.integers(len(x))]
        d = np.minimum(d, ((x - c[j]) ** 2).sum(1))
    for _ in range(niter):
        a = sqdist(x, c).argmin(1)
        s = np.zeros_like(c)
        np.add.at(s, a, x)
        cnt = np.bincount(a, minlength=k)
        nz = cnt > 0
        c[nz] = s[nz] / cnt[nz, None]
    return c


def level(x, k, steps, sample, closest, rng):
    c = kmeans(x, k, rng)
    for _ in range(steps):
        d = sqdist(x.astype(np.float64), c)
        a = d.argmin(1)
        dist = d[np.arange(len(x)), a]
        pick = []
        for j in range(k):
            m = np.nonzero(a == j)[0]
            if closest:
                m = m[np.argsort(dist[m], kind="stable")]
            else:
                m = rng.permutation(m)
            pick.append(m[:sample])
        sub = x[np.concatenate(pick)]
        if len(sub) < k:
            break
        c = kmeans(sub, k, rng)
    d = sqdist(x.astype(np.float64), c)
    a = d.argmin(1)
    return c, a, d[np.arange(len(x)), a]


def split(budget, sizes, rng):
    """The largest cap x with sum(min(x, sizes)) <= budget; the remainder one
    each to random children above the cap."""
    lo, hi = 0, int(sizes.max()) if len(sizes) else 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if np.minimum(sizes, mid).sum() <= budget:
            lo = mid
        else:
            hi = mid - 1
    alloc = np.minimum(sizes, lo)
    rem = budget - alloc.sum()
    above = np.nonzero(sizes > lo)[0]
    if rem > 0:
        alloc[rng.choice(above, rem, replace=False)] += 1
    return alloc


def run(x, ids, ks, steps, samples, target, closest, seed, leaf_closest=False, mult=1):
    """mult: the times one point may be taken (every capacity is a size
    times it; a leaf given b points takes all its points b // size times,
    then b % size of them)."""
    rng = np.random.default_rng(seed)
    levels = []
    inp = x
    for k, s, n in zip(ks, steps, samples):
        c, a, d = level(inp, k, s, n, closest, rng)
        levels.append((a, d))
        inp = c.astype(np.float32)
    sizes = [np.bincount(levels[0][0], minlength=ks[0])]
    for l in range(1, len(ks)):
        sizes.append(np.bincount(levels[l][0], weights=sizes[l - 1], minlength=ks[l]).astype(np.int64))
    out = []

    def node(l, j, b):
        a, d = levels[l]
        mem = np.nonzero(a == j)[0]
        if b <= 0 or len(mem) == 0:
            return
        if l == 0:
            b = min(b, len(mem) * mult)
            while mult > 1 and b >= len(mem):
                out.extend(ids[mem])
                b -= len(mem)
            mem = mem[np.argsort(d[mem], kind="stable")] if leaf_closest else rng.permutation(mem)
            out.extend(ids[mem[:b]])
            return
        for m, bb in zip(mem, split(b, sizes[l - 1][mem] * mult, rng)):
            node(l - 1, m, bb)

    top = len(ks) - 1
    for j, b in enumerate(split(min(target, len(x) * mult), sizes[top] * mult, rng)):
        node(top, j, b)
    return np.sort(np.array(out, dtype=np.uint64))


def opts(a):
    kw = {}
    for i in range(0, len(a), 2):
        kw[a[i].lstrip("-")] = a[i + 1]
    return kw


def ints(s, n):
    v = [int(t) for t in s.split(",")]
    return v * n if len(v) == 1 else v


def shares(path, ids_path):
    ids, lab, _ = emb_util.read(path)
    sel = {}
    for t in open(ids_path).read().split():  # an id listed twice counts twice
        sel[int(t)] = sel.get(int(t), 0) + 1
    w = np.array([sel.get(int(i), 0) for i in ids], dtype=np.int64)
    cnt = np.bincount(lab, weights=w, minlength=lab.max() + 1).astype(np.int64)
    p = cnt / max(1, cnt.sum())
    for c, v in enumerate(p):
        print("%d=%.4f" % (c, v))
    nz = p[p > 0]
    print("entropy=%.4f" % float(-(nz * np.log2(nz)).sum()))
    print("n=%d" % cnt.sum())


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "rings":
        kw = opts(a[1:])
        rings(a[0], int(kw.get("seed", 0)), int(kw.get("scale", 1)))
    elif cmd == "blobs":
        kw = opts(a[1:])
        blobs(a[0], int(kw.get("n", 9000)), int(kw.get("dim", 160)), int(kw.get("seed", 0)))
    elif cmd == "run":
        kw = opts(a[1:])
        ids, _, x = emb_util.read(a[0])
        ks = ints(kw["clusters"], 1)
        out = run(x, ids, ks, ints(kw.get("steps", "10"), len(ks)), ints(kw.get("sample-size", "10"), len(ks)),
                  int(kw["target"]), kw.get("resample", "closest") == "closest", int(kw.get("seed", 0)),
                  mult=int(kw.get("multiplier", 1)))
        sys.stdout.write("".join("%d\n" % i for i in out))
    elif cmd == "random":
        kw = opts(a[1:])
        ids, _, _ = emb_util.read(a[0])
        rng = np.random.default_rng(int(kw.get("seed", 0)))
        out = np.sort(rng.choice(ids, int(kw["target"]), replace=False))
        sys.stdout.write("".join("%d\n" % i for i in out))
    elif cmd == "shares":
        shares(a[0], a[1])
    elif cmd == "longtail":
        kw = opts(a[2:])
        ids, lab, x = emb_util.read(a[0])
        hi, lo = int(kw.get("max", 6000)), int(kw.get("min", 60))
        rng = np.random.default_rng(int(kw.get("seed", 0)))
        keep = []
        for c in range(lab.max() + 1):
            n = int(round(hi * (lo / hi) ** (c / 9)))
            keep.append(rng.choice(np.nonzero(lab == c)[0], n, replace=False))
        keep = np.sort(np.concatenate(keep))
        emb_util.write(a[1], ids[keep], x[keep], lab[keep], features="long-tailed subset")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
