# t_distill_slurm.sh — scripts/slurm/dv2-train.sbatch with
# DV2_PROGRAM=dv2-distill and --teacher among the options, without Slurm
# (srun and scontrol are stand-ins on PATH): USR1 to the batch script makes
# dv2-distill checkpoint and exit 0 and the script requeue the job; running
# the script again resumes (with the same teacher) and finishes.
. "$DV2_ROOT/tests/lib.sh"
command -v bash >/dev/null || skip "no bash"
pack_fmnist_t10k data
mkdir fake
printf '#!/bin/sh\n[ "$1" = --kill-on-bad-exit=1 ] && shift\nexec "$@"\n' > fake/srun
printf '#!/bin/sh\necho "$@" >> "%s/scontrol.log"\n' "$PWD" > fake/scontrol
chmod +x fake/srun fake/scontrol
PATH="$PWD/fake:$PATH"
export OMP_NUM_THREADS=1
micro_cfg t.cfg 'student.drop_path_rate = 0' 'train.batch_size_per_gpu = 8' \
	'train.OFFICIAL_EPOCH_LENGTH = 10' 'optim.epochs = 1'
expect_exit 0 dv2-train -c t.cfg --data data -o teach -j 1
micro_cfg s.cfg 'student.embed_dim = 16' 'student.num_heads = 1' 'train.batch_size_per_gpu = 8' \
	'train.OFFICIAL_EPOCH_LENGTH = 100' 'train.checkpoint_period = 10' 'optim.epochs = 3'
S="$DV2_ROOT/scripts/slurm/dv2-train.sbatch"
DV2_PROGRAM=dv2-distill SLURM_JOB_ID=42 SLURM_CPUS_PER_TASK=1 bash "$S" s.cfg data run --teacher teach >job1.out 2>&1 &
pid=$!
n=0
while [ ! -f run/ckpt-000000000010.safetensors ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n + 1)); done
kill -USR1 $pid
wait $pid
expect_eq "$?" 0 "batch script status after USR1"
cat job1.out >&2
[ -f run/ckpt-000000000300.safetensors ] && skip "the run finished before USR1 arrived"
expect_grep "dv2-distill: run: iterations 0\.\.[0-9]* of 300 .*(interrupted, checkpoint written)" job1.out
expect_grep "requeue 42" scontrol.log
DV2_PROGRAM=dv2-distill SLURM_JOB_ID=42 SLURM_CPUS_PER_TASK=1 bash "$S" s.cfg data run --teacher teach >job2.out 2>&1
expect_eq "$?" 0 "second job status"
expect_grep "resuming from" job2.out
expect_grep "iterations [0-9]*..300 of 300" job2.out
[ -s run/student_ema.safetensors ] && ok || fail "no student_ema.safetensors"
expect_eq "$(grep -c requeue scontrol.log)" 1 "requeues"
DV2_PROGRAM=dv2-nothing bash "$S" s.cfg data x >/dev/null 2>err.txt
expect_eq "$?" 2 "unknown DV2_PROGRAM"
finish
