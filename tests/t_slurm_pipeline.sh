# t_slurm_pipeline.sh — scripts/slurm/submit and the stage scripts without
# Slurm: sbatch, srun and scontrol are stand-ins on PATH (sbatch records its
# arguments and runs the job at once, every task of an array in turn, and
# never runs a job whose afterok dependency failed; srun runs the command;
# scontrol records its arguments).  3000 Fashion-MNIST images in 6 shards
# embedded by an array of 4 tasks, 100 curated images, a micro teacher and a
# distilled student, k-NN probe.  Checks the dependency chain, that the
# array's shard ranges cover every shard exactly once, that the merged
# matrix equals one process's, that a rerun after a failed stage submits
# only what is left, that a rerun after a lost and a half-written part
# redoes only that part and resumes it, and that an embedding task stopped
# by USR1 requeues itself.
. "$DV2_ROOT/tests/lib.sh"
command -v bash >/dev/null || skip "no bash"
export OMP_NUM_THREADS=1
S="$DV2_ROOT/scripts/slurm"
mkdir fake
cat > fake/sbatch <<'EOF'
#!/bin/bash
D=$(dirname "$0")
id=$(( $(cat "$D/next" 2>/dev/null || echo 100) + 1 ))
echo "$id" > "$D/next"
echo "$id $*" >> "$D/sbatch.log"
array= deps=
while [ $# -gt 0 ]; do
	case $1 in
	--array=*) array=${1#--array=};;
	--dependency=afterok:*) deps=${1#--dependency=afterok:};;
	-*) ;;
	*) break;;
	esac
	shift
done
script=$1
shift
for d in ${deps//:/ }; do
	if grep -qx "$d" "$D/failed" 2>/dev/null; then echo "$id" >> "$D/failed"; echo "$id"; exit 0; fi
done
bad=0
if [ -n "$array" ]; then
	for ((i = ${array%-*}; i <= ${array#*-}; i++)); do
		SLURM_JOB_ID=$id SLURM_ARRAY_JOB_ID=$id SLURM_ARRAY_TASK_ID=$i SLURM_CPUS_PER_TASK=1 \
			bash "$script" "$@" >> "$D/job-$id.out" 2>&1 || bad=1
	done
else
	SLURM_JOB_ID=$id SLURM_CPUS_PER_TASK=1 bash "$script" "$@" > "$D/job-$id.out" 2>&1 || bad=1
fi
[ $bad = 0 ] || echo "$id" >> "$D/failed"
echo "$id"
EOF
cat > fake/srun <<'EOF'
#!/bin/sh
while [ $# -gt 0 ]; do case $1 in -*) shift;; *) break;; esac; done
[ -n "${FAKE_FAIL:-}" ] && [ "$1" = "$FAKE_FAIL" ] && { echo "srun: $1 failed (a test stand-in)" >&2; exit 1; }
exec "$@"
EOF
printf '#!/bin/sh\necho "$@" >> "%s/fake/scontrol.log"\n' "$PWD" > fake/scontrol
chmod +x fake/sbatch fake/srun fake/scontrol
PATH="$PWD/fake:$PATH"

pack_fmnist_t10k all
dv2-pack --ls all | cut -f1 > all.ids
sed -n 1,3000p all.ids > pool.ids
sed -n 3001,3100p all.ids > cur.ids
sed -n 4001,5000p all.ids > etr.ids
sed -n 5001,5300p all.ids > ete.ids
dv2-pack -q --shard-size 320K --select pool.ids -o pool all || fail "pack the pool"
for s in cur etr ete; do dv2-pack -q --select $s.ids -o $s all || fail "pack $s"; done
expect_eq "$(grep -c '"name":' pool/manifest.json)" 6 "pool shards"
micro_cfg t.cfg 'train.batch_size_per_gpu = 8' 'train.num_workers = 1' 'train.OFFICIAL_EPOCH_LENGTH = 3' \
	'optim.epochs = 1' 'optim.warmup_epochs = 0' 'train.checkpoint_period = 0'
micro_cfg d.cfg 'student.embed_dim = 16' 'student.num_heads = 1' 'train.batch_size_per_gpu = 8' \
	'train.num_workers = 1' 'train.OFFICIAL_EPOCH_LENGTH = 2' 'optim.epochs = 1' 'optim.warmup_epochs = 0' \
	'train.checkpoint_period = 0'
set -- --data pool --curated cur --tasks 4 --dedup-args "-t 0.97" --config t.cfg --distill d.cfg \
	--eval-train etr --eval-test ete --probe-args "--knn 10,20" w

# 1. the chain, with the dedup failing: nothing after it runs
FAKE_FAIL=dv2-dedup sh "$S/submit" "$@" > sub1.txt 2> sub1.err
expect_eq "$?" 0 "first submit"
cat sub1.txt >&2
expect_eq "$(cut -d' ' -f1 sub1.txt | tr '\n' ' ')" \
	"embed-pool merge-pool embed-curated merge-curated dedup select pack train distill probe " "stages submitted"
id() { awk -v s="$1" '$1 == s { print $2 }' sub1.txt; }
dep() { awk -v j="$1" '$1 == j' fake/sbatch.log | grep -o 'afterok:[0-9:]*' | cut -d: -f2-; }
expect_eq "$(dep "$(id embed-pool)")" "" "embed-pool dependency"
expect_eq "$(dep "$(id merge-pool)")" "$(id embed-pool)" "merge-pool dependency"
expect_eq "$(dep "$(id merge-curated)")" "$(id embed-curated)" "merge-curated dependency"
expect_eq "$(dep "$(id dedup)")" "$(id merge-pool)" "dedup dependency"
expect_eq "$(dep "$(id select)")" "$(id merge-pool):$(id dedup):$(id merge-curated)" "select dependency"
expect_eq "$(dep "$(id pack)")" "$(id select)" "pack dependency"
expect_eq "$(dep "$(id train)")" "$(id pack)" "train dependency"
expect_eq "$(dep "$(id distill)")" "$(id train)" "distill dependency"
expect_eq "$(dep "$(id probe)")" "$(id distill)" "probe dependency"
grep -q "^$(id embed-pool) .*--array=0-3 " fake/sbatch.log && ok || fail "embed-pool is not an array of 4 tasks"
grep -q "^$(id embed-curated) .*--array=0-0 " fake/sbatch.log && ok || fail "embed-curated is not an array of 1 task"
# every shard exactly once, in order, across the tasks
out=fake/job-$(id embed-pool).out
expect_eq "$(grep -c 'dv2-embed.sbatch: task [0-3] of 4: shards' $out)" 4 "tasks that embedded"
sed -n 's/^dv2-embed.sbatch: task [0-9]* of 4: shards [0-9.]* of 6: //p' $out | tr ' ' '\n' > covered.txt
sed -n 's/.*"name": *"\([^"]*\)".*/\1/p' pool/manifest.json > shards.txt
expect_same covered.txt shards.txt
# the merged matrix is the single-process one
expect_exit 0 dv2-embed -q --copy -o single.emb pool
expect_same w/pool.emb single.emb
[ -e w/pool.keep ] && fail "the failed dedup left w/pool.keep" || ok
expect_eq "$(wc -l < fake/failed | tr -d ' ')" 6 "failed or never-run jobs"
expect_grep "srun: dv2-dedup failed" "fake/job-$(id dedup).out"

# 2. rerun: only what is left is submitted, and it all runs
sh "$S/submit" "$@" > sub2.txt 2> sub2.err
expect_eq "$?" 0 "second submit"
cat sub2.txt >&2
expect_eq "$(cut -d' ' -f1 sub2.txt | tr '\n' ' ')" "dedup select pack train distill probe " "stages resubmitted"
for f in w/pool.keep w/selected.tsv w/train/manifest.json w/runs/teacher/teacher.safetensors \
	w/runs/student/student_ema.safetensors w/probe.txt w/probe.json; do
	[ -s $f ] && ok || fail "no $f"
done
expect_grep '^ *20 ' w/probe.txt
sort -u w/pool.keep > keep.s; cut -f1 w/selected.tsv | sort -u > sel.s
expect_eq "$(comm -23 sel.s keep.s | wc -l | tr -d ' ')" 0 "selected ids not kept"
expect_grep "\"records\": $(wc -l < sel.s | tr -d ' ')," w/train/manifest.json

# 3. a lost part and a half-written one: the array is resubmitted, the tasks
# whose parts are complete do nothing, task 2 resumes its rows, task 1 redoes
# its part; the merge gives the same matrix again
rm w/pool.emb w/pool.parts/part-00001.emb
p=w/pool.parts/part-00002.emb
head -c $((4096 + 100 * (12 + 4 * 255))) $p > $p.part && rm $p
sh "$S/submit" "$@" > sub3.txt 2> sub3.err
expect_eq "$?" 0 "third submit"
expect_eq "$(cut -d' ' -f1 sub3.txt | tr '\n' ' ')" "embed-pool merge-pool train distill " "stages after a lost part"
out=fake/job-$(awk '$1 == "embed-pool" { print $2 }' sub3.txt).out
expect_eq "$(grep -c 'is complete, nothing to do' $out)" 2 "tasks with a complete part"
expect_grep "task 1 of 4: shards 1..2 of 6" $out
expect_grep "100 already done" $out
expect_same w/pool.emb single.emb
expect_grep "resuming from" "fake/job-$(awk '$1 == "train" { print $2 }' sub3.txt).out"

# 4. USR1 (time limit near) stops an embedding task, which requeues itself;
# the same task then finishes
rm -rf parts
SLURM_ARRAY_JOB_ID=77 SLURM_ARRAY_TASK_ID=1 SLURM_JOB_ID=78 SLURM_CPUS_PER_TASK=1 \
	bash "$S/dv2-embed.sbatch" pool parts 2 --copy -b 1 > task.out 2>&1 &
pid=$!
n=0
while [ "$( (wc -c < parts/part-00001.emb.part) 2>/dev/null || echo 0)" -lt 40000 ] && [ $n -lt 400 ]; do
	sleep 0.02; n=$((n + 1))
done
kill -USR1 $pid
wait $pid
expect_eq "$?" 0 "task status after USR1"
if [ -f parts/part-00001.emb ]; then
	skip "the task finished before USR1 arrived"
fi
expect_grep "requeue 77_1" fake/scontrol.log
SLURM_ARRAY_JOB_ID=77 SLURM_ARRAY_TASK_ID=1 SLURM_JOB_ID=78 SLURM_CPUS_PER_TASK=1 \
	bash "$S/dv2-embed.sbatch" pool parts 2 --copy > task2.out 2>&1
expect_eq "$?" 0 "requeued task"
expect_grep "already done" task2.out
expect_exit 0 dv2-embed -q --copy -o half.emb pool/shard-000003.dv2s pool/shard-000004.dv2s pool/shard-000005.dv2s
tail -c +4097 half.emb > a.rows; tail -c +4097 parts/part-00001.emb > b.rows
expect_same a.rows b.rows

# usage errors
expect_exit 2 sh "$S/submit" w
expect_exit 2 bash "$S/dv2-embed.sbatch" pool parts 2 --copy
expect_grep "not a task of a job array" err.txt
SLURM_ARRAY_TASK_ID=0 bash "$S/dv2-embed.sbatch" pool parts 7 --copy > /dev/null 2> err.txt
expect_eq "$?" 2 "more tasks than shards"
expect_exit 1 bash "$S/dv2-merge.sbatch" parts 3 m.emb
expect_grep "part-00002.emb: missing" err.txt
expect_exit 2 bash "$S/dv2-curate.sbatch" dv2-train x y
finish
