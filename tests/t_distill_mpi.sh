# t_distill_mpi.sh — data-parallel dv2-distill: `mpirun -np 2` with 4 images
# per rank equals one process with 8 images (the same global batch) within
# float tolerance: every logged loss term and the exported student EMA, with
# softmax centering and with Sinkhorn-Knopp.  KoLeo (neighbours within a
# rank) is off so that both runs compute the same objective; distillation
# has no masks and no drop path, so nothing else depends on the rank's batch.
# Unshuffled sampling makes the global batches identical.
. "$DV2_ROOT/tests/lib.sh"
[ "${DV2_MPI:-0}" = 1 ] || skip "build without MPI"
command -v mpirun >/dev/null || skip "no mpirun"
pack_fmnist_t10k data
export OMP_NUM_THREADS=1
micro_cfg t.cfg 'student.drop_path_rate = 0' 'train.batch_size_per_gpu = 8' \
	'train.OFFICIAL_EPOCH_LENGTH = 5' 'train.num_workers = 1' 'optim.epochs = 2' 'optim.lr = 1e-3' \
	'optim.warmup_epochs = 1' 'teacher.warmup_teacher_temp_epochs = 1'
expect_exit 0 dv2-train -c t.cfg --data data -o teach -j 1
micro_cfg dp.cfg 'student.embed_dim = 16' 'student.num_heads = 1' 'dino.koleo_loss_weight = 0' \
	'train.OFFICIAL_EPOCH_LENGTH = 5' 'train.num_workers = 1' 'train.shuffle = false' 'optim.epochs = 4' \
	'optim.lr = 2e-3' 'optim.warmup_epochs = 1' 'teacher.warmup_teacher_temp_epochs = 1'
extra=""
[ "$(id -u)" = 0 ] && extra="--allow-run-as-root"
for mode in centering sinkhorn_knopp; do
	expect_exit 0 dv2-distill -c dp.cfg --teacher teach --data data -o one_$mode -j 1 train.batch_size_per_gpu=8 train.centering=$mode
	expect_exit 0 mpirun $extra --oversubscribe -np 2 -x OMP_NUM_THREADS dv2-distill -c dp.cfg --teacher teach --data data -o two_$mode -j 1 train.batch_size_per_gpu=4 train.centering=$mode
	expect_grep "iterations 0..20 of 20" err.txt
	MODE=$mode $PY - <<'PY' >cmp.txt 2>&1
import json, struct, os
import numpy as np
mode = os.environ['MODE']
def rows(p):
    return [json.loads(l) for l in open(p)]
a, b = rows("one_%s/metrics.jsonl" % mode), rows("two_%s/metrics.jsonl" % mode)
bad = 0
if len(a) != len(b) or len(a) != 20: print("lengths", len(a), len(b)); bad += 1
for x, y in zip(a, b):
    for k in ("loss", "dino_local", "dino_global", "ibot", "momentum", "teacher_temp", "grad_norm_backbone", "n_masked"):
        if abs(x[k] - y[k]) > 1e-4 * max(1.0, abs(x[k])):
            print("step", x["step"], k, x[k], y[k]); bad += 1
def st(p):
    d = open(p, "rb").read(); n = struct.unpack("<Q", d[:8])[0]; h = json.loads(d[8:8 + n]); base = 8 + n
    return {k: np.frombuffer(d[base + v["data_offsets"][0]: base + v["data_offsets"][1]], "<f4")
            for k, v in h.items() if k != "__metadata__"}
for f in ("student_ema", "student"):
    ta, tb = st("one_%s/%s.safetensors" % (mode, f)), st("two_%s/%s.safetensors" % (mode, f))
    worst = max(float(np.max(np.abs(ta[k] - tb[k]))) for k in ta)
    print(mode, f, "max abs diff", worst)
    if worst > 1e-4: bad += 1
print("bad", bad)
PY
	cat cmp.txt >&2
	expect_grep "^bad 0$" cmp.txt
done
finish
