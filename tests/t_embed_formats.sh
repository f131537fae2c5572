# t_embed_formats.sh — dv2-embed's output forms: --zstd writes a zstd stream
# (the zstd magic) whose rows equal the plain matrix's, --npy writes .npy
# arrays with the same vectors, ids and labels, --f16 stays within half-float
# rounding, and --resume refuses --zstd (exit 2).
. "$DV2_ROOT/tests/lib.sh"
[ -x "$PY" ] && "$PY" -c 'import numpy' 2>/dev/null || skip "python3-numpy not installed"
FM=/usr/share/datasets/fashion-mnist
[ -f "$FM/t10k-images-idx3-ubyte.gz" ] || skip "dataset-fashion-mnist not installed"
dv2-pack -q -o all.dv2s --idx-labels "$FM/t10k-labels-idx1-ubyte.gz" "$FM/t10k-images-idx3-ubyte.gz" || fail "pack"
dv2-pack --ls all.dv2s | head -n 200 | cut -f1 > ids.txt
dv2-pack -q -o s.dv2s --select ids.txt all.dv2s || fail "select"
expect_exit 0 dv2-embed -q --pixels --resize 28 --size 28 -o plain.emb s.dv2s
expect_exit 0 dv2-embed -q --pixels --resize 28 --size 28 --zstd --npy x.npy -o z.emb s.dv2s
expect_exit 0 dv2-embed -q --pixels --resize 28 --size 28 --f16 -o h.emb s.dv2s
expect_eq "$(head -c 4 z.emb | od -An -tx1 | tr -d ' ')" "28b52ffd" "zstd magic"
"$PY" - <<'PYEOF' || fail "forms differ"
import numpy as np, struct, sys
def load(path):
    b = open(path, "rb").read()
    if b[:4] == b"\x28\xb5\x2f\xfd":
        import subprocess
        b = subprocess.run(["zstd", "-dc", path], capture_output=True, check=True).stdout
    dim = struct.unpack_from("<I", b, 20)[0]
    return b, dim
b, dim = load("plain.emb")
dt = np.dtype([("id", "<u8"), ("label", "<i4"), ("vec", "<f4", (dim,))])
p = np.frombuffer(b, dtype=dt, offset=4096)
bz, _ = load("z.emb")
z = np.frombuffer(bz, dtype=dt, offset=4096)
assert len(p) == 200 and len(z) == 200, (len(p), len(z))
assert (p["id"] == z["id"]).all() and (p["label"] == z["label"]).all() and (p["vec"] == z["vec"]).all()
x = np.load("x.npy"); ids = np.load("x.ids.npy"); lab = np.load("x.labels.npy")
assert x.dtype == np.float32 and x.shape == (200, dim)
assert (x == p["vec"]).all() and (ids == p["id"]).all() and (lab == p["label"]).all()
bh, _ = load("h.emb")
h = np.frombuffer(bh, dtype=np.dtype([("id", "<u8"), ("label", "<i4"), ("vec", "<f2", (dim,))]), offset=4096)
err = np.abs(h["vec"].astype(np.float32) - p["vec"]).max()
assert err <= 2e-3 * max(1.0, np.abs(p["vec"]).max()), err
PYEOF
ok
expect_exit 0 dv2-probe --train z.emb --test h.emb --knn 1
expect_grep "100" out.txt
expect_exit 2 dv2-embed -q --pixels --zstd --resume -o r.emb s.dv2s
expect_grep "zstd" err.txt
finish
