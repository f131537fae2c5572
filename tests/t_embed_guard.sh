# t_embed_guard.sh — dv2-embed refuses to mix or break data: --resume checks
# what made the rows already there (weights digest, resize, ... named with
# both values) and not the model's file name; non-finite weights are refused
# naming the tensor; a killed run's temporary is removed by the next run; an
# empty or partial header is started over with --resume; a random-init
# baseline gives rows that differ per image; the input size follows the
# model's recorded img_size; inputs that are not datasets, and weights that
# are not dv2 safetensors, get a hint with the command that fixes them; an
# input given twice is warned about; progress shows a total and an ETA.
. "$DV2_ROOT/tests/lib.sh"
H="$DV2_BUILD/tests/test_embed"
[ -x "$H" ] || skip "test_embed not built"
E=dv2-embed
"$H" --make-dataset ds 13 || fail "make dataset"
rowsof() { # FILE DIM -> rows from the size (f32)
	sz=$(wc -c <"$1"); echo $(( (sz - 4096) / (12 + 4 * $2) ))
}

# 1. Resume checks what made the rows.  Two different weight files under the
# same name: the second is refused, naming the weights digest.
mkdir a b
"$H" --write-model a/model.safetensors || fail "write model a"
"$H" --write-model b/model.safetensors --img-size 28 || fail "write model b"
expect_exit 0 $E -q -m a/model.safetensors --size 28 -o r.emb ds
expect_exit 1 $E --resume -m b/model.safetensors --size 28 -o r.emb ds
expect_grep "error: .*r.emb: .*weights=xxh64:[0-9a-f]\{16\}, .*weights=xxh64:[0-9a-f]\{16\}" err.txt
# other preprocessing: named with both values
expect_exit 1 $E --resume -m a/model.safetensors --size 28 --resize 40 -o r.emb ds
expect_grep "resize=32.*resize=40" err.txt
expect_exit 1 $E --resume -m a/model.safetensors --size 28 --f16 -o r.emb ds
expect_exit 1 $E --resume --arch vit_small --seed 8 --size 28 -o r.emb ds
# the same weights under another name resume fine (nothing left to do)
cp a/model.safetensors renamed.safetensors
expect_exit 0 $E --resume -m renamed.safetensors --size 28 -o r.emb ds
expect_grep "0 images .*13 already done" err.txt
expect_eq "$(rowsof r.emb 384)" 13 "rows after the refused resumes"
head -c 4096 r.emb | tr '\0' '\n' | grep -a "^size=28" >/dev/null && ok || fail "params not in the header"

# 4. Non-finite weights are refused at load, naming the tensor; no output.
"$H" --write-model nan.safetensors --nan blocks.1.attn.qkv.weight || fail "write nan model"
expect_exit 1 $E -m nan.safetensors --size 28 -o nan.emb ds
expect_grep "error: .*nan.safetensors: tensor blocks.1.attn.qkv.weight: element 3 is NaN" err.txt
[ -e nan.emb ] && fail "nan model left nan.emb" || ok

# 7. A run killed without --resume leaves its temporary; the next run onto
# the same output removes it.
"$H" --make-dataset big 200 || fail "make big dataset"
$E -q --pixels --size 32 -b 1 -j 1 -o k.emb big 2>/dev/null &
pid=$!
i=0
while [ $i -lt 500 ] && ! [ -s ".k.emb.tmp.$pid" ]; do sleep 0.01; i=$((i + 1)); done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
[ -e ".k.emb.tmp.$pid" ] && ok || fail "no temporary of the killed run (it finished?)"
expect_exit 0 $E -q --pixels --size 32 -o k.emb ds
expect_eq "$(ls -a | grep -c '^\.k\.emb\.tmp\.')" 0 "temporaries left after the next run"
# --resume onto an empty file or part of a header starts over, and says so.
: >z.emb
expect_exit 0 $E --resume --pixels --size 16 -o z.emb ds
expect_eq "$(rowsof z.emb 768)" 13 "rows after resuming an empty file"
head -c 1000 z.emb >p.emb
expect_exit 0 $E --resume --pixels --size 16 -o p.emb ds
expect_grep "warning: p.emb: only 1000 bytes of a header .*starting over" err.txt
expect_eq "$(rowsof p.emb 768)" 13 "rows after resuming a partial header"
printf 'not a matrix' >t.emb
expect_exit 1 $E --resume --pixels --size 16 -o t.emb ds

# 9. A random-init baseline: the rows differ from image to image.
expect_exit 0 $E -q --arch vit_small --seed 3 --size 28 -o rand.emb ds
if $PY -c 'import numpy' 2>/dev/null; then
	$PY - rand.emb <<'EOF' || fail "random-init rows are (nearly) the same for every image"
import sys, numpy as np
m = np.fromfile(sys.argv[1], [('id', '<u8'), ('label', '<i4'), ('vec', '<f4', (384,))], offset=4096)
x = m['vec'].astype(np.float64)
x /= np.linalg.norm(x, axis=1, keepdims=True)
s = x @ x.T
np.fill_diagonal(s, -1)
print("median nearest-neighbour cosine", np.median(s.max(1)))
assert np.median(s.max(1)) < 0.99
EOF
	ok
fi

# 10. The input size defaults to the img_size the model's metadata records
# when it is below the evaluation crop of 224 (and is said); else 224.
expect_exit 0 $E -m b/model.safetensors -o s28.emb ds
expect_grep "input size 28" err.txt
head -c 4096 s28.emb | tr '\0' '\n' | grep -a "crop 28" >/dev/null && ok || fail "not embedded at 28 px"
# the same through a dv2-train teacher trained on 16 px crops (1 step)
micro_cfg t.cfg 'train.batch_size_per_gpu = 4' 'train.num_workers = 1' 'train.OFFICIAL_EPOCH_LENGTH = 1' \
	'optim.epochs = 1' 'optim.warmup_epochs = 0' 'train.checkpoint_period = 0'
expect_exit 0 dv2-train -q -c t.cfg --data ds -o run --max-iters 1 -j 2
expect_exit 0 $E -m run/teacher.safetensors -o t16.emb ds
expect_grep "input size 16: the img_size in the metadata of run/teacher.safetensors" err.txt
head -c 4096 t16.emb | tr '\0' '\n' | grep -a "^size=16$" >/dev/null && ok || fail "teacher not embedded at 16 px"
expect_exit 0 $E -q -m a/model.safetensors --features avgpool -o s224.emb ds
head -c 4096 s224.emb | tr '\0' '\n' | grep -a "crop 224" >/dev/null && ok || fail "not embedded at 224 px"

# Hints that point to the fix.
printf 'PK\003\004 a torch.save zip' >x.pth
expect_exit 1 $E -m x.pth -o x.emb ds
expect_grep "x.pth: a PyTorch checkpoint.*scripts/convert-weights x.pth" err.txt
$PY - <<'EOF' || fail "write an HF-named safetensors"
import json, struct
h = json.dumps({"embeddings.cls_token": {"dtype": "F32", "shape": [1, 1, 4], "data_offsets": [0, 16]}}).encode()
open("model.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + b"\0" * 16)
EOF
expect_exit 1 $E -m model.safetensors -o x.emb ds
expect_grep "Hugging Face.*scripts/convert-weights model.safetensors" err.txt
mkdir photos
printf 'P6\n2 2\n255\n0123456789ab' >photos/one.ppm
expect_exit 1 $E --pixels -o x.emb photos
expect_grep "photos: a directory of images.*dv2-pack -o photos.ds photos" err.txt
expect_exit 1 $E --pixels -o x.emb photos/one.ppm
expect_grep "one.ppm: a PNM image.*dv2-pack -o one.ds photos/one.ppm" err.txt
tar cf photos.tar photos
expect_exit 1 $E --pixels -o x.emb photos.tar
expect_grep "photos.tar: a tar archive.*dv2-pack -o photos.ds photos.tar" err.txt
[ -e x.emb ] && fail "a refused input left x.emb" || ok

# The same input twice, or a shard beside its dataset: warned.
expect_exit 0 $E --pixels --size 16 -o twice.emb ds ds
expect_grep "warning: ds is given twice" err.txt
expect_exit 0 $E --pixels --size 16 -o twice2.emb ds ds/shard-000000.dv2s
expect_grep "warning: ds/shard-000000.dv2s is inside ds" err.txt

# Progress: a total from the manifest, and an ETA.
expect_exit 0 $E --progress --pixels --size 16 -o prog.emb big
tr '\r' '\n' <err.txt | grep -q "/200 images .*ETA" && ok || fail "no total and ETA in: $(tr '\r' '\n' <err.txt | tail -n 3)"
finish
