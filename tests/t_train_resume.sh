# t_train_resume.sh — dv2-train checkpoints and resume: a run killed with
# SIGKILL and resumed with --resume ends with bit-identical weights (same
# digest) and the same metrics as an uninterrupted run; SIGTERM writes a
# checkpoint and exits 0; a damaged newest checkpoint is skipped; usage
# errors exit 2.  Tiny ViT on 10k Fashion-MNIST test images, 1 compute thread.
. "$DV2_ROOT/tests/lib.sh"
pack_fmnist_t10k data
micro_cfg tiny.cfg 'student.drop_path_rate = 0.1' 'train.batch_size_per_gpu = 8' \
	'train.OFFICIAL_EPOCH_LENGTH = 20' 'train.num_workers = 2' 'train.checkpoint_period = 8' \
	'optim.epochs = 6' 'optim.lr = 1e-3' 'optim.warmup_epochs = 1' \
	'teacher.warmup_teacher_temp_epochs = 1'
digest() { sed -n 's/.*digest \([0-9a-f]*\).*/\1/p' "$1" | tail -n 1; }
losses() { sed 's/.*"loss": \([^,]*\),.*/\1/' "$1"; }
export OMP_NUM_THREADS=1

# reference: uninterrupted
expect_exit 0 dv2-train -c tiny.cfg --data data -o ref -j 1
ref=$(digest err.txt)
[ -n "$ref" ] || fail "no digest in the summary"
for f in config.cfg metrics.jsonl loss.svg teacher.safetensors ckpt-000000000120.safetensors; do
	[ -s ref/$f ] && ok || fail "ref/$f missing"
done
expect_eq "$(wc -l < ref/metrics.jsonl)" 120 "metrics lines"
expect_eq "$(ls ref/ckpt-*.safetensors | wc -l)" 3 "checkpoints kept (train.keep_checkpoints)"

# SIGKILL after the checkpoint of iteration 40 exists, then resume
dv2-train -c tiny.cfg --data data -o run -j 1 -q 2>kill.err &
pid=$!
n=0
while [ ! -f run/ckpt-000000000040.safetensors ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n + 1)); done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
[ -f run/ckpt-000000000120.safetensors ] && skip "the run finished before SIGKILL (machine too fast for this test)"
last=$(ls run/ckpt-*.safetensors | tail -n 1)
expect_exit 0 dv2-train --data data -o run --resume -j 1
expect_grep "resuming from" err.txt
expect_eq "$(digest err.txt)" "$ref" "digest after SIGKILL + resume"
expect_eq "$(wc -l < run/metrics.jsonl)" 120 "metrics lines after resume"
losses ref/metrics.jsonl > a.txt; losses run/metrics.jsonl > b.txt
expect_same a.txt b.txt

# SIGTERM: checkpoint and exit 0, then resume to the same end
dv2-train -c tiny.cfg --data data -o term -j 1 2>term.err &
pid=$!
n=0
while [ ! -f term/ckpt-000000000016.safetensors ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n + 1)); done
kill -TERM $pid
wait $pid
expect_eq "$?" 0 "exit status after SIGTERM"
if grep -q "interrupted" term.err; then
	ok
	expect_exit 0 dv2-train --data data -o term --resume -j 1
	expect_eq "$(digest err.txt)" "$ref" "digest after SIGTERM + resume"
fi

# a damaged newest checkpoint is skipped; resume from the previous one
cp -r ref dmg
newest=$(ls dmg/ckpt-*.safetensors | tail -n 1)
printf 'XXXX' | dd of="$newest" bs=1 seek=5000 conv=notrunc 2>/dev/null
expect_exit 0 dv2-train --data data -o dmg --resume -j 1
expect_grep "skipped 1 damaged checkpoint" err.txt
expect_eq "$(digest err.txt)" "$ref" "digest after resuming past a damaged checkpoint"

# a refused resume (another batch size) changes nothing in the run
# directory, so a later plain --resume (a Slurm requeue) still works
cp -r ref req
cp req/config.cfg req.cfg
ls -l --time-style=+%s req > req_before.txt
expect_exit 1 dv2-train --data data -o req --resume -j 1 train.batch_size_per_gpu=4
expect_grep "resume needs the same" err.txt
expect_same req/config.cfg req.cfg
ls -l --time-style=+%s req > req_after.txt
expect_same req_before.txt req_after.txt
expect_exit 0 dv2-train --data data -o req --resume -j 1
expect_eq "$(digest err.txt)" "$ref" "digest of a plain --resume after a refused one"

# one writer per run directory: a second is refused naming the first; the
# lock of a killed run is taken over
dv2-train -c tiny.cfg --data data -o busy -j 1 -q 2>/dev/null &
pid=$!
n=0
while [ ! -f busy/config.cfg ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n + 1)); done
expect_exit 1 dv2-train --data data -o busy --resume -j 1
expect_grep "busy: the run is being written by process $pid " err.txt
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
expect_exit 0 dv2-train --data data -o busy --resume -j 1 --max-iters 1
expect_grep "taking over the lock of process $pid, which is gone" err.txt

# an existing run without --resume or -f is a conflict (1), not a usage error
expect_exit 1 dv2-train -c tiny.cfg --data data -o ref
expect_grep "already holds a run" err.txt

# usage errors
expect_exit 2 dv2-train -c tiny.cfg --data data -o -
expect_grep "a run is a directory" err.txt
[ ! -e ./- ] && ok || fail "-o - created a directory named '-'"
expect_exit 2 dv2-train -c tiny.cfg --data data -o x no.such.key=1
expect_grep "unknown key 'no.such.key'" err.txt
expect_exit 2 dv2-train -c tiny.cfg -o x
expect_exit 2 dv2-train -c missing.cfg --data data -o x
expect_exit 2 dv2-train --bogus
expect_exit 1 dv2-train -c tiny.cfg --data nonexistent -o y
finish
