# b_model.sh — CPU speed of the model code against eager PyTorch on the same
# machine, same run, same thread count (OMP_NUM_THREADS, default 2):
#   1. forward of vit_small/14 at 224x224, batch 16 (images/s);
#   2. one training step of a tiny configuration (ViT D=192, 4 blocks,
#      globals 8x112², locals 16x56², DINO head K=1024; steps/s).
# ours: build/bench/bench_model (lib/vit + lib/head on the CPU backend);
# baseline: bench/model_torch.py (the reference model of
# tests/ref/dinov2_ref.py in float32).  Medians of MODEL_REPS (forward, 3)
# and 7 (training step) runs after a warm-up; ours then the baseline.
# Both sides use libgomp; OMP_WAIT_POLICY defaults to passive here because on
# a shared machine spinning OpenMP threads wait for descheduled siblings at
# every barrier (4-10x slower for both sides at load 5); override it to
# compare on an idle machine.
B=${DV2_BENCH_BIN:-${DV2_BUILD:-$DV2_ROOT/build}/bench}/bench_model
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
[ -x "$B" ] || { echo "skip: $B not built"; exit 0; }
PY=/usr/bin/python3
"$PY" -c "import torch" 2>/dev/null || { echo "skip: no torch for the baseline"; exit 0; }
for w in fwd train; do
	case $w in fwd) REPS=${MODEL_REPS:-3};; *) REPS=7;; esac
	"$B" $w "$REPS" > ours.txt 2>ours.log || { cat ours.log; echo "bench_model $w failed"; continue; }
	"$PY" "$DV2_ROOT/bench/model_torch.py" $w "$REPS" > base.txt 2>base.log || { cat base.log; echo "baseline $w failed"; continue; }
	o=$(sed -n 's/^OURS //p' ours.txt); b=$(sed -n 's/^BASE //p' base.txt)
	case $w in fwd) name=vit_small14_fwd_224_b16 unit=img/s;; *) name=tiny_train_step unit=steps/s;; esac
	echo "RESULT $name $o $b $unit ratio=$(echo "$o $b" | awk '{printf "%.2f", $1/$2}') threads=$OMP_NUM_THREADS wait=$OMP_WAIT_POLICY"
	[ $w = fwd ] && gf=$(sed -n 's/^GFLOPS //p' ours.txt)
done
# the forward's achieved GFLOP/s against the sgemm rate on the same threads, same run
if [ -n "${gf:-}" ] && "$B" sgemm 5 > sg.txt 2>/dev/null; then
	sg=$(sed -n 's/^OURS //p' sg.txt)
	echo "RESULT vit_small14_fwd_vs_sgemm $gf $sg GFLOP/s fraction=$(echo "$gf $sg" | awk '{printf "%.2f", $1/$2}') threads=$OMP_NUM_THREADS"
fi
