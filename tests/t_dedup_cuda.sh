# t_dedup_cuda.sh — the GPU exact search (--device cuda, kernels/cuda_knn.cu)
# gives dv2-dedup and dv2-retrieve the same outputs as the CPU search on data
# without near-ties; SKIP without a CUDA build or a GPU.
. "$DV2_ROOT/tests/lib.sh"
REF="$DV2_ROOT/tests/ref"
[ "${DV2_CUDA:-0}" = 1 ] || skip "this build has no CUDA"
command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 || skip "no GPU"

$PY - <<PYEOF || fail "could not make the test matrices"
import sys; sys.path.insert(0, "$REF")
import emb_util as e, numpy as np
x, t, base = e.clusters(300, 6, 20000, 384, 0.03, seed=8)
e.write("pool.emb", np.arange(1, len(x) + 1), x, dtype="f16")
rng = np.random.default_rng(1)
q = e.unit(base[rng.integers(0, 300, 2000)] + 0.08 * rng.standard_normal((2000, 384))).astype(np.float32)
e.write("q.emb", np.arange(700001, 702001), q)
e.write("eval.emb", [1, 2, 3], base[:3].astype(np.float32))
PYEOF
dv2-dedup --against eval.emb --groups gc.tsv pool.emb > cpu.ids 2> cpu.err || fail "cpu dedup"
expect_exit 0 dv2-dedup --device cuda --against eval.emb --groups gg.tsv pool.emb
expect_same out.txt cpu.ids
cut -f1-3,5 gc.tsv > gc3; cut -f1-3,5 gg.tsv > gg3
expect_same gc3 gg3
dv2-retrieve --queries q.emb --pool pool.emb -n 8 --keep-repeats > cpu.tsv 2>/dev/null || fail "cpu retrieve"
expect_exit 0 dv2-retrieve --device cuda --queries q.emb --pool pool.emb -n 8 --keep-repeats
cut -f1,2 out.txt > g12; cut -f1,2 cpu.tsv > c12
expect_same g12 c12
paste out.txt cpu.tsv | awk -F'\t' '{d = $3 - $6; if (d < 0) d = -d; if (d > 1e-5) bad++} END {exit bad > 0}' ||
	fail "GPU similarities differ from the CPU's by more than 1e-5"
finish
