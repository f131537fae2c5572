# t_weights_torch.sh — weights written by our code load into the independent
# PyTorch reference (tests/ref/dinov2_ref.py) with strict key matching: the
# tensor names and shapes of dv2-train's teacher.safetensors are exactly the
# reference model's (official DINOv2 state-dict names, nothing missing,
# nothing extra), the architecture comes from the file's metadata, and the
# reference forward on dv2-embed's own preprocessed pixels gives dv2-embed's
# CLS features within 1e-4 relative.  Two architectures: MLP with the
# 0.1-offset bicubic positional embedding, and SwiGLU with 4 registers and
# the antialiased one; features at 20 px from a 16 px table (resampled).
# LayerScale is 1 so that every block weighs in the comparison.
. "$DV2_ROOT/tests/lib.sh"
"$PY" -c 'import torch, numpy' 2>/dev/null || skip "python3-torch not installed"
pack_fmnist_t10k all.dv2s
dv2-pack --ls all.dv2s | awk 'NR % 500 == 1' | cut -f1 > ids.txt
dv2-pack -q -o few.dv2s --select ids.txt all.dv2s || fail "select"
micro_cfg w.cfg 'student.layerscale = 1.0' 'train.batch_size_per_gpu = 8' \
	'train.OFFICIAL_EPOCH_LENGTH = 4' 'optim.epochs = 2'
expect_exit 0 dv2-train -q -c w.cfg --data all.dv2s -o mlp -j 2 --max-iters 2
expect_exit 0 dv2-train -q -c w.cfg --data all.dv2s -o swiglu -j 2 --max-iters 2 student.num_register_tokens=4 \
	student.interpolate_offset=0 student.interpolate_antialias=true student.ffn_layer=swiglufused
expect_exit 0 dv2-embed -q --pixels --resize 20 --size 20 -o pix.emb few.dv2s
for m in mlp swiglu; do
	expect_exit 0 dv2-embed -q -m $m/teacher.safetensors --resize 20 --size 20 -o $m.emb few.dv2s
	expect_exit 0 "$PY" - "$DV2_ROOT/tests/ref" $m/teacher.safetensors pix.emb $m.emb <<'PYEOF'
import json, struct, sys
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
import dinov2_ref as R

def safetensors(path):  # a reader of our own: json header + raw little-endian f32
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__", {})
    t = {}
    for k, v in h.items():
        assert v["dtype"] == "F32", (k, v["dtype"])
        s, e = v["data_offsets"]
        t[k] = torch.from_numpy(np.frombuffer(b, dtype="<f4", count=(e - s) // 4, offset=8 + n + s).reshape(v["shape"]).copy())
    return meta, t

def matrix(path):
    b = open(path, "rb").read()
    dim = struct.unpack_from("<I", b, 20)[0]
    return np.frombuffer(b, dtype=[("id", "<u8"), ("label", "<i4"), ("vec", "<f4", (dim,))], offset=4096)

meta, P = safetensors(sys.argv[2])
c = {"dim": int(meta["embed_dim"]), "depth": int(meta["depth"]), "heads": int(meta["num_heads"]),
     "patch": int(meta["patch_size"]), "img": int(meta["img_size"]), "reg": int(meta["num_register_tokens"]),
     "ffn": "swiglu" if meta["ffn_layer"].startswith("swiglu") else "mlp",
     "offset": float(meta["interpolate_offset"]), "antialias": int(meta["interpolate_antialias"])}
want = dict(R.backbone_shapes(c))
# strict key matching, as torch's load_state_dict(strict=True) does it
missing, unexpected = sorted(set(want) - set(P)), sorted(set(P) - set(want))
assert not missing and not unexpected, ("missing", missing, "unexpected", unexpected)
bad = [k for k in want if tuple(P[k].shape) != tuple(want[k])]
assert not bad, [(k, tuple(P[k].shape), want[k]) for k in bad]
pix, emb = matrix(sys.argv[3]), matrix(sys.argv[4])
assert (pix["id"] == emb["id"]).all() and len(pix) >= 15
x = torch.from_numpy(pix["vec"].reshape(len(pix), 3, 20, 20).copy())
with torch.no_grad():
    normed, _, _ = R.backbone(P, c, [x], [None])
cls = normed[0][:, 0].numpy()
ours = emb["vec"]
err = np.abs(cls - ours).max() / np.abs(cls).max()
print("%s: %d tensors, %d images, max relative error %.2e" % (sys.argv[2], len(P), len(pix), err))
assert err < 1e-4, err
PYEOF
	cat out.txt err.txt >&2
done
finish
