# b_hkmeans.sh — one level of dv2-hkmeans (k-means++ seeding with its
# projection bound, then Lloyd iterations, no resampling) against FAISS's
# k-means (bench/kmeans_faiss.py: faiss.Kmeans, random initial centroids)
# on the same matrix, k and iterations, threads and BLAS kernels, in the
# same run: wall seconds of the whole dv2-hkmeans process and of FAISS's
# train() (its process start and data load left out), and the objective of
# both (sum of squared distances to the nearest final centroid), so that
# speed is read with quality.  The data: points around 300 centres of
# Zipf-like sizes spanning a 16-d subspace of DIM dimensions with isotropic
# noise (tests/ref/hkmeans_ref.py blobs), the low-dimensional structure of
# image embeddings.  Medians of RUNS runs.
# Environment: HKM_N (100000) HKM_DIM (256) HKM_K (1000) HKM_NITER (20) RUNS (3).
set -u
PY=/usr/bin/python3
N=${HKM_N:-100000} D=${HKM_DIM:-256} K=${HKM_K:-1000} IT=${HKM_NITER:-20} RUNS=${RUNS:-3}
J=$(nproc)
HERE=$(cd "$(dirname "$0")" && pwd)
. "$DV2_ROOT/bench/lib.sh"
$PY "$DV2_ROOT/tests/ref/hkmeans_ref.py" blobs pool.emb --n "$N" --dim "$D" || { echo "b_hkmeans: cannot make data"; exit 0; }
$PY -c "import faiss" 2>/dev/null || { echo "b_hkmeans: python3-faiss not installed: no baseline"; exit 0; }
: > ours_s; : > base_s; : > ours_obj; : > base_obj
for r in $(seq "$RUNS"); do
	t0=$(now)
	dv2-hkmeans -j "$J" -f -v --tree tree --clusters "$K" --steps 0 --niter "$IT" pool.emb 2> ours.err
	t1=$(now)
	echo "$t1 - $t0" | bc -l >> ours_s
	$PY - tree/level-1.hkm >> ours_obj <<'PYEOF'
import sys, numpy as np
b = open(sys.argv[1], "rb").read()
n = int(np.frombuffer(b[16:24], np.int64)[0]); k, d = (int(v) for v in np.frombuffer(b[24:32], np.int32))
o = 64 + 4 * k * d + 4 * n
print("%.6e" % np.frombuffer(b[o:o + 4 * n], np.float32).astype(np.float64).sum())
PYEOF
	$PY "$HERE/kmeans_faiss.py" pool.emb "$K" "$IT" "$J" > base.out || { echo "b_hkmeans: the FAISS run failed"; exit 0; }
	awk '{print $2}' base.out >> base_s
	awk '{print $3}' base.out >> base_obj
done
os=$(median < ours_s) bs=$(median < base_s) oo=$(median < ours_obj) bo=$(median < base_obj)
echo "pool $N x $D, k $K, $IT Lloyd iterations, $J threads; $(grep 'level 1:' ours.err | sed 's/^dv2-hkmeans: //')"
echo "seconds: dv2-hkmeans (whole process) $os, faiss train $bs; objective: dv2 $oo, faiss $bo"
# ratios > 1: dv2 faster; FAISS's objective above dv2's (dv2 better)
awk -v os="$os" -v bs="$bs" -v oo="$oo" -v bo="$bo" 'BEGIN {
	printf "RESULT hkmeans_level_s %.2f %.2f s ratio=%.3f\n", os, bs, bs / os
	printf "RESULT hkmeans_objective %.4e %.4e sum-sq ratio=%.3f\n", oo, bo, bo / oo }'
