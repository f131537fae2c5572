"""kmeans_faiss.py — the baseline of bench/b_hkmeans.sh: FAISS's k-means
(faiss.Kmeans, the CPU one; random initial centroids, every point used)
on an embedding matrix, with the same k and Lloyd iterations as
dv2-hkmeans, then the objective: the sum over the points of the squared
L2 distance to the nearest final centroid, in float64.

    python3 kmeans_faiss.py POOL.emb K NITER THREADS

Prints "faiss <train seconds> <objective>"."""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import emb_util  # noqa: E402


def main():
    import faiss
    path, k, niter, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    faiss.omp_set_num_threads(threads)
    _, _, x = emb_util.read(path)
    x = np.ascontiguousarray(x, dtype=np.float32)
    t0 = time.time()
    km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=1, max_points_per_centroid=len(x), verbose=False)
    km.train(x)
    t = time.time() - t0
    c = km.centroids.astype(np.float64)
    xd = x.astype(np.float64)
    obj = 0.0
    for s in range(0, len(x), 8192):
        b = xd[s:s + 8192]
        d = (b * b).sum(1)[:, None] - 2 * b @ c.T + (c * c).sum(1)[None, :]
        obj += np.maximum(d.min(1), 0).sum()
    print("faiss %.3f %.6e" % (t, obj))


if __name__ == "__main__":
    main()
