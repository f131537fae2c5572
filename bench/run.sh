#!/bin/sh
# Benchmark runner: runs every bench/b_*.sh (or those matching the arguments),
# each of which times our program and its baseline in the same run and prints
# lines "RESULT <name> <ours> <baseline> <unit> ratio=<x>".  The collected
# RESULT lines are printed again as a table at the end.  Benchmarks are not
# tests: they never fail the build; a missing baseline is reported as such.
export LC_ALL=C
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export DV2_ROOT="$ROOT" DV2_BIN="$ROOT/bin" DV2_BUILD="$ROOT/${BUILD:-build}"
export PATH="$ROOT/bin:$PATH"
out=$(mktemp)
# Both sides must run the same BLAS kernels (OPENBLAS_CORETYPE, the
# fallback correction of dv2): the baselines get the core dv2 runs, and
# both say which they run.
core=$("$ROOT/bin/dv2-pack" -V | sed -n 's/^blas: .*; \([A-Za-z0-9]*\) kernels.*/\1/p')
[ -z "${OPENBLAS_CORETYPE:-}" ] && [ -n "$core" ] && export OPENBLAS_CORETYPE="$core"
echo "dv2 $("$ROOT/bin/dv2-pack" -V | grep '^blas:')"
echo "dv2 $("$ROOT/bin/dv2-pack" -V | grep '^vector kernels:')"
/usr/bin/python3 "$ROOT/bench/blas_core.py" 2>&1
for b in "$ROOT"/bench/b_*.sh; do
	[ -f "$b" ] || continue
	name=$(basename "$b" .sh)
	if [ $# -gt 0 ]; then
		m=0; for pat in "$@"; do case "$name" in *"$pat"*) m=1;; esac; done
		[ $m = 1 ] || continue
	fi
	if [ -n "${DV2_GPU_ONLY:-}" ]; then case "$name" in *gpu*|*cuda*) ;; *) continue;; esac; fi
	echo "== $name"
	tmp=$(mktemp -d)
	(cd "$tmp" && sh "$b") 2>&1 | tee -a "$out"
	rm -rf "$tmp"
done
echo
echo "== summary ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(date -u +%Y-%m-%d))"
grep '^RESULT' "$out" | sed 's/^RESULT //' | column -t 2>/dev/null || grep '^RESULT' "$out"
rm -f "$out"
