# b_retrieve.sh — search throughput of dv2-retrieve against FAISS called
# directly from Python (bench/retrieve_faiss.py) on the same matrices, the
# same index string, nprobe and k, in the same run.  Both sides: the index is
# trained on the same rows, the pool added, then all queries searched; the
# search phase is timed inside each process (dv2-retrieve -v reports it) and
# the whole process is timed too.  Medians of RUNS runs.
# Environment: RET_POOL (100000) RET_QUERIES (20000) RET_DIM (128)
# RET_INDEX (IVF512,Flat) RET_NPROBE (16) RET_K (4) RUNS (3).
set -u
PY=/usr/bin/python3
N=${RET_POOL:-100000} NQ=${RET_QUERIES:-20000} D=${RET_DIM:-128}
IDX=${RET_INDEX:-IVF512,Flat} NP=${RET_NPROBE:-16} K=${RET_K:-4} RUNS=${RUNS:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
$PY - "$N" "$NQ" "$D" <<'PYEOF' || { echo "b_retrieve: cannot make data"; exit 0; }
import sys; sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])
import numpy as np, struct
n, nq, d = map(int, sys.argv[1:4])
rng = np.random.default_rng(0)
c = rng.standard_normal((1000, d)); c /= np.linalg.norm(c, axis=1, keepdims=True)
def make(m, path, base):
    x = (c[rng.integers(0, 1000, m)] + 0.5 * rng.standard_normal((m, d)) / np.sqrt(d)).astype(np.float32)
    h = bytearray(4096); h[0:8] = b"DV2MATRX"
    struct.pack_into("<IIIIIIQ", h, 8, 1, 4096, 1, d, 12 + 4 * d, 0, m)
    rec = np.zeros(m, [("id", "<u8"), ("label", "<i4"), ("vec", "<f4", (d,))])
    rec["id"] = np.arange(base, base + m); rec["label"] = -1; rec["vec"] = x
    open(path, "wb").write(bytes(h) + rec.tobytes())
make(n, "pool.emb", 1); make(nq, "q.emb", 10**9)
PYEOF
. "$DV2_ROOT/bench/lib.sh"
: > ours_search; : > ours_total; : > base_search; : > base_total
for r in $(seq "$RUNS"); do
	t0=$(date +%s.%N)
	dv2-retrieve -v -f -o ours.tsv --queries q.emb --pool pool.emb -n "$K" --keep-repeats --index "$IDX" --nprobe "$NP" 2> ours.err
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l >> ours_total
	sed -n 's/.*searched in \([0-9.]*\) s.*/\1/p' ours.err >> ours_search
	$PY "$HERE/retrieve_faiss.py" q.emb pool.emb "$IDX" "$NP" "$K" base.tsv > base.out
	awk '{print $4}' base.out >> base_search
	awk '{print $6}' base.out >> base_total
done
os=$(median < ours_search) bs=$(median < base_search) ot=$(median < ours_total) bt=$(median < base_total)
same=$(cut -f1,2 ours.tsv | sort | comm -12 - "$(cut -f1,2 base.tsv | sort > base12; echo base12)" | wc -l)
echo "pool $N x $D, $NQ queries, $IDX nprobe $NP k $K; same (pool, query) pairs: $same of $(wc -l < base.tsv)"
echo "search seconds: dv2 $os, faiss python $bs; whole process: dv2 $ot, faiss python $bt (python timed from its first import)"
qo=$(echo "$NQ / $os" | bc -l) qb=$(echo "$NQ / $bs" | bc -l)
printf 'RESULT retrieve_search_qps %.0f %.0f queries/s ratio=%.3f\n' "$qo" "$qb" "$(echo "$qo / $qb" | bc -l)"
printf 'RESULT retrieve_total_s %.2f %.2f s ratio=%.3f\n' "$ot" "$bt" "$(echo "$bt / $ot" | bc -l)"
