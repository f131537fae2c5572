"""emb_util.py — write and read dv2 embedding matrices from Python (the
format of man/dv2-matrix.5: a 4096-byte header, then rows of id u64, label
i32, vector f32 or f16, little-endian).  Used by the dedup and retrieval
tests to make synthetic pools with known answers.

    /usr/bin/python3 tests/ref/emb_util.py clusters OUT.emb --n 500 --dim 64 ...
"""
import struct
import sys

import numpy as np


def write(path, ids, vecs, labels=None, dtype="f32", model="test", features="synthetic"):
    vecs = np.ascontiguousarray(vecs)
    n, dim = vecs.shape
    code, vt = (1, "<f4") if dtype == "f32" else (2, "<f2")
    esz = 4 if code == 1 else 2
    h = bytearray(4096)
    h[0:8] = b"DV2MATRX"
    struct.pack_into("<IIIIII", h, 8, 1, 4096, code, dim, 12 + dim * esz, 0)
    struct.pack_into("<Q", h, 32, n)
    h[256:256 + len(model)] = model.encode()
    h[512:512 + len(features)] = features.encode()
    rec = np.zeros(n, dtype=[("id", "<u8"), ("label", "<i4"), ("vec", vt, (dim,))])
    rec["id"] = np.asarray(ids, dtype=np.uint64)
    rec["label"] = -1 if labels is None else np.asarray(labels, dtype=np.int32)
    rec["vec"] = vecs
    with open(path, "wb") as f:
        f.write(bytes(h))
        f.write(rec.tobytes())


def read(path):
    with open(path, "rb") as f:
        h = f.read(4096)
        code, dim = struct.unpack_from("<II", h, 16)
        vt = "<f4" if code == 1 else "<f2"
        rec = np.frombuffer(f.read(), dtype=[("id", "<u8"), ("label", "<i4"), ("vec", vt, (dim,))])
    return rec["id"].copy(), rec["label"].copy(), rec["vec"].astype(np.float32)


def unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def clusters(n_groups, copies_max, n_distract, dim, noise, seed):
    """Groups of near-copies of random directions plus distractors, shuffled.
    Returns vectors and the group of each row (-1 for distractors)."""
    rng = np.random.default_rng(seed)
    base = unit(rng.standard_normal((n_groups, dim)))
    rows, truth = [], []
    for g in range(n_groups):
        for _ in range(1 + g % copies_max):
            rows.append(base[g] + noise * rng.standard_normal(dim))
            truth.append(g)
    d = unit(rng.standard_normal((n_distract, dim)))
    rows.extend(d)
    truth.extend([-1] * n_distract)
    x = np.array(rows, dtype=np.float32)
    t = np.array(truth)
    p = rng.permutation(len(x))
    return x[p], t[p], base


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["random", "clusters"])
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default="f32")
    ap.add_argument("--id-base", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    x = unit(rng.standard_normal((args.n, args.dim))).astype(np.float32)
    write(args.out, np.arange(args.id_base, args.id_base + args.n), x, dtype=args.dtype)
