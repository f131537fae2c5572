#!/bin/sh
# Test runner: runs every test binary build/tests/test_* and every script
# tests/t_*.sh, each in its own temporary directory, and prints PASS, FAIL or
# SKIP per test, then "N passed, N failed" (", N skipped").  A test passes by
# exiting 0 and skips by exiting 77; anything else fails.  Arguments (or T=)
# are substrings that select tests.  Exit status: 1 if any test failed.
export LC_ALL=C
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-bin} # the programs' folder (the Makefile's BIN)
export DV2_ROOT="$ROOT" DV2_BIN="$ROOT/$BIN" DV2_BUILD="$ROOT/$BUILD"
export PATH="$ROOT/$BIN:$PATH"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OPENBLAS_NUM_THREADS=1
pass=0 fail=0 skip=0 failed=""
logdir="$ROOT/$BUILD/test-logs"
mkdir -p "$logdir"

selected() {
	[ $# -eq 0 ] && return 0
	name=$1; shift
	for pat in $SEL; do case "$name" in *"$pat"*) return 0;; esac; done
	return 1
}
SEL="$*"

run_one() { # name, command...
	name=$1; shift
	if [ -n "$SEL" ]; then
		match=0
		for pat in $SEL; do case "$name" in *"$pat"*) match=1;; esac; done
		[ $match = 1 ] || return 0
	fi
	if [ -n "$DV2_GPU_ONLY" ]; then case "$name" in *gpu*|*cuda*) ;; *) return 0;; esac; fi
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/dv2-test.XXXXXX")
	start=$(date +%s)
	(cd "$tmp" && TMPDIR="$tmp" "$@") >"$logdir/$name.log" 2>&1 </dev/null
	rc=$?
	secs=$(( $(date +%s) - start ))
	case $rc in
	0) pass=$((pass + 1)); printf 'PASS  %-40s %4ss\n' "$name" "$secs";;
	77) skip=$((skip + 1)); printf 'SKIP  %-40s %s\n' "$name" "$(tail -n 1 "$logdir/$name.log")";;
	*) fail=$((fail + 1)); failed="$failed $name"; printf 'FAIL  %-40s %4ss (exit %s)\n' "$name" "$secs" "$rc"
	   sed 's/^/      | /' "$logdir/$name.log" | tail -n 30;;
	esac
	rm -rf "$tmp"
}

for t in "$ROOT/$BUILD"/tests/test_*; do
	[ -x "$t" ] || continue
	case "$t" in *.o|*.d) continue;; esac
	run_one "$(basename "$t")" "$t"
done
for t in "$ROOT"/tests/t_*.sh; do
	[ -f "$t" ] || continue
	run_one "$(basename "$t" .sh)" sh "$t"
done

[ -n "$failed" ] && echo "failed:$failed (logs in $BUILD/test-logs/)"
if [ $skip -gt 0 ]; then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ $fail -eq 0 ]
