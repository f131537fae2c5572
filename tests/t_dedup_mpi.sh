# t_dedup_mpi.sh — dv2-dedup and dv2-retrieve under `mpirun -np 2` give
# byte-identical outputs to one process (the pool or the queries are split
# across ranks by whole blocks; components and best matches are merged).
. "$DV2_ROOT/tests/lib.sh"
REF="$DV2_ROOT/tests/ref"
command -v mpirun >/dev/null || skip "mpirun not installed"
[ "${DV2_MPI:-0}" = 1 ] || skip "this build has no MPI"
MPI="mpirun -np 2 --allow-run-as-root --oversubscribe"

$PY - <<PYEOF || fail "could not make the test matrices"
import sys; sys.path.insert(0, "$REF")
import emb_util as e, numpy as np
x, t, base = e.clusters(80, 6, 900, 64, 0.04, seed=4)
e.write("pool.emb", np.arange(10, 10 + len(x)), x)
rng = np.random.default_rng(2)
e.write("eval.emb", [1, 2], np.stack([base[3], base[40]]).astype(np.float32))
q = e.unit(base[rng.integers(0, 80, 300)] + 0.1 * rng.standard_normal((300, 64))).astype(np.float32)
e.write("q.emb", np.arange(50000, 50300), q)
PYEOF

# both ranks must really take part: rank 1 reports its share with -v
$MPI dv2-dedup -v --block 128 pool.emb > /dev/null 2> ranks.txt
expect_grep "rank 1 of 2" ranks.txt

for args in "--block 128" "--block 128 --against eval.emb" "--block 64 -k 8 -t 0.7" "--block 64 --margin 0.02 --margin-rank 4"; do
	dv2-dedup $args --groups g1.tsv pool.emb > k1.ids 2>/dev/null
	$MPI dv2-dedup $args --groups g2.tsv pool.emb > k2.ids 2> err2.txt || fail "mpirun dedup $args: $(cat err2.txt)"
	expect_same k1.ids k2.ids
	expect_same g1.tsv g2.tsv
	if [ -s k1.ids ]; then ok; else fail "empty output"; fi
	rm -f g1.tsv g2.tsv
done
for args in "-n 4" "-n 4 --keep-repeats" "-n 16" "--clusters 12 --per-cluster 25 --cap 200 --seed 3"; do
	case "$args" in --clusters*) [ "${DV2_FAISS:-1}" = 1 ] || continue;; esac
	dv2-retrieve --block 64 --queries q.emb --pool pool.emb $args > r1.tsv 2>/dev/null
	$MPI dv2-retrieve --block 64 --queries q.emb --pool pool.emb $args > r2.tsv 2> err2.txt ||
		fail "mpirun retrieve $args: $(cat err2.txt)"
	expect_same r1.tsv r2.tsv
	if [ -s r1.tsv ]; then ok; else fail "empty output for $args"; fi
done
finish
