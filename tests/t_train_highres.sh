# t_train_highres.sh — --highres-iters/--highres-size: the last iterations
# run with larger global crops (the positional embedding resampled to the
# larger grid, masks on that grid), the exported teacher keeps the table of
# the base size, and a run resumed inside the high-resolution phase ends
# with the same weights.
. "$DV2_ROOT/tests/lib.sh"
pack_fmnist_t10k data
micro_cfg h.cfg 'train.batch_size_per_gpu = 8' 'train.OFFICIAL_EPOCH_LENGTH = 4' \
	'train.checkpoint_period = 4' 'optim.epochs = 4'
digest() { sed -n 's/.*digest \([0-9a-f]*\).*/\1/p' "$1" | tail -n 1; }
expect_exit 0 dv2-train -c h.cfg --data data -o run -j 1 --highres-iters 6 --highres-size 24
ref=$(digest err.txt)
expect_eq "$(grep -c '"global_crops_size": 24' run/metrics.jsonl)" 6 "high-res iterations"
expect_eq "$(grep -c '"global_crops_size": 16' run/metrics.jsonl)" 10 "base iterations"
$PY - <<'PY' >pe.txt
import json, struct
d = open("run/teacher.safetensors", "rb").read(); n = struct.unpack("<Q", d[:8])[0]
print("pos_embed", json.loads(d[8:8 + n])["pos_embed"]["shape"])
PY
expect_grep "pos_embed \[1, 17, 32\]" pe.txt
# resume from the checkpoint of iteration 12, inside the high-res phase
cp -r run r2
rm r2/ckpt-000000000016.safetensors
expect_exit 0 dv2-train --data data -o r2 --resume -j 1
expect_grep "iterations 12..16 of 16" err.txt
expect_eq "$(digest err.txt)" "$ref" "digest after resuming in the high-res phase"
expect_exit 2 dv2-train -c h.cfg --data data -o r3 --highres-iters 6 --highres-size 22
finish
