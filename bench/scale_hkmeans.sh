#!/bin/sh
# scale_hkmeans.sh — the cost of dv2-hkmeans levels (docs/SCALING.md).
# Steps (SCALE_STEPS, default "data rates tree big"):
#   data   bench/scale_data.py hkmeans: SCALE_N (1000000) x 384 float16 rows,
#          a long-tailed mixture, and its first SCALE_SMALL (100000) rows
#          (skipped when the files exist)
#   rates  level 1 alone on the SCALE_SMALL pool, SCALE_K1 (1000) clusters,
#          no resampling, --niter 1 and --niter 11: k-means++ seeding plus
#          two assignments, and ten Lloyd iterations more
#   tree   the four levels SCALE_TREE (1000,200,50,10) of the SCALE_SMALL
#          pool with the default steps (10), sample size (10) and --niter
#          (50), then a 10% sample of the pool from the tree
#   big    level 1 alone on the SCALE_N pool, SCALE_K1 clusters, no
#          resampling, --niter 1: seeding and Lloyd at the full size, and the
#          peak memory of a 1M x 384 pool
# Every run is timed under nice -n 19 (bench/scale_lib.sh).  Results:
# SCALE_DIR (/tmp/scale)/results_hkmeans.txt.
set -u
. "$(cd "$(dirname "$0")" && pwd)/scale_lib.sh"
N=${SCALE_N:-1000000}
SMALL=${SCALE_SMALL:-100000}
K1=${SCALE_K1:-1000}
TREE=${SCALE_TREE:-1000,200,50,10}
STEPS=${SCALE_STEPS:-data rates tree big}
D=$SCALE_DIR
RES=$D/results_hkmeans.txt
J="-j $SCALE_THREADS"

for step in $STEPS; do
	case $step in
	data)
		[ -f "$D/hkm_$N.emb" ] && [ -f "$D/hkm_$SMALL.emb" ] ||
			scale_run data_hkmeans $PY "$SCALE_ROOT/bench/scale_data.py" hkmeans "$D" --n "$N" --subsets "$SMALL"
		for m in $N $SMALL; do [ -f "$D/hkm_$m.emb" ] || { echo "scale_hkmeans: no $D/hkm_$m.emb" >&2; exit 1; }; done
		;;
	rates)
		for it in 1 11; do
			scale_run "hkm_${SMALL}_k${K1}_it$it" dv2-hkmeans $J -f -v --tree "$D/tree_rates" --clusters "$K1" \
				--steps 0 --niter $it "$D/hkm_$SMALL.emb"
		done
		;;
	tree)
		scale_run "hkm_${SMALL}_tree" dv2-hkmeans $J -f -v --tree "$D/tree_small" --clusters "$TREE" \
			"$D/hkm_$SMALL.emb" --target $((SMALL / 10)) -o "$D/hkm_${SMALL}_sel.ids"
		;;
	big)
		scale_run "hkm_${N}_k${K1}_it1" dv2-hkmeans $J -f -v --tree "$D/tree_big" --clusters "$K1" \
			--steps 0 --niter 1 "$D/hkm_$N.emb"
		;;
	*) echo "scale_hkmeans: unknown step $step" >&2; exit 2 ;;
	esac
done
