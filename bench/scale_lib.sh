# scale_lib.sh — helpers of bench/scale_dedup.sh and bench/scale_hkmeans.sh
# (sourced; not a benchmark of bench/run.sh, which runs only b_*.sh).
#
# scale_run NAME CMD...: runs CMD under nice -n 19 and /usr/bin/time -v, its
# stdout to /dev/null and its stderr, each progress update and message
# stamped with the seconds since the start (bench/scale_stamp.py), to
# $SCALE_DIR/NAME.log; appends the command, uptime before and after, wall,
# user and system seconds and the peak RSS to $RES (set by the script).
# SCALE_THREADS (default 1) threads: -j of the dv2 programs, OMP_NUM_THREADS
# and OPENBLAS_NUM_THREADS; one thread keeps the CPU time free of the spin
# waits of idle threads, which a shared machine otherwise adds.
SCALE_DIR=${SCALE_DIR:-/tmp/scale}
SCALE_ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
export PATH="$SCALE_ROOT/bin:$PATH"
SCALE_THREADS=${SCALE_THREADS:-1}
export OMP_NUM_THREADS=$SCALE_THREADS OPENBLAS_NUM_THREADS=$SCALE_THREADS
mkdir -p "$SCALE_DIR"

scale_run() {
	name=$1
	shift
	echo "== $name: $*" >> "$RES"
	echo "load before: $(uptime)" >> "$RES"
	{ nice -n 19 /usr/bin/time -v -o "$SCALE_DIR/$name.time" "$@" 2>&1 >/dev/null; echo $? > "$SCALE_DIR/$name.rc"; } |
		nice -n 19 $PY "$SCALE_ROOT/bench/scale_stamp.py" > "$SCALE_DIR/$name.log"
	echo "load after:  $(uptime)" >> "$RES"
	awk -v rc="$(cat "$SCALE_DIR/$name.rc")" '
		/Elapsed \(wall clock\)/ { n = split($NF, t, ":"); w = 0; for (i = 1; i <= n; i++) w = w * 60 + t[i] }
		/User time/ { u = $NF } /System time/ { s = $NF } /Maximum resident/ { m = $NF }
		END { printf "rc %d wall %.1f s user %.1f s sys %.1f s peak RSS %.0f MiB\n", rc, w, u, s, m / 1024 }' \
		"$SCALE_DIR/$name.time" >> "$RES"
	grep -v '^[0-9.]* dv2-[a-z]*: [0-9]*/[0-9]* ' "$SCALE_DIR/$name.log" | sed 's/^/  /' >> "$RES"
	tail -n 4 "$RES"
}
