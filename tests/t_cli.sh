# t_cli.sh — the CLI contract every dv2 program shares: --help on stdout with
# exit 0 and nothing on stderr, --version with the build features, an unknown
# option or a missing option argument is exit 2 with a one-line error and a
# hint on stderr and nothing on stdout, a failed write of stdout (/dev/full)
# is exit 1 with a message.
. "$DV2_ROOT/tests/lib.sh"
n=0
for p in "$DV2_BIN"/dv2-*; do
	[ -x "$p" ] || continue
	n=$((n + 1))
	name=$(basename "$p")
	expect_exit 0 "$p" --help
	expect_grep "^Usage: $name " out.txt
	expect_grep "Exit status" out.txt
	expect_empty err.txt
	expect_exit 0 "$p" -h
	expect_exit 0 "$p" --version
	expect_grep "^$name [0-9]" out.txt
	expect_grep "mpi=" out.txt
	expect_exit 2 "$p" --no-such-option
	expect_grep "^$name: error: unknown option '--no-such-option'" err.txt
	expect_grep "Try '$name --help'" err.txt
	expect_empty out.txt
	expect_exit 2 "$p" -Z
	expect_empty out.txt
	if "$p" --help 2>/dev/null | grep -q -- '--threads'; then
		expect_exit 2 "$p" --threads
		expect_grep "needs an argument" err.txt
		expect_exit 2 "$p" -j 0
		expect_exit 2 "$p" -j abc
	fi
	if [ -w /dev/full ]; then
		"$p" --help >/dev/full 2>err.txt
		rc=$?
		expect_eq "$rc" 1 "$name --help >/dev/full exit status"
		expect_grep "error: writing standard output" err.txt
	fi
done
[ $n -gt 0 ] || skip "no programs built"
finish
