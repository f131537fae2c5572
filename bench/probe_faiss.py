#!/usr/bin/python3
"""probe_faiss.py — the baseline of bench/b_probe.sh: the official k-NN
evaluation with FAISS exact search (IndexFlatIP on L2-normalized float32
vectors, all cores) and the softmax(sim/T) class vote in numpy.

  probe_faiss.py TRAIN.emb TEST.emb RUNS

Reads the matrices with the numpy one-liner of man/dv2-matrix.5, then times
RUNS times: read + normalize + search (k = 200) + vote for k = 10,20,100,200.
Prints "BASE <median wall seconds> <median CPU seconds, all threads>" and "TOP1 k=<k> <percent>" lines."""
import sys
import time

import faiss
import numpy as np


def read(F):
    h = np.fromfile(F, '<u4', 6); m = np.fromfile(F, [('id', '<u8'), ('label', '<i4'), ('vec', '<f4' if h[4] == 1 else '<f2', (h[5],))], offset=4096)
    return m['label'].astype(np.int64), np.ascontiguousarray(m['vec'], dtype=np.float32)


def run(train, test, ks=(10, 20, 100, 200), T=0.07):
    ytr, xtr = read(train)
    yte, xte = read(test)
    faiss.normalize_L2(xtr)
    faiss.normalize_L2(xte)
    index = faiss.IndexFlatIP(xtr.shape[1])
    index.add(xtr)
    sim, idx = index.search(xte, max(ks))
    C = int(ytr.max()) + 1
    w = np.exp((sim.astype(np.float64) - sim[:, :1]) / T)
    w /= w.sum(1, keepdims=True)
    lab = ytr[idx]
    out = {}
    rows = np.arange(len(yte))[:, None]
    for k in ks:
        score = np.zeros((len(yte), C))
        np.add.at(score, (rows.repeat(k, 1), lab[:, :k]), w[:, :k])
        out[k] = 100.0 * float((score.argmax(1) == yte).mean())
    return out


def main():
    train, test, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    times, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        out = run(train, test)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    print("BASE %.3f %.3f" % (float(np.median(times)), float(np.median(cpu))))
    for k, v in out.items():
        print("TOP1 k=%d %.2f" % (k, v))


if __name__ == "__main__":
    main()
