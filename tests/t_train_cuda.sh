# t_train_cuda.sh — training on the GPU (--device cuda, cuda-bf16) beside the
# same run on the CPU: the f32 GPU run follows the CPU's loss curve within
# 2% over 60 iterations (the same arithmetic in other summation orders; the
# curves drift apart slowly as the parameters do), the bf16 run within the
# 5% band t_train_bf16.sh holds the CPU's bf16 emulation to, and each GPU
# run is deterministic (the same bits twice: no atomics in any kernel).
# SKIP without a CUDA build or a GPU.
. "$DV2_ROOT/tests/lib.sh"
[ "${DV2_CUDA:-0}" = 1 ] || skip "this build has no CUDA"
command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 || skip "no GPU"
pack_fmnist_t10k data
micro_cfg tiny.cfg 'train.batch_size_per_gpu = 8' 'train.OFFICIAL_EPOCH_LENGTH = 20' \
	'train.num_workers = 2' 'optim.epochs = 3' 'optim.lr = 1e-3' 'optim.warmup_epochs = 1' \
	'teacher.warmup_teacher_temp_epochs = 1'
losses() { sed 's/.*"loss": \([^,]*\),.*/\1/' "$1"; }
gap() { paste "$1" "$2" | awk '{d = $1 - $2; if (d < 0) d = -d; r = d / ($1 < 0 ? -$1 : $1); if (r > m) m = r} END {printf "%.4f", m}'; }
export OMP_NUM_THREADS=2
expect_exit 0 dv2-train -c tiny.cfg --data data -o cpu -j 2 --device cpu
for d in cuda cuda-bf16; do
	expect_exit 0 dv2-train -c tiny.cfg --data data -o $d -j 2 --device $d -v
	expect_grep "device $d" err.txt
	expect_exit 0 dv2-train -c tiny.cfg --data data -o $d-again -j 2 --device $d
	losses $d/metrics.jsonl > $d.txt
	losses $d-again/metrics.jsonl > $d-again.txt
	expect_eq "$(wc -l < $d.txt)" 60 "$d metrics lines"
	expect_same $d.txt $d-again.txt
done
losses cpu/metrics.jsonl > cpu.txt
g=$(gap cpu.txt cuda.txt) b=$(gap cpu.txt cuda-bf16.txt)
echo "largest relative loss gap over 60 iterations: cuda $g, cuda-bf16 $b (vs the CPU in f32)"
awk -v g="$g" 'BEGIN {exit !(g < 0.02)}' || fail "the cuda loss curve leaves the 2% band of the CPU's (gap $g)"
awk -v g="$b" 'BEGIN {exit !(g < 0.05)}' || fail "the cuda-bf16 loss curve leaves the 5% band of the CPU's (gap $b)"
finish
