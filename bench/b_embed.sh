# b_embed.sh — dv2-embed throughput (images/s) of ViT-S/14 at 224 on the CPU,
# end to end from shards (decode, bicubic resize 256, crop 224, normalize,
# forward, CLS rows written), against the PyTorch pipeline on the same JPEGs
# in the same run: PIL decode + torchvision transforms in a DataLoader worker
# + the reference ViT of tests/ref/dinov2_ref.py in float32
# (bench/embed_torch.py).  EMBED_N images (default 64) are cut from the real
# photographs of skimage/matplotlib at ImageNet-like sizes; EMBED_RUNS runs
# (default 3) per side, medians.  Both sides use all cores.
N=${EMBED_N:-64} RUNS=${EMBED_RUNS:-3} BATCH=${EMBED_BATCH:-32}
PY=/usr/bin/python3
$PY -c 'import PIL, torch, torchvision' 2>/dev/null || { echo "skip: python3 without PIL/torch/torchvision (no baseline)"; exit 0; }
command -v dv2-pack >/dev/null || { echo "skip: dv2-pack not built"; exit 0; }
mkdir -p jpg
$PY "$DV2_ROOT/bench/make_jpegs.py" "$N" jpg || { echo "skip: cannot make images"; exit 0; }
dv2-pack -q -o ds jpg/ || { echo "skip: dv2-pack failed"; exit 0; }
. "$DV2_ROOT/bench/lib.sh"
# Thread counts: 1 (one compute thread plus one decoding worker on each side:
# the comparison that holds on a shared machine) and all cores.
for T in ${EMBED_THREADS:-1 $(nproc)}; do
	: >ours.txt
	: >base.txt
	i=0
	while [ $i -lt "$RUNS" ]; do
		t0=$(now)
		OMP_NUM_THREADS=$T OPENBLAS_NUM_THREADS=$T dv2-embed -q -f --arch vit_small -b "$BATCH" -j "$T" -o out.emb ds ||
			{ echo "dv2-embed failed"; exit 0; }
		t1=$(now)
		echo "$t0 $t1" | awk '{print $2 - $1}' >>ours.txt
		OMP_NUM_THREADS=$T OPENBLAS_NUM_THREADS=$T DV2_ROOT="$DV2_ROOT" \
			$PY "$DV2_ROOT/bench/embed_torch.py" jpg "$BATCH" 1 "$T" 2>/dev/null | sed -n 's/^BASE //p' >>base.txt
		i=$((i + 1))
	done
	o=$(median <ours.txt) b=$(median <base.txt)
	echo "threads $T: ours (s): $(tr '\n' ' ' <ours.txt)  baseline (s): $(tr '\n' ' ' <base.txt)"
	[ -n "$b" ] || { echo "baseline failed"; continue; }
	echo "RESULT embed_vits14_224_n${N}_t$T $(echo "$N $o" | awk '{printf "%.2f", $1/$2}') $(echo "$N $b" | awk '{printf "%.2f", $1/$2}') images/s speedup=$(echo "$b $o" | awk '{printf "%.2f", $1/$2}')"
done
# Decoding + preprocessing alone (no model), one thread each: dv2-embed
# --pixels against PIL open/convert + the torchvision transform in a loop.
: >ours.txt
: >base.txt
i=0
while [ $i -lt "$RUNS" ]; do
	t0=$(now)
	OMP_NUM_THREADS=1 dv2-embed -q -f --pixels -j 1 -o px.emb ds || { echo "dv2-embed --pixels failed"; exit 0; }
	t1=$(now)
	echo "$t0 $t1" | awk '{print $2 - $1}' >>ours.txt
	OMP_NUM_THREADS=1 $PY - jpg <<'PYEOF' 2>/dev/null | sed -n 's/^BASE //p' >>base.txt
import os, sys, time
import torch
torch.set_num_threads(1)
from PIL import Image
import torchvision.transforms as T
from torchvision.transforms import InterpolationMode
tf = T.Compose([T.Resize(256, interpolation=InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
                T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
d = sys.argv[1]
files = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".jpg"))
t0 = time.time()
for f in files:
    with open(f, "rb") as fh:
        tf(Image.open(fh).convert("RGB"))
print("BASE %.4f" % (time.time() - t0))
PYEOF
	i=$((i + 1))
done
o=$(median <ours.txt) b=$(median <base.txt)
echo "preprocess: ours (s): $(tr '\n' ' ' <ours.txt)  baseline (s): $(tr '\n' ' ' <base.txt)"
[ -n "$b" ] && echo "RESULT embed_preprocess_224_n${N}_t1 $(echo "$N $o" | awk '{printf "%.1f", $1/$2}') $(echo "$N $b" | awk '{printf "%.1f", $1/$2}') images/s speedup=$(echo "$b $o" | awk '{printf "%.2f", $1/$2}')"
