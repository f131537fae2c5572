# t_distill.sh — dv2-distill: a micro teacher trained by dv2-train (D 32)
# distilled into a narrower student (D 16, 1 head).  Checked: the run
# directory (student_ema.safetensors and student.safetensors readable by
# dv2-embed, checkpoints with student_ema.* and no teacher copy), the iBOT
# loss on every patch token (n_masked = 2B·N), a safetensors teacher with
# heads (a distilled student_ema) and a checkpoint-file teacher, teacher /
# config mismatches reported before anything is written (tensor and both
# shapes), SIGKILL + --resume bit-identical to an uninterrupted run, SIGTERM
# checkpoint-and-exit, a changed teacher refused on resume, the NaN guard,
# usage errors.
. "$DV2_ROOT/tests/lib.sh"
pack_fmnist_t10k data
export OMP_NUM_THREADS=1
micro_cfg t.cfg 'student.drop_path_rate = 0' 'train.batch_size_per_gpu = 8' \
	'train.OFFICIAL_EPOCH_LENGTH = 10' 'train.num_workers = 1' 'optim.epochs = 2' 'optim.lr = 1e-3' \
	'optim.warmup_epochs = 1' 'teacher.warmup_teacher_temp_epochs = 1'
expect_exit 0 dv2-train -c t.cfg --data data -o teach -j 1
micro_cfg s.cfg 'student.embed_dim = 16' 'student.num_heads = 1' 'train.batch_size_per_gpu = 8' \
	'train.OFFICIAL_EPOCH_LENGTH = 20' 'train.num_workers = 2' 'train.checkpoint_period = 8' \
	'optim.epochs = 6' 'optim.lr = 1e-3' 'optim.warmup_epochs = 1' \
	'teacher.warmup_teacher_temp_epochs = 1'
digest() { sed -n 's/.*digest \([0-9a-f]*\).*/\1/p' "$1" | tail -n 1; }
losses() { sed 's/.*"loss": \([^,]*\),.*/\1/' "$1"; }

# reference: uninterrupted
expect_exit 0 dv2-distill -c s.cfg --teacher teach --data data -o ref -j 1
ref=$(digest err.txt)
[ -n "$ref" ] || fail "no digest in the summary"
for f in config.cfg metrics.jsonl loss.svg student_ema.safetensors student.safetensors \
	ckpt-000000000120.safetensors; do
	[ -s ref/$f ] && ok || fail "ref/$f missing"
done
[ -e ref/teacher.safetensors ] && fail "a distillation run exports no teacher" || ok
expect_eq "$(wc -l < ref/metrics.jsonl)" 120 "metrics lines"
expect_grep '"n_masked": 256,' ref/metrics.jsonl # 2B x N = 16 x 16: every patch token
$PY - <<'PY' >names.txt 2>&1
import json, struct
d = open("ref/ckpt-000000000120.safetensors", "rb").read(); n = struct.unpack("<Q", d[:8])[0]
h = json.loads(d[8:8 + n])
pre = sorted({k.split(".")[0] for k in h if k != "__metadata__"})
print("prefixes", " ".join(pre))
print("teacher_digest" in h["__metadata__"])
e = json.loads(open("ref/student_ema.safetensors", "rb").read()[8:8 + struct.unpack("<Q", open("ref/student_ema.safetensors", "rb").read(8))[0]])
print("cls", e["cls_token"]["shape"], "head", e["dino_head.last_layer.weight_v"]["shape"])
PY
expect_grep "^prefixes dino_center ibot_center optimizer student student_ema$" names.txt
expect_grep "^True$" names.txt
expect_grep "^cls \[1, 1, 16\] head \[256, 32\]$" names.txt
expect_exit 0 dv2-embed -q -m ref/student_ema.safetensors --size 16 --resize 16 -o ema.emb data
expect_exit 0 dv2-embed -q -m ref/student.safetensors --size 16 --resize 16 -o raw.emb data

# SIGKILL after the checkpoint of iteration 40 exists, then resume
dv2-distill -c s.cfg --teacher teach --data data -o run -j 1 -q 2>kill.err &
pid=$!
n=0
while [ ! -f run/ckpt-000000000040.safetensors ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n + 1)); done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
[ -f run/ckpt-000000000120.safetensors ] && skip "the run finished before SIGKILL (machine too fast for this test)"
expect_exit 0 dv2-distill --teacher teach --data data -o run --resume -j 1
expect_grep "resuming from" err.txt
expect_eq "$(digest err.txt)" "$ref" "digest after SIGKILL + resume"
losses ref/metrics.jsonl > a.txt; losses run/metrics.jsonl > b.txt
expect_same a.txt b.txt
cmp -s ref/student_ema.safetensors run/student_ema.safetensors && ok || fail "student_ema differs after resume"

# SIGTERM: checkpoint and exit 0, then resume to the same end
dv2-distill -c s.cfg --teacher teach --data data -o term -j 1 2>term.err &
pid=$!
n=0
while [ ! -f term/ckpt-000000000016.safetensors ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n + 1)); done
kill -TERM $pid
wait $pid
expect_eq "$?" 0 "exit status after SIGTERM"
if grep -q "interrupted" term.err; then
	ok
	expect_exit 0 dv2-distill --teacher teach --data data -o term --resume -j 1
	expect_eq "$(digest err.txt)" "$ref" "digest after SIGTERM + resume"
fi

# other teacher forms: the checkpoint file itself; safetensors with heads
expect_exit 0 dv2-distill -c s.cfg --teacher teach/ckpt-000000000020.safetensors --data data -o ck -j 1 --max-iters 3
expect_exit 0 dv2-distill -c s.cfg --teacher ref/student_ema.safetensors --data data -o st -j 1 --max-iters 3
# a different teacher on resume is refused
expect_exit 1 dv2-distill --teacher ref/student_ema.safetensors --data data -o run --resume -j 1
expect_grep "the teacher changed since this checkpoint" err.txt

# mismatches: reported before anything is written
expect_exit 1 dv2-distill -c s.cfg --teacher teach --data data -o bad1 dino.head_n_prototypes=128 ibot.head_n_prototypes=128
expect_grep "teacher.dino_head.last_layer.weight_g is (256, 1), the config needs (128, 1) (dino.head_n_prototypes)" err.txt
[ -e bad1 ] && fail "bad1 created despite the mismatch" || ok
expect_exit 1 dv2-distill -c s.cfg --teacher teach --data data -o bad2 student.patch_size=8 crops.local_crops_size=8
expect_grep "patch size 4, student.patch_size 8" err.txt
expect_exit 1 dv2-distill -c s.cfg --teacher teach --data data -o bad3 ibot.separate_head=true
expect_grep "has no separate iBOT head" err.txt
expect_exit 1 dv2-distill -c s.cfg --teacher teach/teacher.safetensors --data data -o bad4
expect_grep "no DINO head" err.txt
expect_exit 1 dv2-distill -c s.cfg --teacher no.such.run --data data -o bad5
[ -e bad2 ] || [ -e bad3 ] || [ -e bad4 ] || [ -e bad5 ] && fail "a run directory was created for a bad teacher" || ok

# the NaN guard: poisoned gradients from iteration 10 are not applied; after
# train.max_bad_steps of them the run stops (exit 1) with its checkpoint intact
DV2_TRAIN_FAULT_NAN_FROM=10 dv2-distill -c s.cfg --teacher teach --data data -o nan -j 1 \
	train.max_bad_steps=3 >out.txt 2>err.txt
expect_eq "$?" 1 "exit status with non-finite steps"
expect_grep "stopping after 3 non-finite steps" err.txt
expect_eq "$(ls nan/ckpt-*.safetensors | tr '\n' ' ')" "nan/ckpt-000000000008.safetensors " "checkpoints"
expect_eq "$(grep -c '"finite": 0' nan/metrics.jsonl)" 3 "skipped steps in metrics"

# usage errors
expect_exit 2 dv2-distill -c s.cfg --data data -o x
expect_grep "no teacher" err.txt
expect_exit 2 dv2-distill -c s.cfg --teacher teach --data data -o x student.drop_path_rate=0.1
expect_grep "no stochastic depth" err.txt
expect_exit 1 dv2-distill -c s.cfg --teacher teach --data data -o ref
expect_grep "already holds a run" err.txt
expect_exit 2 dv2-distill -c s.cfg --teacher teach --data data -o x no.such.key=1
expect_exit 2 dv2-distill --bogus
finish
