# t_cli.sh — the CLI contract every dv2 program shares: --help on stdout with
# exit 0 and nothing on stderr, --version with the build features, an unknown
# option or a missing option argument is exit 2 with a one-line error and a
# hint on stderr and nothing on stdout, a failed write of stdout (/dev/full)
# is exit 1 with a message; every program takes --seed and --device, -V
# says what the program runs on and --device cuda where it cannot is a usage
# error; bad option values exit 2, conflicts with what is on disk exit 1;
# progress is not drawn on the terminal that receives the data.
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
	# the common contract: --seed and --device everywhere (README)
	expect_exit 0 "$p" --seed 1 --device cpu --help
	expect_exit 0 "$p" --device auto --help
	expect_exit 2 "$p" --device tpu
	expect_exit 2 "$p" --seed -1
	# -V says what this program runs on; --device cuda elsewhere is a usage error
	expect_exit 0 "$p" -V
	expect_grep "^devices: cpu" out.txt
	if ! grep -q "^devices: .*cuda" out.txt; then
		expect_exit 2 "$p" --device cuda
		expect_grep "^$name: error: --device cuda: $name runs on the CPU only" err.txt
	fi
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

# a run directory is never standard output
expect_exit 2 dv2-train -o -
expect_grep "a run is a directory" err.txt
[ ! -e ./- ] && ok || fail "dv2-train -o - created a directory named '-'"
# bad option values are usage errors (2), before any work
expect_exit 2 dv2-embed --arch vit_tiny -o x.emb in
expect_grep "unknown architecture 'vit_tiny'" err.txt
expect_exit 2 dv2-embed --arch vit_small --size 30 -o x.emb in
expect_grep "not a multiple of the patch size 14" err.txt
expect_exit 2 dv2-pack --level 99 -o x in
expect_exit 2 dv2-pack --webdataset -o x in

# progress never shares the terminal with the data: stdout and stderr on one
# pseudo-terminal, --progress given, and no meter in what the terminal shows
SK=/usr/lib/python3/dist-packages/skimage/data
if [ -f "$SK/rocket.jpg" ]; then
	mkdir img && cp "$SK/rocket.jpg" "$SK/coffee.png" img/
	dv2-pack -q -o ds img && dv2-embed -q --pixels --size 16 -o px.emb ds || fail "making px.emb"
	$PY - <<'PYEOF' > tty.txt || fail "running dv2-retrieve on a pseudo-terminal"
import os, pty, subprocess, sys
m, s = pty.openpty()
p = subprocess.Popen(["dv2-retrieve", "--progress", "--queries", "px.emb", "--pool", "px.emb", "-n", "1"],
                     stdin=subprocess.DEVNULL, stdout=s, stderr=s)
os.close(s)
out = b""
while True:
    try:
        b = os.read(m, 4096)
    except OSError:
        break
    if not b:
        break
    out += b
sys.exit(p.wait() or (sys.stdout.write(out.decode(errors="replace")) and 0))
PYEOF
	expect_grep "	1.000000" tty.txt
	expect_nogrep "queries.*/s" tty.txt
fi
finish
