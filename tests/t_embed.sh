# t_embed.sh — dv2-embed end to end: a packed small set (made by
# build/tests/test_embed --make-dataset, one corrupt image) embedded with
# --pixels and with a random-init and a saved small ViT; matrix shape from the
# file size; the corrupt image warned and counted (fatal with --strict); a
# shard stream on stdin; --resume after a truncated row and after a real
# SIGKILL gives the same rows as one uninterrupted run; a weight file with a
# wrong tensor is an error naming it; usage errors; --pca pictures.
. "$DV2_ROOT/tests/lib.sh"
H="$DV2_BUILD/tests/test_embed"
[ -x "$H" ] || skip "test_embed not built"
E=dv2-embed
"$H" --make-dataset ds 13 --corrupt 5 || fail "make dataset"

rowsof() { # FILE DIM -> number of rows from the size (f32)
	sz=$(wc -c <"$1"); echo $(( (sz - 4096) / (12 + 4 * $2) ))
}

# --pixels: 12 good images, the corrupt one skipped with a warning naming it.
expect_exit 0 $E --pixels --size 16 --resize 18 -o px.emb ds
expect_grep "warning: skipping img/00005.ppm" err.txt
expect_grep "embedded 12 images (1 skipped as corrupt" err.txt
expect_eq "$(rowsof px.emb 768)" 12 "pixel rows"
expect_eq "$(head -c 8 px.emb)" "DV2MATRX" "matrix magic"
# --strict: the corrupt image is an error naming it, and no output is left.
expect_exit 1 $E --strict --pixels --size 16 --resize 18 -o strict.emb ds
expect_grep "error: .*img/00005.ppm" err.txt
[ -e strict.emb ] && fail "strict run left strict.emb" || ok
# Same rows when the same data arrives as shard files and as a stream on stdin.
expect_exit 0 $E --pixels --size 16 --resize 18 -o files.emb ds/shard-000000.dv2s ds/shard-000001.dv2s
cat ds/shard-000000.dv2s | $E --pixels --size 16 --resize 18 - >s0.emb 2>err.txt || fail "stdin stream"
expect_eq "$(rowsof s0.emb 768)" 6 "rows from the first shard on stdin"
tail -c +4097 px.emb >a.rows; tail -c +4097 files.emb >b.rows
expect_same a.rows b.rows
# numpy reads it in one line, rows are normalized pixels
if $PY -c 'import numpy' 2>/dev/null; then
	$PY - px.emb <<'EOF' >np.txt 2>&1 || fail "numpy check: $(cat np.txt)"
import sys, numpy as np
a = np.fromfile(sys.argv[1], [('id','<u8'),('label','<i4'),('vec','<f4',(768,))], offset=4096)
assert a.shape == (12,), a.shape
assert set(a['label'].tolist()) == {0, 1, 2}
v = a['vec']
assert np.isfinite(v).all() and v.min() >= -2.2 and v.max() <= 2.7
EOF
	ok
fi

# Resume: a run killed mid-row (simulated by truncation) then resumed gives
# the rows of one full run.
"$H" --make-dataset big 300 || fail "make big dataset"
expect_exit 0 $E -q --pixels --size 32 --resize 36 -o full.emb big
tail -c +4097 full.emb >full.rows
row=$((12 + 4 * 3 * 32 * 32))
expect_exit 0 $E -q --resume --pixels --size 32 --resize 36 -o part.emb big
head -c $((4096 + 57 * row + row / 2)) part.emb >cut.emb && mv cut.emb part.emb
expect_exit 0 $E --resume --pixels --size 32 --resize 36 -o part.emb big
expect_grep "already done" err.txt
expect_grep "embedded 243 images (0 skipped as corrupt, 57 already done)" err.txt
tail -c +4097 part.emb >part.rows
expect_same part.rows full.rows
# A real SIGKILL in the middle of a --resume run (batch 1, a row synced per batch).
$E -q --resume --pixels --size 32 --resize 36 -b 1 -j 1 -o killed.emb big 2>/dev/null &
pid=$!
i=0
while [ $i -lt 400 ]; do
	sz=$( (wc -c <killed.emb) 2>/dev/null || echo 0)
	[ "$sz" -gt $((4096 + 20 * row)) ] && break
	sleep 0.01; i=$((i + 1))
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
echo "killed at $(wc -c <killed.emb) bytes" >&2
expect_exit 0 $E --resume --pixels --size 32 --resize 36 -o killed.emb big
tail -c +4097 killed.emb >killed.rows
expect_same killed.rows full.rows
# Resume refuses a file made with other features.
expect_exit 0 $E --resume --pixels --size 32 --resize 36 -o full.emb ds
expect_exit 1 $E --resume --pixels --size 16 --resize 36 -o full.emb ds

# ViT: a random-init small ViT, and the same weights saved to a file.
expect_exit 0 $E --arch vit_small --seed 7 --size 28 --resize 32 --features clsavg -o r.emb ds
expect_eq "$(rowsof r.emb 768)" 12 "clsavg rows"
"$H" --write-model m.safetensors || fail "write model"
expect_exit 0 $E -m m.safetensors --size 28 --resize 32 --features clsavg -o m.emb ds
tail -c +4097 r.emb >a.rows; tail -c +4097 m.emb >b.rows
if cmp -s a.rows b.rows; then ok; else
	$PY -c 'import numpy' 2>/dev/null && $PY - r.emb m.emb <<'EOF' || fail "saved model gives other rows than the random init it was saved from"
import sys, numpy as np
t = [('id','<u8'),('label','<i4'),('vec','<f4',(768,))]
a, b = (np.fromfile(f, t, offset=4096) for f in sys.argv[1:3])
assert (a['id'] == b['id']).all()
assert np.abs(a['vec'] - b['vec']).max() < 1e-4
EOF
fi
expect_exit 0 $E -m m.safetensors --size 28 --layers 4 --normalize -o l.emb ds
expect_eq "$(rowsof l.emb 1920)" 12 "linear-probe layout rows (4*384 + 384)"
expect_exit 0 $E -q -m m.safetensors --size 28 --pca pca -o pca.emb ds
expect_eq "$(ls pca | wc -l)" 12 "PCA pictures"
expect_eq "$(head -c 2 "pca/$(ls pca | head -n 1)" | od -An -tx1 | tr -d ' ')" "ffd8" "PCA picture is a JPEG"
# A weight file that does not fit the architecture: the error names the tensor.
"$H" --write-model bad.safetensors --bad blocks.2.mlp.fc1.weight || fail "write bad model"
expect_exit 1 $E -m bad.safetensors --size 28 -o bad.emb ds
expect_grep "error: .*blocks.2.mlp.fc1.weight" err.txt
[ -e bad.emb ] && fail "bad model left bad.emb" || ok
expect_exit 1 $E -m no-such.safetensors -o x.emb ds
expect_exit 1 $E --pixels -o x.emb no-such-dataset

# Usage errors and the device option.
expect_exit 2 $E --pixels
expect_exit 2 $E --pixels --arch vit_small -o x.emb ds
expect_exit 2 $E --pixels --features cls -o x.emb ds
expect_exit 2 $E --arch vit_small --features bogus -o x.emb ds
expect_exit 2 $E --pixels --size 0 -o x.emb ds
expect_exit 2 $E --pixels --resume ds
expect_empty out.txt
expect_exit 2 $E --pixels --device cuda -o x.emb ds
expect_grep "cuda" err.txt
expect_exit 2 $E --arch vit_small --size 30 -o x.emb ds
expect_grep "multiple of the patch size" err.txt
expect_exit 2 $E -m m.safetensors --size 30 -o x.emb ds
expect_grep "multiple of the patch size" err.txt
[ -e x.emb ] && fail "a refused --size left x.emb" || ok

# End to end on real photographs: dv2-pack + dv2-embed --pixels equal PIL +
# torchvision's evaluation transform (to 1e-6: the pixels are bit-exact, see
# test_image --parity) for every image, matched by id.
SK=/usr/lib/python3/dist-packages/skimage/data
if command -v dv2-pack >/dev/null && $PY -c 'import torchvision, numpy' 2>/dev/null && [ -d "$SK" ]; then
	mkdir photos
	for f in rocket.jpg hubble_deep_field.jpg chelsea.png camera.png horse.png; do
		[ -f "$SK/$f" ] && cp "$SK/$f" photos/
	done
	dv2-pack -q -o photos.ds photos/ || fail "dv2-pack photos"
	expect_exit 0 $E --pixels -o photos.emb photos.ds
	dv2-pack --ls photos.ds >photos.ls 2>/dev/null || fail "dv2-pack --ls"
	cat >pp.py <<'PYEOF'
import os, sys, numpy as np
from PIL import Image
import torchvision.transforms as T
from torchvision.transforms import InterpolationMode
D = 3 * 224 * 224
a = np.fromfile(sys.argv[1], [('id', '<u8'), ('label', '<i4'), ('vec', '<f4', (D,))], offset=4096)
keys = dict((int(l.split("\t")[0]), l.split("\t")[1]) for l in open(sys.argv[2]))
tf = T.Compose([T.Resize(256, interpolation=InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
                T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
assert len(a) == len(os.listdir(sys.argv[3])), len(a)
for r in a:
    k = keys[int(r['id'])]
    ref = tf(Image.open(os.path.join(sys.argv[3], k)).convert("RGB")).numpy().ravel()
    d = float(np.abs(ref - r['vec']).max())
    assert d <= 1e-6, (k, d)
print("ok", len(a))
PYEOF
	if $PY pp.py photos.emb photos.ls photos >pp.txt 2>&1; then ok; else fail "pixel parity with torchvision"; cat pp.txt >&2; fi
else
	echo "note: end-to-end pixel parity skipped (needs dv2-pack, torchvision, skimage data)" >&2
fi
finish
