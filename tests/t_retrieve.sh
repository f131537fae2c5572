# t_retrieve.sh — dv2-retrieve against numpy references: sample-based
# neighbours (unique and with repeats), --keep, cluster-based selection rules
# and determinism, the k-means objective against FAISS's own Python k-means
# on the same data and seed, and bad input.
. "$DV2_ROOT/tests/lib.sh"
REF="$DV2_ROOT/tests/ref"

$PY - <<EOF || fail "could not make the test matrices"
import sys; sys.path.insert(0, "$REF")
import emb_util as e, numpy as np
rng = np.random.default_rng(3)
# a pool with structure: 40 directions, points spread around them
cent = e.unit(rng.standard_normal((40, 48)))
lab = rng.integers(0, 40, 3000)
pool = e.unit(cent[lab] + 0.35 * rng.standard_normal((3000, 48)) / np.sqrt(48) * 4).astype(np.float32)
e.write("pool.emb", np.arange(1, 3001), pool)
# queries: near 6 of the directions
ql = rng.choice([1, 5, 9, 13, 17, 21], 200)
q = e.unit(cent[ql] + 0.35 * rng.standard_normal((200, 48)) / np.sqrt(48) * 4).astype(np.float32)
e.write("q.emb", np.arange(100001, 100201), q)
e.write("q_bad.emb", [1], np.ones((1, 16), np.float32))
e.write("q_empty.emb", np.zeros(0, np.uint64), np.zeros((0, 48), np.float32))
open("keep.ids", "w").write("".join("%d\n" % i for i in range(1, 3001, 2)) + "999999\n888888\n")
EOF

# sample-based, unique (each pool image once, with its best query)
$PY "$REF/dedup_ref.py" sample q.emb pool.emb -n 4 > ref.tsv
$PY "$REF/dedup_ref.py" sample q.emb pool.emb -n 4 --repeats > ref_rep.tsv
expect_exit 0 dv2-retrieve --queries q.emb --pool pool.emb -n 4
cut -f1,2 out.txt > got12; cut -f1,2 ref.tsv > ref12
expect_same got12 ref12
paste out.txt ref.tsv | awk -F'\t' '{d = $3 - $6; if (d < 0) d = -d; if (d > 1e-5) bad++} END {exit bad > 0}' ||
	fail "similarities differ from the reference"
expect_grep "800 (query, neighbour) pairs" err.txt
expect_exit 0 dv2-retrieve --queries q.emb --pool pool.emb -n 4 --keep-repeats
expect_eq "$(wc -l < out.txt)" 800 "rows with repeats"
cut -f1,2 out.txt | sort > got_rep; cut -f1,2 ref_rep.tsv | sort > ref_rep12
expect_same got_rep ref_rep12

# overlapping pools: an id met twice is retrieved once, with a warning;
# the output is that of the pool given once
expect_exit 0 dv2-retrieve --queries q.emb --pool pool.emb --pool pool.emb -n 4
expect_grep "warning: 3000 pool rows repeat an id met before" err.txt
expect_eq "$(cut -f1 out.txt | sort | uniq -d | wc -l)" 0 "repeated pool ids in the output"
cut -f1,2 out.txt > got_twice
expect_same got_twice ref12
expect_exit 0 dv2-retrieve --queries q.emb --pool pool.emb --pool pool.emb -n 4 --keep keep.ids
expect_eq "$(cut -f1 out.txt | sort | uniq -d | wc -l)" 0 "repeated pool ids with --keep"

# --keep: only kept ids come out, and the unknown ids are reported
expect_exit 0 dv2-retrieve --queries q.emb --pool pool.emb -n 4 --keep keep.ids
expect_grep "2 of the 1502 ids" err.txt
expect_eq "$(awk -F'\t' '$1 % 2 == 0' out.txt | wc -l)" 0 "ids outside --keep"
expect_grep "1500 images" err.txt

if [ "${DV2_FAISS:-1}" = 1 ]; then
	# cluster-based: rules and determinism
	expect_exit 0 dv2-retrieve --queries q.emb --pool pool.emb --clusters 20 --per-cluster 30 --min-queries 3 --cap 150 --seed 5
	cp out.txt c1.tsv
	obj=$(sed -n 's/.*k-means objective \([0-9.]*\).*/\1/p' err.txt)
	expect_exit 0 dv2-retrieve --queries q.emb --pool pool.emb --clusters 20 --per-cluster 30 --min-queries 3 --cap 150 --seed 5
	expect_same out.txt c1.tsv
	expect_eq "$(wc -l < c1.tsv)" 150 "capped selection"
	expect_eq "$(cut -f1 c1.tsv | sort | uniq -d | wc -l)" 0 "repeated pool ids"
	expect_eq "$(cut -f2 c1.tsv | sort | uniq -c | awk '$1 > 30' | wc -l)" 0 "clusters above --per-cluster"
	expect_exit 0 dv2-retrieve --queries q.emb --pool pool.emb --clusters 20 --per-cluster 30 --min-queries 3 --cap 0 --seed 5
	used=$(sed -n 's/.* \([0-9]*\) used.*/\1/p' err.txt)
	# the queries sit near 6 directions: few clusters hold more than 3 of them
	[ -n "$used" ] && [ "$used" -ge 3 ] && [ "$used" -le 12 ] && ok || fail "clusters used: '$used'"
	# k-means objective within 1% of FAISS's Python k-means, same data and seed
	ref_obj=$($PY "$REF/dedup_ref.py" kmeans pool.emb 20 20 5)
	$PY -c "import sys; a, b = float('$obj'), float('$ref_obj'); sys.exit(abs(a - b) > 0.01 * abs(b))" && ok ||
		fail "k-means objective $obj vs FAISS Python $ref_obj"
	echo "k-means objective: dv2 $obj, faiss python $ref_obj" >&2
	expect_exit 1 dv2-retrieve --queries q.emb --pool pool.emb --clusters 5000
	expect_grep "only 3000" err.txt
else
	expect_exit 2 dv2-retrieve --queries q.emb --pool pool.emb --clusters 20
fi

# bad input
expect_exit 1 dv2-retrieve --queries q_bad.emb --pool pool.emb -n 4
expect_grep "dimension" err.txt
expect_exit 0 dv2-retrieve --queries q_empty.emb --pool pool.emb -n 4
expect_empty out.txt
expect_grep "empty" err.txt
printf '12\nbanana\n' > badkeep.ids
expect_exit 1 dv2-retrieve --queries q.emb --pool pool.emb --keep badkeep.ids
expect_grep "line 2" err.txt
printf '999999\n' > nokeep.ids
expect_exit 0 dv2-retrieve --queries q.emb --pool pool.emb --keep nokeep.ids
expect_grep "pool is empty" err.txt
expect_exit 2 dv2-retrieve --queries q.emb --pool pool.emb -n 4 --clusters 3
expect_exit 2 dv2-retrieve --pool pool.emb
if [ "${DV2_CUDA:-0}" = 0 ]; then
	expect_exit 2 dv2-retrieve --queries q.emb --pool pool.emb --device cuda
	expect_grep "runs on the CPU only in this build" err.txt
fi
expect_exit 2 dv2-retrieve --queries q.emb --pool pool.emb --device cuda --index IVF8,Flat
expect_exit 2 dv2-retrieve --queries q.emb --pool pool.emb -n 0
expect_exit 0 dv2-retrieve --help
finish
