# t_train_longref.sh — dv2's training step and the independent PyTorch
# reference (tests/ref/train_ref.py, float64) stay in step over 200
# iterations, not just the 5 of test_parity_train: the same tiny config
# (D 32, 2 blocks, K 64, batch 4, 2 local crops), the same initial weights
# and, per iteration, the same crops (windows of a pool of 16 smooth images,
# plus noise) and iBOT masks, all written by train_ref.py --long 200; the
# schedules run over the 200 iterations (10 "epochs" of 20: lr warm-up 1,
# teacher temperature warm-up 3, last layer frozen 1).  test_parity_train
# --long compares the five loss terms per iteration and per block of 20
# within per-term bands (their reasons are in tests/test_parity_train.c:
# float32 against float64 drift, measured at 1e-6 to 4e-5, KoLeo 9e-4).
# Then the band must fail: a 2% change of the lr, the teacher temperature
# or the KoLeo weight on dv2's side alone moves the curves out of it.
. "$DV2_ROOT/tests/lib.sh"
"$PY" -c 'import torch, numpy' 2>/dev/null || skip "python3-torch not installed"
T="$DV2_BUILD/tests/test_parity_train"
[ -x "$T" ] || skip "$T not built"
export OMP_NUM_THREADS=1
if "$PY" "$DV2_ROOT/tests/ref/train_ref.py" --long 200 long.bin >ref.txt 2>&1; then ok; else
	fail "train_ref.py --long 200"; tail -n 5 ref.txt >&2; finish
fi
cat ref.txt >&2
expect_exit 0 "$T" --long long.bin
grep -v '^step ' out.txt >&2
cat err.txt >&2
for kv in optim.lr=2.04e-3 teacher.teacher_temp=0.0714 dino.koleo_loss_weight=0.102; do
	expect_exit 1 "$T" --long long.bin "$kv"
	expect_grep "per-step loss values outside the band" err.txt
	echo "$kv on dv2's side only: $(grep 'worst per-step' err.txt)" >&2
done
finish
