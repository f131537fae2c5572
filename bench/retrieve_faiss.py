"""retrieve_faiss.py — the baseline of bench/b_retrieve.sh: FAISS called
directly from Python on the same embedding matrices and index string as
dv2-retrieve -n K: normalise, build the index (trained on the same rows),
set nprobe, search all queries at once, write the same TSV.  Prints
"build SECONDS search SECONDS total SECONDS".

    retrieve_faiss.py QUERIES.emb POOL.emb FACTORY NPROBE K OUT.tsv
"""
import sys
import time

t_start = time.perf_counter()
import faiss  # noqa: E402
import numpy as np  # noqa: E402


def load(path):
    with open(path, "rb") as f:
        h = f.read(4096)
    code, dim = np.frombuffer(h[16:24], "<u4")
    vt = "<f4" if code == 1 else "<f2"
    rec = np.fromfile(path, [("id", "<u8"), ("label", "<i4"), ("vec", vt, (int(dim),))], offset=4096)
    x = rec["vec"].astype(np.float32)
    faiss.normalize_L2(x)
    return rec["id"], x


qpath, ppath, factory, nprobe, k, out = sys.argv[1:7]
nprobe, k = int(nprobe), int(k)
qids, q = load(qpath)
pids, p = load(ppath)
t0 = time.perf_counter()
index = faiss.index_factory(p.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
ivf = faiss.try_extract_index_ivf(index)
nlist = ivf.nlist if ivf else 0
nt = min(len(p), max(256 * nlist, 100000))
rows = (np.arange(nt, dtype=np.int64) * len(p)) // nt   # dv2's evenly spaced training rows
index.train(p[rows])
index.add(p)
if ivf:
    ivf.nprobe = nprobe
t1 = time.perf_counter()
D, I = index.search(q, k)
t2 = time.perf_counter()
with open(out, "w") as f:
    for i in range(len(q)):
        for j in range(k):
            if I[i, j] >= 0:
                f.write("%d\t%d\t%.6f\n" % (pids[I[i, j]], qids[i], D[i, j]))
print("build %.4f search %.4f total %.4f" % (t1 - t0, t2 - t1, time.perf_counter() - t_start))
