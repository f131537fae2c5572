"""dedup_ref.py — plain numpy references for dv2-dedup and dv2-retrieve,
written from the paper's description (not from our C code), used by the
tests to check the programs' outputs.

    dedup POOL.emb [--against EVAL.emb] [-k 64] [-t 0.6] [--at 0.45]
          [--margin M [--rank R]]                                       -> kept ids
        --margin: an edge i-j also needs a similarity above M plus the
        larger of the similarities of i's and of j's R-th nearest
        neighbour (R = 10), and a leak a best similarity to EVAL above M
        plus its own R-th neighbour's
    sample QUERIES.emb POOL.emb -n N [--repeats]                        -> pool id, query id, sim
    kmeans POOL.emb K NITER SEED                                        -> FAISS Kmeans objective
"""
import sys

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import emb_util  # noqa: E402


def unit(x):
    x = x.astype(np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(n > 0, x / np.where(n > 0, n, 1), 0)


def dedup(x, k=64, thr=0.6, ev=None, athr=0.45, margin=None, rank=10):
    n = len(x)
    xn = unit(x)
    s = xn @ xn.T
    np.fill_diagonal(s, -np.inf)
    bg = np.full(n, -np.inf)
    if margin is not None:
        for i in range(n):
            order = np.lexsort((np.arange(n), -s[i]))
            if rank <= n - 1:
                bg[i] = s[i, order[rank - 1]]
    parent = list(range(n))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i in range(n):
        # k nearest by similarity, ties to the lower row
        order = np.lexsort((np.arange(n), -s[i]))[:k]
        for j in order:
            if s[i, j] > thr and (margin is None or s[i, j] - max(bg[i], bg[j]) > margin):
                a, b = find(i), find(int(j))
                if a != b:
                    parent[max(a, b)] = min(a, b)
    root = [find(i) for i in range(n)]
    leaky = set()
    if ev is not None and len(ev):
        best = (xn @ unit(ev).T).max(axis=1)
        leaky = {root[i] for i in range(n) if best[i] > athr and (margin is None or best[i] - bg[i] > margin)}
    return [i for i in range(n) if root[i] == i and root[i] not in leaky], root


def sample(q, p, n, repeats):
    s = unit(q) @ unit(p).T
    out = []
    for i in range(len(q)):
        order = np.lexsort((np.arange(len(p)), -s[i]))[:n]
        out.extend((int(j), i, s[i, j]) for j in order)
    if repeats:
        return out
    best = {}
    for j, i, v in out:
        if j not in best or v > best[j][1] or (v == best[j][1] and i < best[j][0]):
            best[j] = (i, v)
    return [(j, best[j][0], best[j][1]) for j in sorted(best)]


def main(argv):
    cmd = argv[0]
    if cmd == "dedup":
        ids, _, x = emb_util.read(argv[1])
        ev, k, t, at, m, r = None, 64, 0.6, 0.45, None, 10
        a = argv[2:]
        while a:
            if a[0] == "--against":
                ev = emb_util.read(a[1])[2]
            elif a[0] == "-k":
                k = int(a[1])
            elif a[0] == "-t":
                t = float(a[1])
            elif a[0] == "--at":
                at = float(a[1])
            elif a[0] == "--margin":
                m = float(a[1])
            elif a[0] == "--rank":
                r = int(a[1])
            a = a[2:]
        kept, _ = dedup(x, k, t, ev, at, m, r)
        for i in kept:
            print(int(ids[i]))
    elif cmd == "sample":
        qids, _, q = emb_util.read(argv[1])
        pids, _, p = emb_util.read(argv[2])
        n = int(argv[argv.index("-n") + 1])
        for j, i, v in sample(q, p, n, "--repeats" in argv):
            print("%d\t%d\t%.6f" % (pids[j], qids[i], v))
    elif cmd == "kmeans":
        import faiss
        _, _, x = emb_util.read(argv[1])
        x = np.ascontiguousarray(unit(x).astype(np.float32))
        km = faiss.Kmeans(x.shape[1], int(argv[2]), niter=int(argv[3]), seed=int(argv[4]), spherical=True)
        print("%.6f" % km.train(x))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
