# b_train.sh — images/s of one full dv2-train step on the CPU at the sizes of
# configs/fmnist_tiny.cfg (teacher, student on packed global + local crops
# with masks, heads, DINO + iBOT + KoLeo, backward, clipping, AdamW, EMA)
# against the same step in eager PyTorch (bench/train_torch.py, float32,
# random inputs), same machine, same thread count (OMP_NUM_THREADS, default
# 2, passive OpenMP waiting as in b_model.sh).  Ours is the median images_per_s of metrics.jsonl over iterations
# 2..TRAIN_STEPS-1 of a real run on Fashion-MNIST (data loading runs on
# worker threads in parallel and is included only where the step waits for
# it); baseline: median of the same number of steps after a warm-up.
STEPS=${TRAIN_STEPS:-12}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
PY=/usr/bin/python3
F=/usr/share/datasets/fashion-mnist
data=${TRAIN_DATA:-}   # a packed dataset to use instead of packing Fashion-MNIST
if [ -z "$data" ]; then
	[ -f $F/t10k-images-idx3-ubyte.gz ] || { echo "skip: dataset-fashion-mnist not installed"; exit 0; }
	dv2-pack -q -o data --idx-labels $F/t10k-labels-idx1-ubyte.gz $F/t10k-images-idx3-ubyte.gz || { echo "dv2-pack failed"; exit 0; }
	data=data
fi
dv2-train -c "$DV2_ROOT/configs/fmnist_tiny.cfg" --data "$data" -o run -q -j "$OMP_NUM_THREADS" \
	--max-iters "$STEPS" train.checkpoint_period=0 || { echo "dv2-train failed"; exit 0; }
o=$($PY -c "
import json, statistics
v = [json.loads(l)['images_per_s'] for l in open('run/metrics.jsonl')][2:]
print('%.2f' % statistics.median(v))")
if "$PY" -c "import torch" 2>/dev/null; then
	"$PY" "$DV2_ROOT/bench/train_torch.py" "$((STEPS - 2))" > base.txt 2>base.log || { cat base.log; echo "baseline failed"; exit 0; }
	b=$(sed -n 's/^BASE //p' base.txt)
	echo "RESULT fmnist_tiny_train_step $o $b img/s ratio=$(echo "$o $b" | awk '{printf "%.2f", $1/$2}') threads=$OMP_NUM_THREADS"
else
	echo "RESULT fmnist_tiny_train_step $o - img/s ratio=- (no torch for the baseline) threads=$OMP_NUM_THREADS"
fi
