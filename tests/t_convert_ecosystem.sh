#!/bin/sh
# t_convert_ecosystem.sh — models of the ecosystem, built here with random
# weights (no downloads), through scripts/convert-weights and dv2-embed give
# that model's own features within 1e-4 relative, at its native size and at
# a larger one (where the positional table is resampled the model's own
# way): Hugging Face transformers Dinov2Model (plain bicubic to the exact
# size) and Dinov2WithRegistersModel, timm vit_small_patch14_reg4_dinov2
# (reg_token, a position table without the class row) and
# vit_giant_patch14_dinov2 (SwiGLUPacked fc1/fc2) at a reduced width and
# depth, and a plain timm vit_small_patch14_dinov2 with --timm.  Each part
# runs when its module (transformers, timm) is importable; the test skips
# when neither is.
. "$DV2_ROOT/tests/lib.sh"
CONV="$DV2_ROOT/scripts/convert-weights"
$PY -c 'import torch' 2>/dev/null || skip "/usr/bin/python3 without torch"
HAVE_HF=0 HAVE_TIMM=0
$PY -c 'from transformers import Dinov2Model' 2>/dev/null && HAVE_HF=1
$PY -c 'import timm' 2>/dev/null && HAVE_TIMM=1
[ $HAVE_HF = 1 ] || [ $HAVE_TIMM = 1 ] || skip "neither transformers nor timm importable"
pack_fmnist_t10k all.dv2s
dv2-pack --ls all.dv2s | awk 'NR % 1000 == 1' | cut -f1 > ids.txt
dv2-pack -q -o few.dv2s --select ids.txt all.dv2s || fail "select"

cat > models.py <<'PYEOF'
# The models of this test: D 64, 2 blocks, 2 heads, patch 7, a 28 px table;
# every parameter random (seeded) so that each one weighs in the features.
import sys
import torch

def randomize(m, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in m.named_parameters():
            r = torch.randn(p.shape, generator=g) * 0.2
            p.copy_(r + 1 if ("norm" in n and n.endswith("weight")) else r)
    return m.eval()

def hf(kind):
    import transformers as T
    kw = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256,
              image_size=28, patch_size=7, layerscale_value=1.0)
    if kind == "hf_reg":
        return randomize(T.Dinov2WithRegistersModel(T.Dinov2WithRegistersConfig(num_register_tokens=4, **kw)), 2)
    return randomize(T.Dinov2Model(T.Dinov2Config(**kw)), 1)

def timm_model(kind):
    import timm
    kw = dict(pretrained=False, embed_dim=64, depth=2, num_heads=2, patch_size=7, img_size=28,
              init_values=1.0, dynamic_img_size=True, num_classes=0)
    if kind == "timm_giant":
        # SwiGLUPacked: fc1 of 2 x 176 rows (the official SwiGLU width for D 64)
        return randomize(timm.create_model("vit_giant_patch14_dinov2", mlp_ratio=5.5, **kw), 4)
    if kind == "timm_plain":
        return randomize(timm.create_model("vit_small_patch14_dinov2", **kw), 5)
    return randomize(timm.create_model("vit_small_patch14_reg4_dinov2", **kw), 3)

def make(kind):
    return hf(kind) if kind.startswith("hf") else timm_model(kind)

def features(m, kind, x):
    with torch.no_grad():
        if kind.startswith("hf"):
            return m(pixel_values=x).pooler_output.numpy()
        return m.forward_features(x)[:, 0].numpy()
PYEOF

cat > save.py <<'PYEOF'
import sys
import torch
sys.path.insert(0, ".")
import models
kind = sys.argv[1]
m = models.make(kind)
if kind.startswith("hf"):
    m.save_pretrained(kind)  # config.json + model.safetensors (or pytorch_model.bin)
else:
    torch.save(m.state_dict(), kind + ".pth")
PYEOF

cat > compare.py <<'PYEOF'
import struct, sys
import numpy as np
import torch
sys.path.insert(0, ".")
import models
kind, size, pix_path, emb_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def matrix(path):
    b = open(path, "rb").read()
    dim = struct.unpack_from("<I", b, 20)[0]
    return np.frombuffer(b, dtype=[("id", "<u8"), ("label", "<i4"), ("vec", "<f4", (dim,))], offset=4096)
m = models.make(kind)  # the same seeded weights as the saved model
if kind.startswith("hf"):
    import transformers
    m = type(m).from_pretrained(kind).eval()
else:
    m.load_state_dict(torch.load(kind + ".pth"))
pix, emb = matrix(pix_path), matrix(emb_path)
assert (pix["id"] == emb["id"]).all() and len(pix) >= 8
x = torch.from_numpy(pix["vec"].reshape(len(pix), 3, size, size).copy())
ref = models.features(m, kind, x)
err = np.abs(ref - emb["vec"]).max() / np.abs(ref).max()
print("%s at %d px: %d images, max relative error %.2e" % (kind, size, len(pix), err))
assert err < 1e-4, err
PYEOF

for s in 28 42; do
	expect_exit 0 dv2-embed -q --pixels --resize $s --size $s -o pix$s.emb few.dv2s
done
kinds=""
if [ $HAVE_HF = 1 ]; then
	kinds="hf"
	$PY -c 'from transformers import Dinov2WithRegistersModel' 2>/dev/null && kinds="$kinds hf_reg"
fi
[ $HAVE_TIMM = 1 ] && kinds="$kinds timm_reg4 timm_giant timm_plain"
for k in $kinds; do
	expect_exit 0 $PY save.py $k
	case $k in hf*) in=$k;; *) in=$k.pth;; esac
	# timm stores no head count: D 64 would give 1
	flag=; case $k in timm*) flag="--num-heads 2";; esac
	[ $k = timm_plain ] && flag="$flag --timm"
	expect_exit 0 $PY "$CONV" $flag $in $k.st
	cat err.txt >&2
	for s in 28 42; do
		expect_exit 0 dv2-embed -q -m $k.st --resize $s --size $s -o $k.$s.emb few.dv2s
		expect_exit 0 $PY compare.py $k $s pix$s.emb $k.$s.emb
		cat out.txt err.txt >&2
	done
done
finish
