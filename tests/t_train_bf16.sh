# t_train_bf16.sh — a training run on the CPU backend with bf16 storage
# (--device cpu-bf16, ops/cpu/cpu_bf16.c) beside the same run in f32: it
# runs, its loss curve follows the f32 one within a band (bf16 rounding
# moves every step a little, so the curves drift apart slowly), it is not
# the f32 run (the rounding is really applied), and it is deterministic
# (the same bits twice).  The blocks' GEMM and attention outputs kept for
# the backward in 16-bit containers give the same bits as f32 buffers per
# block (DV2_VIT_BF16_STASH=0), in less memory.  --device cuda is a usage error in a build without
# CUDA and a runtime error naming the reason in a CUDA build on a machine
# without a GPU (t_train_cuda.sh runs it where there is one).
. "$DV2_ROOT/tests/lib.sh"
pack_fmnist_t10k data
micro_cfg tiny.cfg 'train.batch_size_per_gpu = 8' 'train.OFFICIAL_EPOCH_LENGTH = 20' \
	'train.num_workers = 2' 'optim.epochs = 3' 'optim.lr = 1e-3' 'optim.warmup_epochs = 1' \
	'teacher.warmup_teacher_temp_epochs = 1'
losses() { sed 's/.*"loss": \([^,]*\),.*/\1/' "$1"; }
export OMP_NUM_THREADS=1

expect_exit 0 dv2-train -c tiny.cfg --data data -o f32 -j 1 --device cpu
expect_exit 0 dv2-train -c tiny.cfg --data data -o bf16 -j 1 --device cpu-bf16 -v
expect_grep "device cpu-bf16" err.txt
expect_exit 0 dv2-train -c tiny.cfg --data data -o bf16b -j 1 --device cpu-bf16
losses f32/metrics.jsonl > a.txt
losses bf16/metrics.jsonl > b.txt
losses bf16b/metrics.jsonl > c.txt
expect_eq "$(wc -l < b.txt)" 60 "bf16 metrics lines"
expect_same b.txt c.txt
mib() { sed -n 's/.*student pass: \([0-9.]*\) MiB.*/\1/p' "$1" | tail -n 1; }
expect_exit 0 dv2-train -c tiny.cfg --data data -o bf16k -j 1 --device cpu-bf16 -v
expect_grep "student pass: [0-9.]* MiB of activations and their gradients (blocks' GEMM and attention outputs kept in bf16)" err.txt
kept=$(mib err.txt)
digest() { sed -n 's/.*digest \([0-9a-f]*\).*/\1/p' err.txt | tail -n 1; }
dk=$(digest)
expect_exit 0 env DV2_VIT_BF16_STASH=0 dv2-train -c tiny.cfg --data data -o bf16f -j 1 --device cpu-bf16 -v
full=$(mib err.txt)
expect_eq "$(digest)" "$dk" "digest with f32 blocks against 16-bit ones"
grep -q "kept in bf16" err.txt && fail "DV2_VIT_BF16_STASH=0 still keeps bf16 blocks" || ok
losses bf16f/metrics.jsonl > d.txt
expect_same b.txt d.txt
echo "student pass: $kept MiB with the 16-bit blocks, $full MiB with f32 ones" >&2
awk -v k="$kept" -v f="$full" 'BEGIN {exit !(k > 0 && k < f)}' && ok || fail "16-bit blocks use $kept MiB, f32 $full MiB"
cmp -s a.txt b.txt && fail "the bf16 run equals the f32 run: no rounding was applied"
# the largest relative gap between the curves over the 60 iterations
gap=$(paste a.txt b.txt | awk '{d = $1 - $2; if (d < 0) d = -d; r = d / ($1 < 0 ? -$1 : $1); if (r > m) m = r} END {printf "%.4f", m}')
echo "largest relative loss gap bf16 vs f32 over 60 iterations: $gap"
awk -v g="$gap" 'BEGIN {exit !(g < 0.05)}' || fail "bf16 loss curve leaves the 5% band of the f32 one (gap $gap)"
if [ "${DV2_CUDA:-0}" != 1 ]; then
	expect_exit 2 dv2-train -c tiny.cfg --data data -o cuda -j 1 --device cuda
	expect_grep "runs on the CPU only in this build" err.txt
elif ! { command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }; then
	expect_exit 1 dv2-train -c tiny.cfg --data data -o cuda -j 1 --device cuda
	expect_grep "device cuda: no CUDA device" err.txt
	[ -e cuda ] && fail "a run that could not open its device left cuda/" || ok
fi
finish
