#!/bin/sh
# scale_dedup.sh — dv2-dedup at scale on synthetic copy descriptors
# (docs/SCALING.md).  Steps (SCALE_STEPS, default "data exact ivf"):
#   data   bench/scale_data.py dedup: SCALE_N (1000000) x 256 float32 rows
#          with 5% planted copies, and the first rows of every SCALE_EXACT
#          size as pools of their own (skipped when the files exist)
#          (SCALE_EXACT, default "50000 100000 200000")
#   exact  exact dv2-dedup of every SCALE_EXACT pool
#   ivf    dv2-dedup --index SCALE_INDEX (IVF2048,Flat) --nprobe SCALE_NPROBE
#          (4) of the SCALE_N pool
# Every run is timed under nice -n 19 (bench/scale_lib.sh) and checked by
# bench/scale_recall.py against numpy's exact search of 2,000 sampled rows
# and against the planted pairs.  Results: SCALE_DIR (/tmp/scale)/results_dedup.txt.
set -u
. "$(cd "$(dirname "$0")" && pwd)/scale_lib.sh"
N=${SCALE_N:-1000000}
EXACT=${SCALE_EXACT:-50000 100000 200000}
IDX=${SCALE_INDEX:-IVF2048,Flat}
NP=${SCALE_NPROBE:-4}
STEPS=${SCALE_STEPS:-data exact ivf}
D=$SCALE_DIR
RES=$D/results_dedup.txt
J="-j $SCALE_THREADS"

recall() { # name pool
	echo "recall $1: $(nice -n 19 $PY "$SCALE_ROOT/bench/scale_recall.py" "$2" "$D/$1.tsv" "$D/dedup_pairs.npy")" | tee -a "$RES"
}

for step in $STEPS; do
	case $step in
	data)
		need=0
		for m in $N $EXACT; do [ -f "$D/dedup_$m.emb" ] || need=1; done
		[ $need = 0 ] || scale_run data_dedup $PY "$SCALE_ROOT/bench/scale_data.py" dedup "$D" --n "$N" \
			--subsets "$(echo $EXACT | tr ' ' ,)"
		for m in $N $EXACT; do [ -f "$D/dedup_$m.emb" ] || { echo "scale_dedup: no $D/dedup_$m.emb" >&2; exit 1; }; done
		;;
	exact)
		for m in $EXACT; do
			scale_run "exact_$m" dv2-dedup $J -f -o "$D/exact_$m.ids" --groups "$D/exact_$m.tsv" --progress "$D/dedup_$m.emb"
			recall "exact_$m" "$D/dedup_$m.emb"
		done
		;;
	ivf)
		name=ivf_$(echo "$IDX" | tr -c 'A-Za-z0-9\n' _)_np$NP
		scale_run "$name" dv2-dedup $J -f -o "$D/$name.ids" --groups "$D/$name.tsv" --progress -v \
			--index "$IDX" --nprobe "$NP" "$D/dedup_$N.emb"
		# phases: the first progress update comes after the index is built and
		# one block of queries is searched; the next one block later
		awk '/images \(/ { n++; if (n == 1) t1 = $1; if (n == 2) t2 = $1 } { last = $1 }
			END { if (n >= 2) printf "phases: index built in about %.1f s (first update %.1f s, one query block %.1f s), search to %.1f s\n", t1 - (t2 - t1), t1, t2 - t1, last }' \
			"$D/$name.log" | tee -a "$RES"
		recall "$name" "$D/dedup_$N.emb"
		;;
	*) echo "scale_dedup: unknown step $step" >&2; exit 2 ;;
	esac
done
