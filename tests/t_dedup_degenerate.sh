# t_dedup_degenerate.sh — dv2-dedup warns when the features cannot tell
# images apart: a pool of (nearly) identical rows, as a random-init class
# token used to give, is called degenerate; a pool where one group swallows
# most images gets a milder warning; a pool of distinct rows gets neither.
# The outputs are written and the exit status stays 0.
. "$DV2_ROOT/tests/lib.sh"
$PY -c 'import numpy' 2>/dev/null || skip "python3-numpy not installed"
$PY - <<'PYEOF' || fail "could not write the matrices"
import struct, numpy as np
def write(path, x):
    n, d = x.shape
    h = bytearray(4096)
    h[0:8] = b"DV2MATRX"
    struct.pack_into("<IIIIII", h, 8, 1, 4096, 1, d, 12 + 4 * d, 0)
    struct.pack_into("<Q", h, 32, n)
    rows = np.zeros(n, [("id", "<u8"), ("label", "<i4"), ("vec", "<f4", (d,))])
    rows["id"] = np.arange(1, n + 1); rows["label"] = -1; rows["vec"] = x
    open(path, "wb").write(bytes(h) + rows.tobytes())
r = np.random.default_rng(5)
base = r.normal(size=16)
write("same.emb", base + 1e-4 * r.normal(size=(33, 16)))
write("distinct.emb", r.normal(size=(40, 16)))
write("lumped.emb", np.vstack([base + 0.3 * r.normal(size=(30, 16)), r.normal(size=(10, 16))]))
PYEOF
expect_exit 0 dv2-dedup -o same.keep same.emb
expect_grep "warning: degenerate pool: the median similarity .* is 1.0000" err.txt
expect_eq "$(wc -l <same.keep | tr -d ' ')" 1 "kept of the degenerate pool"
expect_exit 0 dv2-dedup -o lumped.keep lumped.emb
expect_grep "warning: one duplicate group holds [0-9]* of 40 images" err.txt
expect_nogrep "degenerate" err.txt
expect_exit 0 dv2-dedup -o distinct.keep distinct.emb
expect_nogrep "warning" err.txt
finish
