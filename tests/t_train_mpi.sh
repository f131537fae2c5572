# t_train_mpi.sh — data-parallel dv2-train: `mpirun -np 2` with 4 images per
# rank equals one process with 8 images (the same global batch) within float
# tolerance: every logged loss term and the exported teacher weights, with
# softmax centering and with Sinkhorn-Knopp (whose sums are all-reduced).
# Per-rank terms that depend on the local batch are switched off so that the
# two runs compute the same objective: KoLeo (neighbours within a rank),
# iBOT masks (stratified per rank batch) and drop-path subsets (per rank).
# Unshuffled sampling makes the global batches identical.
. "$DV2_ROOT/tests/lib.sh"
[ "${DV2_MPI:-0}" = 1 ] || skip "build without MPI"
command -v mpirun >/dev/null || skip "no mpirun"
pack_fmnist_t10k data
micro_cfg dp.cfg 'student.drop_path_rate = 0' 'dino.koleo_loss_weight = 0' \
	'ibot.mask_sample_probability = 0' 'train.OFFICIAL_EPOCH_LENGTH = 5' 'train.num_workers = 1' \
	'train.shuffle = false' 'optim.epochs = 4' 'optim.lr = 2e-3' 'optim.warmup_epochs = 1' \
	'teacher.warmup_teacher_temp_epochs = 1'
extra=""
[ "$(id -u)" = 0 ] && extra="--allow-run-as-root"
export OMP_NUM_THREADS=1
for mode in centering sinkhorn_knopp; do
	expect_exit 0 dv2-train -c dp.cfg --data data -o one_$mode -j 1 train.batch_size_per_gpu=8 train.centering=$mode
	expect_exit 0 mpirun $extra --oversubscribe -np 2 -x OMP_NUM_THREADS dv2-train -c dp.cfg --data data -o two_$mode -j 1 train.batch_size_per_gpu=4 train.centering=$mode
	expect_grep "iterations 0..20 of 20" err.txt
	MODE=$mode $PY - <<'PY' >cmp.txt 2>&1
import json, struct, sys
import numpy as np, os
mode = os.environ['MODE']
def rows(p):
    return [json.loads(l) for l in open(p)]
a, b = rows("one_%s/metrics.jsonl" % mode), rows("two_%s/metrics.jsonl" % mode)
bad = 0
if len(a) != len(b) or len(a) != 20: print("lengths", len(a), len(b)); bad += 1
for x, y in zip(a, b):
    for k in ("loss", "dino_local", "dino_global", "lr", "wd", "momentum", "teacher_temp", "grad_norm_backbone"):
        if abs(x[k] - y[k]) > 1e-4 * max(1.0, abs(x[k])):
            print("step", x["step"], k, x[k], y[k]); bad += 1
def st(p):
    d = open(p, "rb").read(); n = struct.unpack("<Q", d[:8])[0]; h = json.loads(d[8:8 + n]); base = 8 + n
    return {k: np.frombuffer(d[base + v["data_offsets"][0]: base + v["data_offsets"][1]], "<f4")
            for k, v in h.items() if k != "__metadata__"}
ta, tb = st("one_%s/teacher.safetensors" % mode), st("two_%s/teacher.safetensors" % mode)
worst = max(float(np.max(np.abs(ta[k] - tb[k]))) for k in ta)
print(mode, "teacher max abs diff", worst)
if worst > 1e-4: bad += 1
print("bad", bad)
PY
	cat cmp.txt >&2
	expect_grep "^bad 0$" cmp.txt
done
finish
