"""scale_recall.py — recall of a dv2-dedup run against exact search.

    python3 scale_recall.py POOL.emb GROUPS.tsv PAIRS.npy [--sample 2000]
                            [--k 64] [--threshold 0.6] [--seed 0]

POOL.emb is the float32 pool the run read (ids = row + 1, as scale_data.py
writes), GROUPS.tsv its --groups output, PAIRS.npy the planted pairs of
scale_data.py (copy row, original row, cosine × 1e6; pairs with a row
beyond the pool are ignored).

Planted recall: the fraction of planted pairs whose two rows are in one
component of the run.

Sample recall: --sample rows drawn at random (without replacement, --seed);
for each, numpy float32 products against the whole pool give the exact
neighbours (self excluded), of which the best --k above --threshold are the
row's exact copy edges, as dv2-dedup defines them.  Reported: the fraction
of those edges whose two rows the run put in one component (pair recall),
and the fraction of sampled rows whose best similarity in GROUPS.tsv equals
the exact best within the 4 decimals the TSV prints (recall@1), over all
sampled rows and over the rows that have a copy edge.  Prints one line of
key=value."""
import argparse
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pool")
    ap.add_argument("groups")
    ap.add_argument("pairs")
    ap.add_argument("--sample", type=int, default=2000)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--threshold", type=float, default=0.6)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    h = np.fromfile(a.pool, "<u4", 6)
    if h[4] != 1:
        sys.exit("scale_recall: %s: a float32 matrix is needed" % a.pool)
    m = np.memmap(a.pool, [("id", "<u8"), ("label", "<i4"), ("vec", "<f4", (int(h[5]),))], "r", offset=4096)
    n = len(m)
    ids = np.asarray(m["id"])
    if not np.array_equal(ids, np.arange(1, n + 1, dtype=np.uint64)):
        sys.exit("scale_recall: %s: ids are not row + 1" % a.pool)
    x = np.ascontiguousarray(m["vec"])

    g = np.loadtxt(a.groups, dtype=str, delimiter="\t", comments="#", usecols=(0, 1, 3))
    gid = g[:, 0].astype(np.uint64)
    if len(gid) != n or not np.array_equal(gid, ids):
        sys.exit("scale_recall: %s: not the rows of %s in order" % (a.groups, a.pool))
    comp = g[:, 1].astype(np.int64)
    best = np.array([float(s) if s not in ("-", "") else -np.inf for s in g[:, 2]])

    p = np.load(a.pairs)
    p = p[(p[:, 0] < n) & (p[:, 1] < n)]
    planted = float(np.mean(comp[p[:, 0]] == comp[p[:, 1]])) if len(p) else float("nan")

    rng = np.random.default_rng(a.seed)
    q = np.sort(rng.choice(n, min(a.sample, n), replace=False))
    xq = x[q]
    ebest = np.full(len(q), -np.inf, np.float32)
    cand = [[] for _ in q]  # (sim, row) above the threshold
    B = 100000
    for s in range(0, n, B):
        e = min(n, s + B)
        sim = xq @ x[s:e].T
        inside = (q >= s) & (q < e)
        sim[np.nonzero(inside)[0], q[inside] - s] = -np.inf  # not itself
        ebest = np.maximum(ebest, sim.max(1))
        qi, cj = np.nonzero(sim > a.threshold)
        for i, j in zip(qi, cj):
            cand[i].append((float(sim[i, j]), s + int(j)))
    edges = []
    for i, c in enumerate(cand):
        c.sort(key=lambda t: (-t[0], t[1]))
        edges += [(q[i], r) for _, r in c[:a.k]]
    edges = np.array(edges, np.int64).reshape(-1, 2)
    pair = float(np.mean(comp[edges[:, 0]] == comp[edges[:, 1]])) if len(edges) else float("nan")
    hit = np.abs(best[q] - np.round(ebest.astype(np.float64), 4)) <= 1.5e-4
    withcopy = np.array([len(c) > 0 for c in cand])
    r1_copy = float(np.mean(hit[withcopy])) if withcopy.any() else float("nan")
    print("rows=%d planted_pairs=%d planted_recall=%.5f sample=%d exact_edges=%d pair_recall=%.5f "
          "recall1=%.5f rows_with_copy=%d recall1_copy=%.5f"
          % (n, len(p), planted, len(q), len(edges), pair, float(np.mean(hit)), int(withcopy.sum()), r1_copy))


if __name__ == "__main__":
    main()
