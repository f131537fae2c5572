# b_dedup.sh — dv2-dedup on an N x 384 float16 pool (clusters of planted
# near-copies among spread-out images), time and peak memory, against the
# same dedup done with FAISS + scipy from Python (bench/dedup_faiss.py) in
# the same run.  Exact search by default; DED_INDEX=IVF1024,Flat (etc.)
# compares the FAISS IVF path.  Peak memory is the maximum resident set size
# from /usr/bin/time (the mapped pool counts while its pages are resident).
# Environment: DED_N (50000) DED_DIM (384) DED_INDEX ("") DED_NPROBE (16) RUNS (1).
set -u
PY=/usr/bin/python3
N=${DED_N:-50000} D=${DED_DIM:-384} IDX=${DED_INDEX:-} NP=${DED_NPROBE:-16} RUNS=${RUNS:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
$PY - "$N" "$D" <<'PYEOF' || { echo "b_dedup: cannot make data"; exit 0; }
import sys, struct
import numpy as np
n, d = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
h = bytearray(4096); h[0:8] = b"DV2MATRX"
struct.pack_into("<IIIIIIQ", h, 8, 1, 4096, 2, d, 12 + 2 * d, 0, n)
with open("pool.emb", "wb") as f:
    f.write(bytes(h))
    c = rng.standard_normal((2000, d)).astype(np.float32); c /= np.linalg.norm(c, axis=1, keepdims=True)
    for s in range(0, n, 50000):
        m = min(50000, n - s)
        # 90% spread around 2000 modes (cosine to the mode ~0.4), 10% near-copies of the row before
        x = c[rng.integers(0, 2000, m)] + 1.4 * rng.standard_normal((m, d)).astype(np.float32) / np.sqrt(d)
        dup = rng.random(m) < 0.1
        dup[0] = False
        idx = np.nonzero(dup)[0]
        x[idx] = x[idx - 1] + 0.2 * rng.standard_normal((len(idx), d)).astype(np.float32) / np.sqrt(d)
        rec = np.zeros(m, [("id", "<u8"), ("label", "<i4"), ("vec", "<f2", (d,))])
        rec["id"] = np.arange(s + 1, s + m + 1); rec["label"] = -1; rec["vec"] = x
        f.write(rec.tobytes())
PYEOF
. "$DV2_ROOT/bench/lib.sh"
args="" ; [ -n "$IDX" ] && args="--index $IDX --nprobe $NP"
: > ours_s; : > ours_kb; : > base_s; : > base_kb
for r in $(seq "$RUNS"); do
	/usr/bin/time -f "%e %M" -o ours.time dv2-dedup -f -o kept.ids $args pool.emb 2> ours.err
	awk '{print $1}' ours.time >> ours_s; awk '{print $2}' ours.time >> ours_kb
	if [ -n "$IDX" ]; then
		/usr/bin/time -f "%e %M" -o base.time $PY "$HERE/dedup_faiss.py" pool.emb 64 0.6 "$IDX" "$NP" > base.out
	else
		/usr/bin/time -f "%e %M" -o base.time $PY "$HERE/dedup_faiss.py" pool.emb 64 0.6 > base.out
	fi
	awk '{print $1}' base.time >> base_s; awk '{print $2}' base.time >> base_kb
done
cat ours.err
echo "baseline: $(cat base.out)"
os=$(median < ours_s) bs=$(median < base_s) om=$(median < ours_kb) bm=$(median < base_kb)
echo "pool $N x $D f16 ($(du -k pool.emb | cut -f1) KiB), ${IDX:-exact}: dv2 kept $(wc -l < kept.ids); peak RSS dv2 $((om / 1024)) MiB, python $((bm / 1024)) MiB"
printf 'RESULT dedup_%s_%s_s %.1f %.1f s ratio=%.3f\n' "$N" "${IDX:-exact}" "$os" "$bs" "$(echo "$bs / $os" | bc -l)"
printf 'RESULT dedup_%s_%s_peak_MiB %d %d MiB ratio=%.3f\n' "$N" "${IDX:-exact}" "$((om / 1024))" "$((bm / 1024))" "$(echo "$bm / $om" | bc -l)"
