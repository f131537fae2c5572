# t_sscd.sh — dv2-embed runs SSCD copy-detection models: tests/ref/sscd_ref.py
# builds a torchvision ResNet-50 with GeM (p = 3), a 2048 -> 512 projection
# and L2 norm in the released files' layout (TorchScript module Model with
# the ResNet under "backbone."; the torchvision state dict), random weights
# with batch-norm statistics measured on the images and perturbed;
# scripts/convert-weights converts both files; dv2-embed embeds real JPEGs of
# eight sizes; every row matches PyTorch on SSCD's square preprocessing done
# by PIL / torchvision (Resize([288, 288]), ToTensor, Normalize) within 1e-5
# relative (L2 of the row).  The residue is float32 rounding: PyTorch's own
# float32 forward is as far from a float64 forward as ours (the check prints
# both).  Grouped convolutions (ResNeXt) are checked on torchvision's
# resnext50_32x4d, on a small ResNeXt with group widths that are not
# multiples of 4, and on sscd_disc_large's ResNeXt-101 32x4d in Classy
# Vision's layout (TorchScript and .classy.pt).  Also: both converted files give the same rows, the CLI refuses
# options an SSCD model cannot take, and a missing tensor is named.
. "$DV2_ROOT/tests/lib.sh"
CONV="$DV2_ROOT/scripts/convert-weights"
REF="$DV2_ROOT/tests/ref/sscd_ref.py"
$PY -c 'import torch, torchvision, PIL, numpy' 2>/dev/null || skip "/usr/bin/python3 without torch/torchvision/PIL"
$PY "$REF" make . >py.log 2>&1
rc=$?
[ $rc = 77 ] && skip "$(tail -n 1 py.log)"
expect_eq "$rc" 0 "sscd_ref.py make"
[ $rc = 0 ] || { sed 's/^/  py: /' py.log >&2; finish; }
expect_exit 0 "$CONV" sscd.torchscript.pt ts.safetensors
expect_grep "sscd_resnet50 layers=3,4,6,3 groups=1 width=64 dims=512 gem_p=3.0" err.txt
expect_exit 0 "$CONV" -q sscd.torchvision.pt tv.safetensors
expect_exit 0 dv2-pack -q -o img.ds img
dv2-pack --ls img.ds >ls.txt
expect_exit 0 dv2-embed -m ts.safetensors -j 2 -o ts.emb img.ds
expect_grep "embedded 8 images" err.txt
expect_exit 0 "$PY" "$REF" check . ts.emb ls.txt
sed 's/^/  /' out.txt >&2
expect_grep "max relative error" out.txt
# the torchvision state dict converts to the same weights: the same rows, bit for bit
expect_exit 0 dv2-embed -q -m tv.safetensors -j 2 -o tv.emb img.ds
tail -c +4097 ts.emb >a.bin
tail -c +4097 tv.emb >b.bin
expect_same a.bin b.bin
# another square side goes through the same path
expect_exit 0 dv2-embed -q -m ts.safetensors --size 320 -o s320.emb img.ds
expect_exit 0 "$PY" "$REF" check . s320.emb ls.txt 320
dv2-embed -q -m ts.safetensors -o hdr.emb img.ds && head -c 4096 hdr.emb | tr -c '[:print:]\n' '\n' >hdr.txt
expect_grep "model=sscd" hdr.txt
expect_grep "bilinear-antialias square" hdr.txt
# the shorter side to 288, aspect kept (the README's small_288), one image
# per forward
expect_exit 0 dv2-embed -q -m ts.safetensors --keep-aspect -j 2 -o short.emb img.ds
SSCD_TF=short expect_exit 0 "$PY" "$REF" check . short.emb ls.txt
sed 's/^/  /' out.txt | tail -n 2 >&2
# images of one size share a forward: beside each photograph, another one
# resized to its size (8 sizes, 2 images each, one batch); every row must
# still be its own image's
mkdir -p pairs/img
ln -sf ../sscd.torchscript.pt pairs/sscd.torchscript.pt
$PY - <<'PYEOF'
import glob, os, shutil
from PIL import Image
f = sorted(glob.glob("img/*.jpg"))
for i, a in enumerate(f):
    shutil.copy(a, "pairs/img")
    b = Image.open(f[(i + 1) % len(f)]).convert("RGB").resize(Image.open(a).size, Image.BILINEAR)
    b.save("pairs/img/%s_pair.jpg" % os.path.basename(a)[:-4], quality=95)
PYEOF
expect_exit 0 dv2-pack -q -o pairs.ds pairs/img
dv2-pack --ls pairs.ds >pairs.ls
expect_exit 0 dv2-embed -q -m ts.safetensors --keep-aspect -j 2 -o pairs.emb pairs.ds
SSCD_TF=short expect_exit 0 "$PY" "$REF" check pairs pairs.emb pairs.ls
sed 's/^/  /' out.txt | tail -n 1 >&2
expect_exit 2 dv2-embed --arch vit_small --keep-aspect -o x.emb img.ds
# grouped convolutions: torchvision's resnext50_32x4d (32 groups of 4) with GeM
# and a 64-d projection, at 128 px.  Bound 2e-5: here the two float32
# forwards differ by up to 1.3e-5 while each is within 8.5e-6 of float64
# (fewer, smaller rows: 64 dims share the rounding of 2048 features).
expect_exit 0 "$PY" "$REF" make-resnext .
expect_exit 0 "$CONV" resnext.torchscript.pt rx.safetensors
expect_grep "sscd_resnext50_32x4d layers=3,4,6,3 groups=32 width=4 dims=64" err.txt
expect_exit 0 dv2-embed -q -m rx.safetensors --size 128 -j 2 -o rx.emb img.ds
SSCD_TOL=2e-5 expect_exit 0 "$PY" "$REF" check . rx.emb ls.txt 128 resnext.torchscript.pt
sed 's/^/  /' out.txt | tail -n 2 >&2
# group widths that are not multiples of 4 (3, 6, 12, 24 channels: the
# grouped product's leftover rows), strided grouped convolutions, 96 px
expect_exit 0 "$PY" "$REF" make-odd .
expect_exit 0 "$CONV" odd.torchscript.pt odd.safetensors
expect_grep "sscd_resnet layers=1,2,1,1 groups=2 width=3 dims=32" err.txt
expect_exit 0 dv2-embed -q -m odd.safetensors --size 96 -j 2 -o odd.emb img.ds
expect_exit 0 "$PY" "$REF" check . odd.emb ls.txt 96 odd.torchscript.pt
sed 's/^/  /' out.txt | tail -n 1 >&2
# sscd_disc_large's shape: a ResNeXt-101 32x4d ([3, 4, 23, 3], 32 groups of
# 4) under Classy Vision's names (backbone.initial_block._module.*,
# backbone.blocks.S.blockS-J.convolutional_block.*, embeddings.1 the 2048 ->
# 1024 projection), as TorchScript and as a .classy.pt state dict, five
# images at 128 px.  The residual branches' last batch-norm scales are 0.5x
# (Classy Vision trains this trunk from zero there, zero_init_bn_residuals):
# with unit scales 33 random blocks amplify float32 rounding to 1.4e-5
# (PyTorch against float64) and the two float32 forwards differ by 2e-5.
# No float64 forward here (PyTorch takes ~20 s for it); docs/RESULTS.md has
# those figures.
expect_exit 0 "$PY" "$REF" make-large .
expect_exit 0 "$CONV" large/large.torchscript.pt large.safetensors
expect_grep "sscd_resnext101_32x4d layers=3,4,23,3 groups=32 width=4 dims=1024 gem_p=3.0" err.txt
expect_exit 0 "$CONV" -q large/large.classy.pt large-classy.safetensors
expect_exit 0 dv2-pack -q -o large.ds large/img
dv2-pack --ls large.ds >large-ls.txt
expect_exit 0 dv2-embed -q -m large.safetensors --size 128 -j 2 -o large.emb large.ds
SSCD_F64=0 expect_exit 0 "$PY" "$REF" check large large.emb large-ls.txt 128 large.torchscript.pt
sed 's/^/  /' out.txt | tail -n 2 >&2
# Classy Vision's older layout (blocks.S.J._module.*) gives the same file
mkdir old
"$PY" -c 'import re, sys, torch; sd = torch.load(sys.argv[1]); torch.save({re.sub(r"blocks\.(\d+)\.block\d+-(\d+)\.", r"blocks.\1.\2._module.", k): v for k, v in sd.items()}, sys.argv[2])' large/large.classy.pt old/large.classy.pt
expect_exit 0 "$CONV" -q old/large.classy.pt old.safetensors
expect_same large-classy.safetensors old.safetensors
rm -rf old old.safetensors
expect_exit 0 dv2-embed -q -m large-classy.safetensors --size 128 -j 2 -o large2.emb large.ds
tail -c +4097 large.emb >a.bin
tail -c +4097 large2.emb >b.bin
expect_same a.bin b.bin
head -c 4096 large.emb | tr -c '[:print:]\n' '\n' >hdr.txt
expect_grep "arch=sscd_resnext101_32x4d layers 3,4,23,3 groups 32 width 4 dims 1024" hdr.txt
# a grouped convolution of the wrong shape is named with both shapes
"$PY" - large.safetensors bad.safetensors <<'PYEOF'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
h["__metadata__"]["resnet_groups"] = "16"  # 16 groups of 8: the same width, conv2 (128, 8, 3, 3)
h["__metadata__"]["resnet_width"] = "8"
hb = json.dumps(h).encode()
hb += b" " * (-len(hb) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
PYEOF
expect_exit 1 dv2-embed -m bad.safetensors --size 128 -o x.emb large.ds
expect_grep "layer1.0.conv2.weight' has shape \[128, 4, 3, 3\], expected \[128, 8, 3, 3\]" err.txt
rm -rf large large.safetensors large-classy.safetensors bad.safetensors
# options an SSCD model cannot take are usage errors
expect_exit 2 dv2-embed -m ts.safetensors --features avgpool -o x.emb img.ds
expect_grep "SSCD model" err.txt
expect_exit 2 dv2-embed -m ts.safetensors --resize 300 -o x.emb img.ds
expect_exit 2 dv2-embed -m ts.safetensors --size 16 -o x.emb img.ds
# a file without one of its tensors: exit 1 naming it
"$PY" - ts.safetensors cut.safetensors <<'PYEOF'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
del h["layer3.2.bn2.running_var"]
hb = json.dumps(h).encode()
hb += b" " * (-len(hb) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
PYEOF
expect_exit 1 dv2-embed -m cut.safetensors -o x.emb img.ds
expect_grep "layer3.2.bn2.running_var is missing" err.txt
[ -e x.emb ] && fail "x.emb left behind" || ok
# the converter refuses a state dict that is neither a ViT nor a ResNet part
"$PY" -c 'import torch; torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1)}, "half.pt")'
expect_exit 1 "$CONV" half.pt half.safetensors
expect_grep "convert-weights: error" err.txt
finish
