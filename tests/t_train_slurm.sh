# t_train_slurm.sh — scripts/slurm/dv2-train.sbatch without Slurm: srun and
# scontrol are stand-ins on PATH (srun runs the command, scontrol records
# its arguments).  USR1 to the batch script (what --signal=B:USR1@180 sends
# before the time limit) makes dv2-train checkpoint and exit 0 and the
# script requeue the job; running the script again resumes and finishes
# without requeueing.
. "$DV2_ROOT/tests/lib.sh"
command -v bash >/dev/null || skip "no bash"
pack_fmnist_t10k data
mkdir fake
printf '#!/bin/sh\n[ "$1" = --kill-on-bad-exit=1 ] && shift\nexec "$@"\n' > fake/srun
printf '#!/bin/sh\necho "$@" >> "%s/scontrol.log"\n' "$PWD" > fake/scontrol
chmod +x fake/srun fake/scontrol
PATH="$PWD/fake:$PATH"
micro_cfg s.cfg 'train.batch_size_per_gpu = 8' 'train.OFFICIAL_EPOCH_LENGTH = 100' \
	'train.checkpoint_period = 10' 'optim.epochs = 3'
S="$DV2_ROOT/scripts/slurm/dv2-train.sbatch"
SLURM_JOB_ID=42 SLURM_CPUS_PER_TASK=1 bash "$S" s.cfg data run >job1.out 2>&1 &
pid=$!
n=0
while [ ! -f run/ckpt-000000000010.safetensors ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n + 1)); done
kill -USR1 $pid
wait $pid
expect_eq "$?" 0 "batch script status after USR1"
cat job1.out >&2
if [ -f run/ckpt-000000000300.safetensors ]; then
	skip "the run finished before USR1 arrived"
fi
expect_grep "interrupted, checkpoint written" job1.out
expect_grep "requeue 42" scontrol.log
SLURM_JOB_ID=42 SLURM_CPUS_PER_TASK=1 bash "$S" s.cfg data run >job2.out 2>&1
expect_eq "$?" 0 "second job status"
expect_grep "resuming from" job2.out
expect_grep "iterations [0-9]*..300 of 300" job2.out
expect_eq "$(grep -c requeue scontrol.log)" 1 "requeues"
expect_exit 2 bash "$S" s.cfg
finish
