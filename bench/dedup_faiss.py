"""dedup_faiss.py — the baseline of bench/b_dedup.sh: the same self-dedup
with FAISS and scipy from Python: normalise, k+1 nearest neighbours of every
row by inner product (exact IndexFlatIP, or the given factory string with
nprobe), edges above the threshold, connected components
(scipy.sparse.csgraph), the first row of each component kept.  Prints
"kept N seconds S".

    dedup_faiss.py POOL.emb K THRESHOLD [FACTORY NPROBE]
"""
import sys
import time

import faiss
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

t0 = time.perf_counter()
path, k, thr = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with open(path, "rb") as f:
    h = f.read(4096)
code, dim = np.frombuffer(h[16:24], "<u4")
rec = np.fromfile(path, [("id", "<u8"), ("label", "<i4"), ("vec", "<f4" if code == 1 else "<f2", (int(dim),))],
                  offset=4096)
x = rec["vec"].astype(np.float32)
faiss.normalize_L2(x)
n = len(x)
if len(sys.argv) > 4:
    index = faiss.index_factory(x.shape[1], sys.argv[4], faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.try_extract_index_ivf(index)
    nt = min(n, max(256 * ivf.nlist, 100000))
    index.train(x[(np.arange(nt, dtype=np.int64) * n) // nt])
    index.add(x)
    ivf.nprobe = int(sys.argv[5])
else:
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
D, I = index.search(x, k + 1)
rows = np.repeat(np.arange(n), k + 1)
keep = (D.ravel() > thr) & (I.ravel() >= 0) & (I.ravel() != rows)
g = coo_matrix((np.ones(keep.sum()), (rows[keep], I.ravel()[keep])), shape=(n, n))
ncomp, lab = connected_components(g, directed=False)
print("kept %d seconds %.3f" % (ncomp, time.perf_counter() - t0))
