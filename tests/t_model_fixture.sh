# t_model_fixture.sh — the committed model fixture (tests/ref/fixtures/model.bin)
# is what tests/ref/dinov2_ref.py writes today: regenerate it into the temp
# directory and compare every array (names, shapes, values to 1e-6 relative;
# float64 reductions may differ in the last bits between BLAS builds).
# Skips without torch.  If it fails, regenerate the fixture:
#   /usr/bin/python3 tests/ref/dinov2_ref.py tests/ref/fixtures/model.bin
. "$DV2_ROOT/tests/lib.sh"
"$PY" -c "import torch" 2>/dev/null || skip "no torch"
expect_exit 0 "$PY" "$DV2_ROOT/tests/ref/dinov2_ref.py" new.bin
cat > cmp.py <<'PYEOF'
import struct, sys
import numpy as np
def load(p):
    b = open(p, "rb").read()
    assert b[:8] == b"DV2REF01"
    n, = struct.unpack_from("<I", b, 8); o = 12; out = {}
    for _ in range(n):
        l, = struct.unpack_from("<I", b, o); o += 4
        name = b[o:o + l].decode(); o += l
        nd, = struct.unpack_from("<I", b, o); o += 4
        dims = struct.unpack_from("<%dI" % nd, b, o); o += 4 * nd
        cnt = int(np.prod(dims)) if nd else 1
        out[name] = np.frombuffer(b, "<f4", cnt, o).reshape(dims); o += 4 * cnt
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
bad = sorted(set(a) ^ set(b))
for k in sorted(set(a) & set(b)):
    if a[k].shape != b[k].shape or not np.allclose(a[k], b[k], rtol=1e-6, atol=1e-6 * (np.abs(b[k]).max() + 1e-30)):
        bad.append(k)
if bad:
    print("stale arrays:", " ".join(bad[:10]), file=sys.stderr)
    sys.exit(1)
PYEOF
expect_exit 0 "$PY" cmp.py new.bin "$DV2_ROOT/tests/ref/fixtures/model.bin"
finish
