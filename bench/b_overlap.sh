# b_overlap.sh — the gradient reduction overlapped with the backward
# (train.overlap_grad_reduce = true, each block's gradient reduced as soon as
# its backward is done) against the reduction after the backward (false):
# `mpirun -np 2`, one thread per rank, fmnist_tiny (0.63 M parameters) and
# the same recipe on a ViT-S-sized backbone (384 wide, 12 blocks, 21.6 M
# parameters, 8 images per rank).  Per mode: the median over OVERLAP_ROUNDS
# interleaved rounds of the median step images/s (metrics.jsonl, iterations
# 2..) and of the milliseconds per step the reduction takes after the
# backward (-v).  On a machine whose ranks share the cores, the reduction's
# copies and sums compete with the backward for them: the exposed time
# shrinks, the step time need not.
. "$DV2_ROOT/bench/lib.sh"
R=${OVERLAP_ROUNDS:-3}
PY=/usr/bin/python3
F=/usr/share/datasets/fashion-mnist
command -v mpirun >/dev/null || { echo "skip: no mpirun"; exit 0; }
dv2-train -V | grep -q "mpi=yes" || { echo "skip: a build without MPI"; exit 0; }
[ -f $F/t10k-images-idx3-ubyte.gz ] || { echo "skip: dataset-fashion-mnist not installed"; exit 0; }
dv2-pack -q -o data --idx-labels $F/t10k-labels-idx1-ubyte.gz $F/t10k-images-idx3-ubyte.gz || { echo "dv2-pack failed"; exit 0; }
extra=""
[ "$(id -u)" = 0 ] && extra="--allow-run-as-root"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
vits="student.embed_dim=384 student.depth=12 student.num_heads=6 train.batch_size_per_gpu=8"
for model in tiny vits; do
	case $model in tiny) set -- train.max_iters=40;; vits) set -- train.max_iters=10 $vits;; esac
	for r in $(seq "$R"); do
		for mode in true false; do
			rm -rf run
			mpirun $extra --oversubscribe -np 2 -x OMP_NUM_THREADS -x OMP_WAIT_POLICY dv2-train -v \
				-c "$DV2_ROOT/configs/fmnist_tiny.cfg" --data data -o run -j 1 train.checkpoint_period=0 \
				train.overlap_grad_reduce=$mode "$@" > out.txt 2> err.txt ||
				{ tail -n 5 err.txt; echo "dv2-train failed"; exit 0; }
			$PY -c "
import json, statistics
v = [json.loads(l)['images_per_s'] for l in open('run/metrics.jsonl')][2:]
print('%.3f' % statistics.median(v))" >> ips_${model}_$mode
			sed -n 's/.*gradient reduction: \([0-9.]*\) ms per step after the backward.*/\1/p' err.txt >> ms_${model}_$mode
		done
	done
	for what in ips ms; do
		o=$(median < ${what}_${model}_true) b=$(median < ${what}_${model}_false)
		unit="img/s"
		[ $what = ms ] && unit="ms_exposed"
		echo "RESULT overlap_${model}_$what $o $b $unit ratio=$(echo "$o $b" | awk '{printf "%.2f", $1/$2}') np=2 threads=1 rounds=$R"
	done
done
