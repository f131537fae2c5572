# t_dedup.sh — dv2-dedup against the numpy reference (tests/ref/dedup_ref.py)
# on planted near-copies: kept ids with and without --against, float16 and
# zstd and stdin inputs, several input matrices, the --groups TSV, FAISS
# IVF, and the CLI contract on bad input.
. "$DV2_ROOT/tests/lib.sh"
REF="$DV2_ROOT/tests/ref"

$PY - <<EOF || fail "could not make the test matrices"
import sys; sys.path.insert(0, "$REF")
import emb_util as e, numpy as np
x, t, base = e.clusters(60, 5, 500, 96, 0.035, seed=1)
ids = np.arange(5000, 5000 + len(x)) * 7919
e.write("pool.emb", ids, x)
e.write("pool16.emb", ids, x, dtype="f16")
h = len(x) // 2
e.write("a.emb", ids[:h], x[:h]); e.write("b.emb", ids[h:], x[h:])
rng = np.random.default_rng(9)
ev = np.stack([base[g] + 0.05 * rng.standard_normal(96) for g in (2, 7, 11)]).astype(np.float32)
e.write("eval.emb", [1, 2, 3], ev)
e.write("eval_small.emb", [1], np.ones((1, 32), np.float32))
e.write("empty.emb", np.zeros(0, np.uint64), np.zeros((0, 96), np.float32))
y = x.copy(); y[10, 5] = np.nan
e.write("nan.emb", ids, y)
EOF

$PY "$REF/dedup_ref.py" dedup pool.emb > ref.ids
$PY "$REF/dedup_ref.py" dedup pool.emb --against eval.emb > ref_leak.ids
$PY "$REF/dedup_ref.py" dedup pool16.emb > ref16.ids
$PY "$REF/dedup_ref.py" dedup pool.emb -k 2 -t 0.8 > ref_k2.ids

expect_exit 0 dv2-dedup pool.emb
expect_same out.txt ref.ids
n_ref=$(wc -l < ref.ids)
expect_grep "kept $n_ref" err.txt
expect_grep "pool 680 images" err.txt

expect_exit 0 dv2-dedup --against eval.emb --groups groups.tsv pool.emb
expect_same out.txt ref_leak.ids
cp out.txt kept_leak.ids
expect_grep "as leakage" err.txt
# the TSV: a header and one row per image; kept ids are the rows marked kept
expect_eq "$(grep -vc "^#" groups.tsv)" 680 "groups rows"
awk -F'\t' '$5 == "kept" {print $1}' groups.tsv > from_groups.ids
expect_same from_groups.ids kept_leak.ids
# representatives are kept or leaked, never copies, and represent themselves
expect_eq "$(awk -F'\t' '$1 == $3 && $5 == "copy"' groups.tsv | wc -l)" 0 "copy as representative"
# the representative is the first member of its component in pool order
$PY - <<'EOF' || fail "representative is not the first member"
first = {}
for line in open("groups.tsv"):
    if line.startswith("#"): continue
    f = line.split("\t")
    first.setdefault(f[1], f[0])
    assert f[2] == first[f[1]], line
EOF

expect_exit 0 dv2-dedup -k 2 -t 0.8 pool.emb
expect_same out.txt ref_k2.ids

# --margin: the pool plus a dense blob of 60 near-identical non-copies (pair
# cosines 0.8-0.9) that plain components chain into one group; with the
# margin only the pairs that stand out from both ends' 10th neighbour stay
$PY - <<EOF || fail "could not make the dense pool"
import sys; sys.path.insert(0, "$REF")
import emb_util as e, numpy as np
ids, _, x = e.read("pool.emb")
rng = np.random.default_rng(3)
c = rng.standard_normal(96)
blob = e.unit(c / np.linalg.norm(c) + 0.045 * rng.standard_normal((60, 96))).astype(np.float32)
e.write("dense.emb", np.concatenate([ids, np.arange(1, 61)]), np.concatenate([x, blob]))
EOF
$PY "$REF/dedup_ref.py" dedup dense.emb > ref_dense.ids
$PY "$REF/dedup_ref.py" dedup dense.emb --margin 0.05 > ref_margin.ids
$PY "$REF/dedup_ref.py" dedup dense.emb --margin 0.02 --rank 4 -t 0.7 > ref_margin4.ids
expect_exit 0 dv2-dedup dense.emb
expect_same out.txt ref_dense.ids
expect_exit 0 dv2-dedup --margin 0.05 dense.emb
expect_same out.txt ref_margin.ids
expect_grep "margin 0.05 over the cosine of each image's neighbour 10" err.txt
expect_exit 0 dv2-dedup --margin 0.02 --margin-rank 4 -t 0.7 --block 100 dense.emb
expect_same out.txt ref_margin4.ids
# the blob is one group without the margin and not with it (the check can fail)
n_plain=$(wc -l < ref_dense.ids); n_margin=$(wc -l < ref_margin.ids)
echo "dense pool: $n_plain ids kept without the margin, $n_margin with it" >&2
[ "$n_margin" -gt $((n_plain + 20)) ] && ok || fail "the margin kept $n_margin ids, plain $n_plain: the blob should split"
expect_exit 0 dv2-dedup --margin off dense.emb
expect_same out.txt ref_dense.ids
# leakage with the margin: an eval image inside the blob (its pool matches
# do not stand out) and the planted groups' centres (they do)
$PY - <<EOF || fail "could not make the dense eval set"
import sys; sys.path.insert(0, "$REF")
import emb_util as e, numpy as np
_, _, x = e.read("dense.emb")
_, _, ev = e.read("eval.emb")
centre = e.unit(x[-60:].mean(0, keepdims=True))
e.write("eval_dense.emb", [1, 2, 3, 4, 5], np.concatenate([ev, x[-1:] * 0.999 + 0.001 * x[-2:-1], centre]).astype(np.float32))
EOF
$PY "$REF/dedup_ref.py" dedup dense.emb --against eval_dense.emb > ref_dleak.ids
$PY "$REF/dedup_ref.py" dedup dense.emb --against eval_dense.emb --margin 0.1 > ref_dleak_m.ids
expect_exit 0 dv2-dedup --against eval_dense.emb dense.emb
expect_same out.txt ref_dleak.ids
expect_exit 0 dv2-dedup --against eval_dense.emb --margin 0.1 dense.emb
expect_same out.txt ref_dleak_m.ids
# the blob's centre and the near-copy of one of its images are ~0.9 from
# every image of the blob, no more than those images' own neighbours
# (0.85): with the margin only the near-copy's original leaks with the
# planted groups (9 images), without the margin's leak rule all 60 would
leaked=$(sed -n 's/.*copies, \([0-9]*\) as leakage.*/\1/p' err.txt)
echo "leaked with the margin: $leaked" >&2
[ "${leaked:-0}" -gt 0 ] && [ "${leaked:-0}" -lt 20 ] && ok || fail "$leaked images leaked with the margin"
# without the margin's leak rule the 60 singletons would leak: check the
# reference agrees that they are close to the centre
$PY -c "
import sys; sys.path.insert(0, '$REF')
import emb_util as e, numpy as np
_, _, x = e.read('dense.emb'); _, _, ev = e.read('eval_dense.emb')
b = x[-60:] / np.linalg.norm(x[-60:], axis=1, keepdims=True)
sys.exit(not (b @ ev[-1] / np.linalg.norm(ev[-1]) > 0.8).all())" && ok || fail "the blob is not near its centre"

expect_exit 2 dv2-dedup --margin 0.05 --margin-rank 65 dense.emb
expect_exit 2 dv2-dedup --margin -1 dense.emb
expect_exit 0 dv2-dedup -k 5 dense.emb

# float16 matrices, converted once or streamed from the mapping block by block
expect_exit 0 dv2-dedup --block 100 pool16.emb
expect_same out.txt ref16.ids
expect_exit 0 dv2-dedup --block 100 --cache 0 pool16.emb
expect_same out.txt ref16.ids
expect_exit 0 dv2-dedup --cache 100K --against eval.emb pool.emb
expect_same out.txt ref_leak.ids

# the same pool through zstd, stdin, and as two matrices
if command -v zstd >/dev/null; then
	zstd -q pool.emb -o pool.emb.zst
	expect_exit 0 dv2-dedup pool.emb.zst
	expect_same out.txt ref.ids
fi
dv2-dedup - < pool.emb > stdin.ids 2>/dev/null
expect_same stdin.ids ref.ids
expect_exit 0 dv2-dedup a.emb b.emb
expect_same out.txt ref.ids
expect_exit 0 dv2-dedup -o kept.ids pool.emb
expect_same kept.ids ref.ids
expect_empty out.txt
expect_exit 1 dv2-dedup -o kept.ids pool.emb
expect_grep "exists" err.txt

if [ "${DV2_FAISS:-1}" = 1 ]; then
	expect_exit 0 dv2-dedup --index IVF8,Flat --nprobe 8 pool.emb
	expect_same out.txt ref.ids
	expect_exit 0 dv2-dedup --index Flat --against eval.emb --against-index Flat pool.emb
	expect_same out.txt ref_leak.ids
	expect_exit 1 dv2-dedup --index NoSuchIndex pool.emb
	expect_grep "faiss" err.txt
	# an index trained and filled once, saved, and reused
	expect_exit 0 dv2-dedup --index IVF8,Flat --nprobe 8 --save-index ix.faiss pool.emb
	expect_same out.txt ref.ids
	[ -s ix.faiss ] && ok || fail "no saved index"
	expect_exit 0 dv2-dedup --index IVF8,Flat --nprobe 8 --load-index ix.faiss pool.emb
	expect_same out.txt ref.ids
	expect_exit 1 dv2-dedup --index IVF8,Flat --load-index ix.faiss a.emb
	expect_grep "the index holds 680 vectors" err.txt
	expect_exit 1 dv2-dedup --index IVF8,Flat --save-index ix.faiss pool.emb
	expect_grep "exists" err.txt
	expect_exit 2 dv2-dedup --load-index ix.faiss pool.emb
else
	expect_exit 2 dv2-dedup --index IVF8,Flat pool.emb
	expect_grep "no FAISS" err.txt
fi

# bad input: clear errors, never a crash
expect_exit 1 dv2-dedup pool.emb --against eval_small.emb
expect_grep "dimension 32" err.txt
expect_exit 1 dv2-dedup pool.emb eval_small.emb
expect_grep "dimension" err.txt
expect_exit 1 dv2-dedup nan.emb
expect_grep "row 10 .*NaN" err.txt
expect_exit 0 dv2-dedup empty.emb
expect_empty out.txt
expect_grep "empty" err.txt
expect_exit 1 dv2-dedup missing.emb
expect_grep "missing.emb" err.txt
printf 'not a matrix at all' > junk.emb
expect_exit 1 dv2-dedup junk.emb
expect_grep "junk.emb" err.txt
head -c 5000 pool.emb > cut.emb
expect_exit 1 dv2-dedup cut.emb
expect_grep "truncated" err.txt
if [ "${DV2_CUDA:-0}" = 1 ]; then
	# with a GPU the exact search runs there (tests/t_dedup_cuda.sh compares
	# it with the CPU); without one it is a clear runtime error
	dv2-dedup --device cuda pool.emb > cuda.ids 2> cuda.err
	case $? in
	0) expect_same cuda.ids ref.ids;;
	1) expect_grep "CUDA device" cuda.err;;
	*) fail "--device cuda: exit $?";;
	esac
else
	expect_exit 2 dv2-dedup --device cuda pool.emb
	expect_grep "runs on the CPU only in this build" err.txt
fi
expect_exit 2 dv2-dedup -t 1.5 pool.emb
expect_exit 2 dv2-dedup -k 0 pool.emb
expect_exit 2 dv2-dedup --report rep pool.emb
expect_grep "shards" err.txt
expect_exit 2 dv2-dedup
expect_exit 2 dv2-dedup --no-such-option pool.emb
expect_exit 0 dv2-dedup --help
expect_grep "against" out.txt
finish
