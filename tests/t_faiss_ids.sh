#!/bin/sh
# t_faiss_ids.sh — what dv2 hands to the Python ecosystem works there:
# FAISS indexes saved with --save-index (dv2-dedup, dv2-retrieve, also with
# --keep) are IndexIDMaps that /usr/bin/python3's faiss reads and searches
# returning dv2 ids (uint64 bits, ids past 2^63 included); --load-index
# checks the id of every row (another order of the same vectors is
# refused) and still gives the results of a fresh index; and the numpy and
# pandas lines of dv2-matrix(5), taken from the man page itself, read a
# matrix.
. "$DV2_ROOT/tests/lib.sh"
REF="$DV2_ROOT/tests/ref"
$PY -c 'import numpy' 2>/dev/null || skip "/usr/bin/python3 without numpy"

$PY - "$REF" <<'PYEOF' || { fail "could not make the test matrices"; finish; }
import sys; sys.path.insert(0, sys.argv[1])
import emb_util as e, numpy as np
x, t, base = e.clusters(20, 4, 200, 32, 0.035, seed=3)
rng = np.random.default_rng(5)
ids = rng.integers(0, 2**63, len(x), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
ids[0] = 2**64 - 3
labels = rng.integers(0, 5, len(x))
e.write("pool.emb", ids, x, labels=labels)
p = rng.permutation(len(x))
e.write("perm.emb", ids[p], x[p])
e.write("queries.emb", ids[:10], x[:10])
np.save("ids.npy", ids); np.save("labels.npy", labels)
PYEOF

# the numpy and pandas lines of the man page
sed -n '/^h = np.fromfile/p; /^df = pd.DataFrame/p' "$DV2_ROOT/man/dv2-matrix.5" | sed 's/\\-/-/g; s/\\e/\\/g' | sort -u > lines.py
[ "$(grep -c '^h = \|^df = ' lines.py)" = 2 ] && ok || fail "dv2-matrix(5): not one numpy and one pandas line"
if $PY -c 'import pandas' 2>/dev/null; then
	{ echo "import numpy as np, pandas as pd"; echo "F = 'pool.emb'"; grep '^h = ' lines.py; grep '^df = ' lines.py; cat <<'PYEOF'
ids, labels = np.load("ids.npy"), np.load("labels.npy")
assert len(df) == len(ids) and (df.index.to_numpy() == ids).all() and df.index.name == "id"
assert (df["label"].to_numpy() == labels).all() and df.shape[1] == int(h[5]) + 1
assert np.array_equal(df.loc[ids[3]].drop("label").to_numpy(dtype=np.float32), m["vec"][3])
print("pandas ok", df.shape)
PYEOF
	} > pandas_check.py
	expect_exit 0 $PY pandas_check.py
	expect_grep "pandas ok" out.txt
else
	echo "pandas not importable: its line is not run" >&2
fi

dv2-dedup -V | grep -q 'faiss=yes' || { echo "no FAISS in this build" >&2; finish; }
$PY -c 'import faiss' 2>/dev/null || { echo "python3 without faiss: FAISS part skipped" >&2; finish; }

cat > search.py <<'PYEOF'
import sys
import faiss, numpy as np
sys.path.insert(0, sys.argv[1])
import emb_util as e
index = faiss.read_index(sys.argv[2])
ids, _, x = e.read(sys.argv[3])
want = ids if len(sys.argv) < 5 else np.loadtxt(sys.argv[4], dtype=np.uint64, ndmin=1, usecols=0)
x /= np.linalg.norm(x, axis=1, keepdims=True)
sel = np.isin(ids, want)
D, I = index.search(np.ascontiguousarray(x[sel]), 1)
got = I[:, 0].view(np.uint64)
assert index.ntotal == sel.sum(), (index.ntotal, sel.sum())
assert (got == ids[sel]).all(), (got[:4], ids[sel][:4])
print("faiss ids ok", index.ntotal, type(index).__name__)
PYEOF

expect_exit 0 dv2-dedup --index Flat pool.emb
cp out.txt fresh.ids
expect_exit 0 dv2-dedup --index Flat --save-index ix.faiss pool.emb
expect_exit 0 $PY search.py "$REF" ix.faiss pool.emb
expect_grep "faiss ids ok [0-9]* IndexIDMap" out.txt
expect_exit 0 dv2-dedup --index Flat --load-index ix.faiss pool.emb
expect_same out.txt fresh.ids
# the same vectors in another order: refused, naming the row
expect_exit 1 dv2-dedup --index Flat --load-index ix.faiss perm.emb
expect_grep "ix.faiss: row 0 of the index holds id .* another pool" err.txt
# an IVF index too
expect_exit 0 dv2-dedup --index IVF4,Flat --nprobe 4 --save-index ivf.faiss pool.emb
expect_exit 0 $PY search.py "$REF" ivf.faiss pool.emb

# retrieval over a --keep subset: the index holds the kept rows' ids
awk 'NR % 3 == 0' < fresh.ids > keep.ids
expect_exit 0 dv2-retrieve --index Flat --save-index r.faiss --queries queries.emb --pool pool.emb --keep keep.ids -n 2
cp out.txt fresh_r.txt
expect_exit 0 $PY search.py "$REF" r.faiss pool.emb keep.ids
expect_exit 0 dv2-retrieve --index Flat --load-index r.faiss --queries queries.emb --pool pool.emb --keep keep.ids -n 2
expect_same out.txt fresh_r.txt
expect_exit 1 dv2-retrieve --index Flat --load-index ix.faiss --queries queries.emb --pool pool.emb --keep keep.ids -n 2
finish
