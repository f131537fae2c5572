# lib.sh — helpers for CLI tests (sourced by tests/t_*.sh).  Each test runs in
# its own temporary directory (the runner cd's there).  Functions count
# failures; `finish` exits 1 if any check failed.
set -u
: "${DV2_ROOT:?run through tests/run.sh}"
PY=/usr/bin/python3
_fail=0 _n=0

fail() { echo "FAIL: $*" >&2; _fail=$((_fail + 1)); }
ok() { _n=$((_n + 1)); }
skip() { echo "skip: $*"; exit 77; }

# expect_exit CODE cmd... : runs cmd (stdout to out.txt, stderr to err.txt), checks the exit code
expect_exit() {
	want=$1; shift
	"$@" >out.txt 2>err.txt
	got=$?
	if [ "$got" != "$want" ]; then
		fail "exit $got (wanted $want): $*"; sed 's/^/  stderr: /' err.txt | head -n 10 >&2
	else ok; fi
}
# expect_grep PATTERN FILE
expect_grep() {
	if grep -q -e "$1" "$2"; then ok; else fail "'$1' not in $2:"; head -n 10 "$2" | sed 's/^/  /' >&2; fi
}
expect_nogrep() {
	if grep -q -e "$1" "$2"; then fail "'$1' unexpectedly in $2"; else ok; fi
}
expect_same() { # FILE FILE
	if cmp -s "$1" "$2"; then ok; else fail "$1 and $2 differ"; fi
}
expect_eq() { # GOT WANT WHAT
	if [ "$1" = "$2" ]; then ok; else fail "$3: got '$1', wanted '$2'"; fi
}
expect_empty() {
	if [ -s "$1" ]; then fail "$1 not empty:"; head -n 5 "$1" | sed 's/^/  /' >&2; else ok; fi
}
finish() {
	if [ $_fail -gt 0 ]; then echo "$_fail of $((_n + _fail)) checks failed" >&2; exit 1; fi
	echo "$_n checks passed" >&2; exit 0
}
