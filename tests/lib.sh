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

# pack_fmnist_t10k OUT: the Fashion-MNIST test set (10,000 labelled images)
# packed into OUT (a dataset directory, or a .dv2s file); skips when Debian's
# dataset-fashion-mnist is not installed.
FMNIST=/usr/share/datasets/fashion-mnist
pack_fmnist_t10k() {
	[ -f $FMNIST/t10k-images-idx3-ubyte.gz ] || skip "dataset-fashion-mnist not installed"
	dv2-pack -q -o "$1" --idx-labels $FMNIST/t10k-labels-idx1-ubyte.gz $FMNIST/t10k-images-idx3-ubyte.gz ||
		{ fail "dv2-pack of the Fashion-MNIST test set"; finish; }
}

# micro_cfg FILE ['key = value'...]: a training config for a micro ViT (D 32,
# 2 blocks, 2 heads, patch 4, 16 px globals, 2 local crops of 8 px, 256
# prototypes) that trains in seconds; each argument adds a key or replaces
# the base value of that key.
micro_cfg() {
	f=$1; shift
	printf '%s\n' 'student.arch = custom' 'student.embed_dim = 32' 'student.depth = 2' \
		'student.num_heads = 2' 'student.patch_size = 4' 'dino.head_n_prototypes = 256' \
		'dino.head_bottleneck_dim = 32' 'dino.head_hidden_dim = 64' 'ibot.head_n_prototypes = 256' \
		'crops.local_crops_number = 2' 'crops.global_crops_size = 16' 'crops.local_crops_size = 8' > "$f"
	for kv in "$@"; do
		k=$(printf '%s' "${kv%%=*}" | tr -d ' ')
		grep -v "^$k *=" "$f" > "$f.tmp"; mv "$f.tmp" "$f"
		printf '%s\n' "$kv" >> "$f"
	done
}

# knn20 WEIGHTS DB TEST: embeds the shards DB and TEST at 28 px with the
# model WEIGHTS (outputs beside, named after WEIGHTS) and prints the k-NN
# top-1 (k = 20) of TEST against DB; prints nothing when a step fails.
knn20() {
	e=$(printf '%s' "$1" | tr '/' '_')
	dv2-embed -q -m "$1" --size 28 --resize 28 -o "$e.db.emb" "$2" &&
	dv2-embed -q -m "$1" --size 28 --resize 28 -o "$e.te.emb" "$3" &&
	dv2-probe -q --train "$e.db.emb" --test "$e.te.emb" --knn 20 | awk '$1 == 20 {print $2}'
}
# metric_mean METRICS KEY N: the mean of KEY over the last N lines of a
# metrics.jsonl, printed as "mean count" (nothing when no line has KEY).
metric_mean() {
	tail -n "$3" "$1" | awk -v k="\"$2\": " '
		{ i = index($0, k); if (i) { v = substr($0, i + length(k)); s += v + 0; n++ } }
		END { if (n) printf "%.4f %d\n", s / n, n }'
}
