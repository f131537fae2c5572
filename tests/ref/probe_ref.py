#!/usr/bin/python3
"""probe_ref.py — reference implementations for dv2-probe's tests, written
with numpy and scikit-learn only (no dv2 code), and a generator of test
matrices in the dv2 embedding matrix format (man/dv2-matrix.5).

  probe_ref.py gen TRAIN TEST --n-train N --n-test M --dim D --classes C
               [--seed S] [--spread X] [--dtype f32|f16]
      Gaussian classes: class centres ~ N(0, 1), rows = centre + X * N(0, 1).
  probe_ref.py inst TRAIN TEST --instances I --views V --dim D [--seed S]
      Instance ids as labels: V training views and 1..2 test views each; a
      tenth of the test queries have an instance absent from training.
  probe_ref.py knn TRAIN TEST --k 10,20 [--T 0.07] [--uniform]
      The official k-NN evaluation in numpy (L2-normalise, cosine, top max(k)
      neighbours, softmax(sim/T) weights, class score sums, top-1/top-5).
  probe_ref.py sklearn-knn TRAIN TEST --k 10,20
      scikit-learn KNeighborsClassifier (uniform votes, cosine, brute force).
  probe_ref.py logreg TRAIN TEST --C C
      scikit-learn LogisticRegression (multinomial, L-BFGS, that C).
  probe_ref.py retrieval TRAIN TEST
      mAP and recall@1,5,10 over the fully sorted database (numpy).

Each evaluation prints one JSON object on stdout (accuracies in percent)."""
import argparse
import json
import sys

import numpy as np


def write_matrix(path, ids, labels, vecs, dtype="f32", model="probe_ref", features="synthetic"):
    n, d = vecs.shape
    code, vt = (1, "<f4") if dtype == "f32" else (2, "<f2")
    hdr = bytearray(4096)
    hdr[0:8] = b"DV2MATRX"
    hdr[8:28] = np.array([1, 4096, code, d, 12 + np.dtype(vt).itemsize * d], "<u4").tobytes()
    hdr[32:40] = int(n).to_bytes(8, "little")
    hdr[256:256 + len(model)] = model.encode()
    hdr[512:512 + len(features)] = features.encode()
    rows = np.zeros(n, [("id", "<u8"), ("label", "<i4"), ("vec", vt, (d,))])
    rows["id"], rows["label"], rows["vec"] = ids, labels, vecs
    with open(path, "wb") as f:
        f.write(bytes(hdr))
        f.write(rows.tobytes())


def read_matrix(path):
    # The one-liner of man/dv2-matrix.5.
    h = np.fromfile(path, "<u4", 6); m = np.fromfile(path, [("id", "<u8"), ("label", "<i4"), ("vec", "<f4" if h[4] == 1 else "<f2", (h[5],))], offset=4096)
    return m["id"], m["label"].astype(np.int64), m["vec"].astype(np.float32)


def normalize(x):
    n = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    n[n == 0] = 1
    return (x / n).astype(np.float32)


def gen(a):
    rng = np.random.default_rng(a.seed)
    centres = rng.standard_normal((a.classes, a.dim)).astype(np.float32)
    out = []
    for n, base in ((a.n_train, 0), (a.n_test, 1 << 40)):
        y = rng.integers(0, a.classes, n)
        x = centres[y] + a.spread * rng.standard_normal((n, a.dim)).astype(np.float32)
        out.append((np.arange(n, dtype=np.uint64) + np.uint64(base), y.astype(np.int32), x.astype(np.float32)))
    write_matrix(a.train, *out[0], dtype=a.dtype)
    write_matrix(a.test, *out[1], dtype=a.dtype)


def inst(a):
    rng = np.random.default_rng(a.seed)
    centres = rng.standard_normal((a.instances, a.dim)).astype(np.float32)
    ytr = np.repeat(np.arange(a.instances), a.views)
    nte = rng.integers(1, 3, a.instances)
    yte = np.repeat(np.arange(a.instances), nte)
    # some queries whose instance has no training view
    missing = rng.choice(len(yte), len(yte) // 10, replace=False)
    yte = yte.copy()
    yte[missing] = a.instances + np.arange(len(missing))
    def views(y):
        c = np.where(y[:, None] < a.instances, centres[np.minimum(y, a.instances - 1)], rng.standard_normal((len(y), a.dim)))
        return (c + 0.9 * rng.standard_normal((len(y), a.dim))).astype(np.float32)
    write_matrix(a.train, np.arange(len(ytr), dtype=np.uint64), ytr.astype(np.int32), views(ytr))
    write_matrix(a.test, np.arange(len(yte), dtype=np.uint64) + np.uint64(1 << 40), yte.astype(np.int32), views(yte))


def ranks_ahead(score, y):
    """Classes ranked before the true one: higher score, or equal and lower index."""
    sy = score[np.arange(len(y)), y][:, None]
    idx = np.arange(score.shape[1])[None, :]
    return ((score > sy) | ((score == sy) & (idx < y[:, None]))).sum(1)


def knn(a):
    _, ytr, xtr = read_matrix(a.train)
    _, yte, xte = read_matrix(a.test)
    ks = sorted(int(k) for k in a.k.split(","))
    C = int(ytr.max()) + 1
    kmax = min(max(ks), len(ytr))
    tr, res = normalize(xtr), {k: [0, 0] for k in ks}
    for b in range(0, len(yte), 512):
        q = normalize(xte[b:b + 512])
        sim = q @ tr.T
        # best first; ties to the lower training row (stable sort of -sim)
        order = np.argsort(-sim, axis=1, kind="stable")[:, :kmax]
        s = np.take_along_axis(sim, order, 1).astype(np.float64)
        w = np.ones_like(s) if a.uniform else np.exp((s - s[:, :1]) / a.T)
        w = w / w.sum(1, keepdims=True)
        lab = ytr[order]
        y = yte[b:b + 512]
        for k in ks:
            kk = min(k, kmax)
            score = np.zeros((len(q), C))
            np.add.at(score, (np.arange(len(q))[:, None].repeat(kk, 1), lab[:, :kk]), w[:, :kk])
            ahead = ranks_ahead(score, y)
            res[k][0] += int((ahead == 0).sum())
            res[k][1] += int((ahead < 5).sum())
    n = len(yte)
    print(json.dumps({"results": [{"k": k, "top1": 100.0 * res[k][0] / n, "top5": 100.0 * res[k][1] / n} for k in ks]}))


def sklearn_knn(a):
    from sklearn.neighbors import KNeighborsClassifier
    _, ytr, xtr = read_matrix(a.train)
    _, yte, xte = read_matrix(a.test)
    out = []
    for k in sorted(int(k) for k in a.k.split(",")):
        clf = KNeighborsClassifier(n_neighbors=k, weights="uniform", metric="cosine", algorithm="brute")
        clf.fit(xtr, ytr)
        out.append({"k": k, "top1": 100.0 * float((clf.predict(xte) == yte).mean())})
    print(json.dumps({"results": out}))


def logreg(a):
    from sklearn.linear_model import LogisticRegression
    _, ytr, xtr = read_matrix(a.train)
    _, yte, xte = read_matrix(a.test)
    clf = LogisticRegression(C=a.C, max_iter=5000, tol=1e-10, multi_class="multinomial", solver="lbfgs")
    clf.fit(xtr.astype(np.float64), ytr)
    print(json.dumps({"C": a.C, "top1": 100.0 * float((clf.predict(xte) == yte).mean())}))


def retrieval(a):
    idtr, ytr, xtr = read_matrix(a.train)
    idte, yte, xte = read_matrix(a.test)
    tr = normalize(xtr)
    aps, hits, none = [], np.zeros(3), 0
    for b in range(0, len(yte), 256):
        q = normalize(xte[b:b + 256])
        sim = q @ tr.T
        for i in range(len(q)):
            keep = idtr != idte[b + i]
            order = np.argsort(-sim[i][keep], kind="stable")
            rel = (ytr[keep][order] == yte[b + i])
            P = int(rel.sum())
            if P == 0:
                none += 1
                continue
            pos = np.nonzero(rel)[0]  # 0-based ranks of the positives
            aps.append(float(np.mean(np.arange(1, P + 1) / (pos + 1))))
            hits += [pos[0] < 1, pos[0] < 5, pos[0] < 10]
    n = len(aps)
    print(json.dumps({"queries": n, "no_positive": none, "mAP": 100.0 * float(np.mean(aps)) if n else 0.0,
                      "recall@1": 100.0 * hits[0] / n, "recall@5": 100.0 * hits[1] / n, "recall@10": 100.0 * hits[2] / n}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("train")
    p.add_argument("test")
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--instances", type=int, default=200)
    p.add_argument("--views", type=int, default=5)
    p.add_argument("--spread", type=float, default=1.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="f32")
    p.add_argument("--k", default="10,20,100,200")
    p.add_argument("--T", type=float, default=0.07)
    p.add_argument("--uniform", action="store_true")
    p.add_argument("--C", type=float, default=1.0)
    a = p.parse_args()
    {"gen": gen, "inst": inst, "knn": knn, "sklearn-knn": sklearn_knn, "logreg": logreg,
     "retrieval": retrieval}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
