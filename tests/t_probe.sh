#!/bin/sh
# t_probe.sh — dv2-probe against independent references (tests/ref/probe_ref.py):
# the official k-NN vote in numpy, scikit-learn's KNeighborsClassifier with
# uniform votes, scikit-learn's LogisticRegression with the same C, and
# retrieval mAP/recall over a fully sorted database in numpy; the test set
# through a pipe, zstd-compressed and in f16; usage and data errors.
. "$DV2_ROOT/tests/lib.sh"
REF="$DV2_ROOT/tests/ref/probe_ref.py"
$PY -c 'import numpy, sklearn' 2>/dev/null || skip "numpy/sklearn not available for $PY"

# cmp_json GOT REF KEYPATH TOL: the numbers at a path ("knn.results.*.top1") agree within TOL
cmp_json() {
	$PY - "$@" <<'EOF'
import json, sys
got, ref, path, tol = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3], float(sys.argv[4])
def walk(d, parts):
    if not parts: return [d]
    p = parts[0]
    if p == "*": return [x for e in d for x in walk(e, parts[1:])]
    if isinstance(d, list): return walk(d[int(p)], parts[1:])
    return walk(d[p], parts[1:])
gp = path.split(".")
g = walk(got, gp)
r = walk(ref, gp[1:] if gp[0] in ("knn", "retrieval", "linear") and gp[0] not in ref else gp)
if len(g) != len(r) or not g:
    sys.exit("%s: %d values vs %d" % (path, len(g), len(r)))
bad = [(a, b) for a, b in zip(g, r) if abs(a - b) > tol]
if bad:
    sys.exit("%s: dv2-probe vs reference differ by more than %g: %s" % (path, tol, bad))
EOF
	if [ $? = 0 ]; then ok; else fail "cmp_json $*"; fi
}

nice $PY "$REF" gen tr.emb te.emb --n-train 3000 --n-test 600 --dim 24 --classes 10 --spread 2.5 --seed 1 || fail "gen"

# k-NN, softmax votes (the official protocol) vs numpy; one query in 600 may
# flip where float32 sums order two neighbours differently (0.17 points).
expect_exit 0 dv2-probe --train tr.emb --test te.emb --knn 10,20,100,200 --json
cp out.txt knn.json
$PY "$REF" knn tr.emb te.emb --k 10,20,100,200 > knn_ref.json || fail "numpy k-NN"
cmp_json knn.json knn_ref.json knn.results.*.top1 0.17
cmp_json knn.json knn_ref.json knn.results.*.top5 0.17
cmp_json knn.json knn_ref.json knn.results.*.k 0
# the default is the same evaluation, as a table
expect_exit 0 dv2-probe --train tr.emb --test te.emb
expect_grep "softmax weights, T=0.07, 200 neighbours" out.txt
top1_10=$($PY -c 'import json,sys; print("%.2f" % json.load(open("knn.json"))["knn"]["results"][0]["top1"])')
expect_grep "^ *10 *$top1_10 " out.txt

# another temperature
expect_exit 0 dv2-probe --train tr.emb --test te.emb --knn 5,50 --temperature 0.5 --json
cp out.txt knnT.json
$PY "$REF" knn tr.emb te.emb --k 5,50 --T 0.5 > knnT_ref.json
cmp_json knnT.json knnT_ref.json knn.results.*.top1 0.17

# uniform votes vs scikit-learn
expect_exit 0 dv2-probe --train tr.emb --test te.emb --knn 1,5,10,20 --knn-weights uniform --json
cp out.txt uni.json
$PY "$REF" sklearn-knn tr.emb te.emb --k 1,5,10,20 > uni_ref.json || fail "sklearn k-NN"
cmp_json uni.json uni_ref.json knn.results.*.top1 0.17

# the test set in many small blocks, through a pipe, compressed, in f16: same numbers
expect_exit 0 dv2-probe --train tr.emb --test te.emb --knn 10,20,100,200 --json --block 7 -j 2
cmp_json out.txt knn.json knn.results.*.top1 0
cmp_json out.txt knn.json knn.results.*.top5 0
expect_exit 0 sh -c 'cat te.emb | dv2-probe --train tr.emb --test - --knn 10,20,100,200 --json'
cmp_json out.txt knn.json knn.results.*.top1 0
if command -v zstd >/dev/null; then
	zstd -q -c te.emb > te.emb.zst
	expect_exit 0 dv2-probe --train tr.emb --test te.emb.zst --knn 10,20,100,200 --json
	cmp_json out.txt knn.json knn.results.*.top1 0
	zstd -q -c tr.emb > tr.emb.zst
	expect_exit 0 sh -c 'cat tr.emb.zst | dv2-probe --train - --test te.emb --knn 10,20,100,200 --json'
	cmp_json out.txt knn.json knn.results.*.top1 0
fi
$PY "$REF" gen h_tr.emb h_te.emb --n-train 3000 --n-test 600 --dim 24 --classes 10 --spread 2.5 --seed 1 --dtype f16
expect_exit 0 dv2-probe --train h_tr.emb --test h_te.emb --json
cp out.txt h.json
$PY "$REF" knn h_tr.emb h_te.emb > h_ref.json
cmp_json h.json h_ref.json knn.results.*.top1 0.17

# linear probe: scikit-learn's LogisticRegression with the same C (fit on all rows)
for C in 0.01 1; do
	expect_exit 0 dv2-probe --train tr.emb --test te.emb --C $C --json
	cp out.txt lr.json
	$PY "$REF" logreg tr.emb te.emb --C $C > lr_ref.json || fail "sklearn logreg"
	cmp_json lr.json lr_ref.json linear.top1 0.5
	expect_nogrep "max-iter" err.txt
done
# the C sweep: every grid value tried on the held-out rows, one chosen
expect_exit 0 dv2-probe --train tr.emb --test te.emb --linear --max-iter 50 --json
$PY -c '
import json, sys
d = json.load(open("out.txt"))["linear"]
cs = [s["C"] for s in d["sweep"]]
assert len(cs) == 12 and abs(cs[0] - 1e-6) < 1e-12 and abs(cs[-1] - 1e5) < 1e-3, cs
best = max(s["holdout_top1"] for s in d["sweep"])
chosen = [s for s in d["sweep"] if s["C"] == d["C"]][0]
assert chosen["holdout_top1"] == best, d
assert d["fit_rows"] == 2700 and d["holdout_rows"] == 300, d
assert 30 < d["top1"] <= 100, d
' && ok || fail "linear sweep JSON"
# the official 45-value grid: 10^linspace(-6, 5, 45)
expect_exit 0 dv2-probe --train tr.emb --test te.emb --linear --c-grid full --max-iter 3 --json
$PY -c '
import json, numpy as np
cs = [s["C"] for s in json.load(open("out.txt"))["linear"]["sweep"]]
assert np.allclose(cs, 10 ** np.linspace(-6, 5, 45), rtol=1e-12), cs
' && ok || fail "full C grid"
# fits cut short by --max-iter are warned about, not passed off as converged
expect_grep "warning: linear: [0-9]* of 46 fits stopped at --max-iter 3 before converging (the final fit among them)" err.txt

# retrieval vs numpy over the fully sorted database
$PY "$REF" inst itr.emb ite.emb --instances 150 --views 4 --dim 16 --seed 2 || fail "gen inst"
expect_exit 0 dv2-probe --train itr.emb --test ite.emb --retrieval --json
cp out.txt r.json
$PY "$REF" retrieval itr.emb ite.emb > r_ref.json || fail "numpy retrieval"
cmp_json r.json r_ref.json retrieval.mAP 0.01
cmp_json r.json r_ref.json retrieval.recall@1 0.01
cmp_json r.json r_ref.json retrieval.recall@10 0.01
cmp_json r.json r_ref.json retrieval.queries 0
cmp_json r.json r_ref.json retrieval.no_positive 0
expect_exit 0 dv2-probe --train itr.emb --test ite.emb --retrieval --json --block 5
cmp_json out.txt r.json retrieval.mAP 0
# against itself: a query never finds its own row
expect_exit 0 dv2-probe --train itr.emb --test itr.emb --retrieval --json
$PY -c 'import json; d = json.load(open("out.txt"))["retrieval"]; assert d["recall@1"] < 100 and d["no_positive"] == 0, d' && ok || fail "self retrieval"

# usage errors (exit 2) and data errors (exit 1, naming the file)
expect_exit 2 dv2-probe --train tr.emb
expect_exit 2 dv2-probe --train tr.emb --test te.emb --knn 0
expect_exit 2 dv2-probe --train tr.emb --test te.emb --knn-weights nearest
expect_exit 2 dv2-probe --train tr.emb --test te.emb --bogus
expect_exit 2 dv2-probe --train - --test -
$PY "$REF" gen d_tr.emb d_te.emb --n-train 50 --n-test 10 --dim 7
expect_exit 1 dv2-probe --train tr.emb --test d_te.emb
expect_grep "d_te.emb: dimension 7 does not match tr.emb (24)" err.txt
printf 'not a matrix at all' > junk.emb
expect_exit 1 dv2-probe --train junk.emb --test te.emb
expect_grep "junk.emb: not a dv2 embedding matrix" err.txt
head -c 5000 te.emb > cut.emb
expect_exit 1 dv2-probe --train tr.emb --test cut.emb
expect_grep "cut.emb: truncated row" err.txt
$PY - <<'PYEOF'
import numpy as np
h = bytearray(open("te.emb", "rb").read())
rows = np.frombuffer(bytes(h[4096:]), [("id", "<u8"), ("label", "<i4"), ("vec", "<f4", (24,))]).copy()
rows["label"][3] = -1
open("nolabel.emb", "wb").write(bytes(h[:4096]) + rows.tobytes())
PYEOF
expect_exit 1 dv2-probe --train nolabel.emb --test te.emb
expect_grep "nolabel.emb: row 3 (id [0-9]*) has no label" err.txt
expect_exit 1 dv2-probe --train tr.emb --test nolabel.emb --linear --C 1
expect_grep "nolabel.emb: row 3 (id [0-9]*) has no label" err.txt
# -o writes the result file, and refuses to overwrite it without -f
expect_exit 0 dv2-probe --train tr.emb --test te.emb --knn 10 --json -o res.json
expect_empty out.txt
cmp_json res.json knn.json knn.results.0.top1 0
expect_exit 1 dv2-probe --train tr.emb --test te.emb --knn 10 --json -o res.json
expect_exit 1 dv2-probe --train tr.emb --test missing.emb
expect_grep "missing.emb" err.txt
expect_empty out.txt
finish
