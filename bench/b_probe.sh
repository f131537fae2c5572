# b_probe.sh — dv2-probe's k-NN evaluation (cosine, top-200, softmax T=0.07,
# k = 10,20,100,200) on Fashion-MNIST raw pixels (60,000 train x 10,000 test,
# 784-d, /255), against FAISS exact search (IndexFlatIP, python3-faiss) + the
# same vote in numpy (bench/probe_faiss.py), same matrices, same run.  Both
# sides use all cores and are timed end to end (read the matrices, normalize,
# search, vote); PROBE_RUNS runs each (default 3), medians.  Also checks that
# both report the same top-1.  The matrices are written from the Debian IDX
# files with numpy, so only dv2-probe is measured.
RUNS=${PROBE_RUNS:-3}
PY=/usr/bin/python3
D=/usr/share/datasets/fashion-mnist
[ -f $D/train-images-idx3-ubyte.gz ] || { echo "skip: Fashion-MNIST not installed (dataset-fashion-mnist)"; exit 0; }
$PY -c 'import faiss, numpy' 2>/dev/null || { echo "skip: $PY without faiss/numpy (no baseline)"; exit 0; }
command -v dv2-probe >/dev/null || { echo "skip: dv2-probe not built"; exit 0; }
$PY - <<'PYEOF' || { echo "skip: cannot write the matrices"; exit 0; }
import gzip, numpy as np
D = '/usr/share/datasets/fashion-mnist/'
def idx(path):
    b = gzip.open(path).read()
    nd = b[3]; shape = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], 'big') for i in range(nd)]
    return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(shape)
for split, pre, base in (('train', 'train', 0), ('test', 't10k', 1 << 32)):
    x = idx(D + pre + '-images-idx3-ubyte.gz').reshape(-1, 784).astype(np.float32) / 255.0
    y = idx(D + pre + '-labels-idx1-ubyte.gz').astype(np.int32)
    n, d = x.shape
    hdr = bytearray(4096); hdr[0:8] = b'DV2MATRX'
    hdr[8:28] = np.array([1, 4096, 1, d, 12 + 4 * d], '<u4').tobytes()
    hdr[32:40] = n.to_bytes(8, 'little'); hdr[256:266] = b'raw-pixels'
    rows = np.zeros(n, [('id', '<u8'), ('label', '<i4'), ('vec', '<f4', (d,))])
    rows['id'] = np.arange(n, dtype=np.uint64) + np.uint64(base); rows['label'] = y; rows['vec'] = x
    with open('%s.emb' % split, 'wb') as f: f.write(bytes(hdr)); f.write(rows.tobytes())
PYEOF
. "$DV2_ROOT/bench/lib.sh"
# The sides alternate run by run, so a busy neighbour on a shared machine
# slows both alike; wall time and CPU time (user + system, all threads) are
# both recorded.
: > ours.txt
: > base.txt
i=0
while [ $i -lt "$RUNS" ]; do
	/usr/bin/time -f "%e %U %S" -o t.txt dv2-probe --train train.emb --test test.emb --knn 10,20,100,200 --json > ours.json || { echo "dv2-probe failed"; exit 0; }
	awk '{print $1, $2 + $3}' t.txt >> ours.txt
	$PY "$DV2_ROOT/bench/probe_faiss.py" train.emb test.emb 1 > base1.txt || { echo "baseline failed"; exit 0; }
	sed -n 's/^BASE //p' base1.txt >> base.txt
	i=$((i + 1))
done
o=$(cut -d' ' -f1 ours.txt | median); oc=$(cut -d' ' -f2 ours.txt | median)
b=$(cut -d' ' -f1 base.txt | median); bc=$(cut -d' ' -f2 base.txt | median)
echo "dv2-probe   wall/cpu s per run: $(tr '\n' ';' < ours.txt)"
echo "faiss+numpy wall/cpu s per run: $(tr '\n' ';' < base.txt)"
cp base1.txt base_last.txt
$PY - <<'PYEOF'
import json, re
ours = {r["k"]: r["top1"] for r in json.load(open("ours.json"))["knn"]["results"]}
base = {int(m.group(1)): float(m.group(2)) for m in re.finditer(r"TOP1 k=(\d+) ([\d.]+)", open("base_last.txt").read())}
for k in sorted(ours):
    print("top-1 k=%d: dv2-probe %.2f  faiss+numpy %.2f%s" % (k, ours[k], base[k], "" if abs(ours[k] - base[k]) < 0.05 else "  DIFFERENT"))
PYEOF
echo "RESULT probe_knn_fmnist_cpu_seconds ${oc}s ${bc}s cpu speedup=$(echo "$bc $oc" | awk '{printf "%.2f", $1/$2}')"
echo "RESULT probe_knn_fmnist_60k_10k_d784_wall ${o}s ${b}s time speedup=$(echo "$b $o" | awk '{printf "%.2f", $1/$2}')"
