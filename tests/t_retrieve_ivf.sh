# t_retrieve_ivf.sh — approximate search against exact search on the same
# data: dv2-retrieve with a FAISS IVF index at the default nprobe (16) must
# find at least 95% of the exact N nearest neighbours (recall@N, N = 4 and
# 16); IVF-PQ's recall is printed for the record (its codes are lossy).
. "$DV2_ROOT/tests/lib.sh"
REF="$DV2_ROOT/tests/ref"
[ "${DV2_FAISS:-1}" = 1 ] || skip "this build has no FAISS"
# FAISS training runs many short OpenMP regions; on a shared, oversubscribed
# machine their barriers dominate, so this accuracy test uses one thread
export OMP_NUM_THREADS=1

$PY - <<PYEOF || fail "could not make the test matrices"
import sys; sys.path.insert(0, "$REF")
import emb_util as e, numpy as np
rng = np.random.default_rng(11)
# a pool shaped like image embeddings: many modes of different sizes
c = e.unit(rng.standard_normal((300, 64)))
w = rng.dirichlet(np.ones(300))
lab = rng.choice(300, 20000, p=w)
x = e.unit(c[lab] + 0.6 * rng.standard_normal((20000, 64)) / 8).astype(np.float32)
e.write("pool.emb", np.arange(1, 20001), x, dtype="f16")
ql = rng.choice(300, 500, p=w)
q = e.unit(c[ql] + 0.6 * rng.standard_normal((500, 64)) / 8).astype(np.float32)
e.write("q.emb", np.arange(900001, 900501), q)
PYEOF

recall() { # exact approx -> fraction of exact (query, pool) pairs found
	$PY - "$1" "$2" <<'PYEOF'
import sys
def pairs(f): return {tuple(l.split("\t")[:2]) for l in open(f)}
a, b = pairs(sys.argv[1]), pairs(sys.argv[2])
print("%.4f" % (len(a & b) / len(a)))
PYEOF
}
for n in 4 16; do
	dv2-retrieve --queries q.emb --pool pool.emb -n $n --keep-repeats > exact$n.tsv 2>/dev/null || fail "exact -n $n"
	expect_exit 0 dv2-retrieve --queries q.emb --pool pool.emb -n $n --keep-repeats --index IVF256,Flat
	r=$(recall exact$n.tsv out.txt)
	echo "IVF256,Flat nprobe 16 (default): recall@$n = $r" >&2
	$PY -c "import sys; sys.exit(not $r >= 0.95)" && ok || fail "IVF256,Flat recall@$n $r < 0.95"
	expect_exit 0 dv2-retrieve --queries q.emb --pool pool.emb -n $n --keep-repeats --index IVF256,Flat --nprobe 1
	r1=$(recall exact$n.tsv out.txt)
	echo "IVF256,Flat nprobe 1: recall@$n = $r1" >&2
	# more lists visited must not lose neighbours
	$PY -c "import sys; sys.exit(not $r1 <= $r)" && ok || fail "nprobe 1 recall $r1 above nprobe 16 $r"
done
expect_exit 0 dv2-retrieve --queries q.emb --pool pool.emb -n 4 --keep-repeats --index IVF256,PQ16
echo "IVF256,PQ16 nprobe 16: recall@4 = $(recall exact4.tsv out.txt)" >&2
finish
