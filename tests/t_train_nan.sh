# t_train_nan.sh — non-finite steps: with gradients poisoned from iteration
# 10 on (DV2_TRAIN_FAULT_NAN_FROM, error injection), the steps are not
# applied, logged with finite 0, and after train.max_bad_steps of them the
# run stops with exit 1 without writing a checkpoint; the last checkpoint
# holds only finite numbers and resuming from it (without the fault)
# reaches the end.
. "$DV2_ROOT/tests/lib.sh"
pack_fmnist_t10k data
micro_cfg n.cfg 'train.batch_size_per_gpu = 8' 'train.OFFICIAL_EPOCH_LENGTH = 10' \
	'train.checkpoint_period = 8' 'train.max_bad_steps = 3' 'optim.epochs = 2'
DV2_TRAIN_FAULT_NAN_FROM=10 dv2-train -c n.cfg --data data -o run -j 1 >out.txt 2>err.txt
expect_eq "$?" 1 "exit status"
expect_grep "stopping after 3 non-finite steps" err.txt
expect_grep "iteration 10: non-finite" err.txt
expect_eq "$(ls run/ckpt-*.safetensors | tr '\n' ' ')" "run/ckpt-000000000008.safetensors " "checkpoints"
expect_eq "$(grep -c '"finite": 0' run/metrics.jsonl)" 3 "skipped steps in metrics"
$PY - <<'PY' >chk.txt 2>&1
import json, struct
import numpy as np
d = open("run/ckpt-000000000008.safetensors", "rb").read()
n = struct.unpack("<Q", d[:8])[0]; h = json.loads(d[8:8 + n]); base = 8 + n
bad = sum(int(not np.all(np.isfinite(np.frombuffer(d[base + v["data_offsets"][0]:base + v["data_offsets"][1]], "<f4"))))
          for k, v in h.items() if k != "__metadata__")
print("nonfinite tensors", bad)
PY
expect_grep "nonfinite tensors 0" chk.txt
expect_exit 0 dv2-train --data data -o run --resume -j 1
expect_grep "iterations 8..20 of 20" err.txt
finish
