# t_demo.sh — scripts/demo at DEMO_SCALE=small: one uninterrupted run (every
# stage's outputs, the results table with all its rows, the precision and
# recall lines of the planted copies and leaks, the planted truth in dataset
# ids), a re-run that changes nothing, other settings refused; then a second
# run killed with SIGKILL (its whole process group) at 10 random moments of
# the first run's duration, placed by stage, and re-run after each kill, the
# last time to the end: its results.tsv, and every other deterministic
# output, must equal the uninterrupted run's byte for byte.  One thread
# (DEMO_THREADS=1).  A full run is about 28 CPU seconds; the test took 129 s
# at a load average of 8 on 2 cores.
. "$DV2_ROOT/tests/lib.sh"
[ -f $FMNIST/train-images-idx3-ubyte.gz ] || skip "dataset-fashion-mnist not installed"
$PY -c 'import PIL' 2>/dev/null || skip "python3-pil not installed"
command -v setsid > /dev/null || skip "no setsid"
export DEMO_SCALE=small DEMO_THREADS=1
unset DEVICE DEMO_CONFIG DEMO_DISTILL_CONFIG DEMO_DEDUP_THRESHOLD DEMO_LEAK_THRESHOLD
demo() { DEMO_DIR=$1 sh "$DV2_ROOT/scripts/demo"; }

# usage and settings errors come before any work
DEMO_SCALE=huge expect_exit 2 demo bad
expect_grep "DEMO_SCALE=huge" err.txt
[ -d bad ] && fail "a bad DEMO_SCALE created its directory" || ok

# the uninterrupted run
t0=$(date +%s)
expect_exit 0 demo ref
dur=$(( $(date +%s) - t0 ))
cp out.txt ref.out; cp err.txt ref.err
echo "uninterrupted run: $dur s" >&2
for row in pixels init teacher student curated random; do
	expect_grep "^$row	" ref/results.tsv
done
expect_eq "$(grep -c -v '^#' ref/results.tsv)" 6 "rows of results.tsv"
expect_eq "$(awk -F'\t' '$1 == "curated" || $1 == "random" { print $2 }' ref/results.tsv | sort -u)" 2 "seeds of the comparison rows"
for row in "raw pixels" "random init" "trained teacher" "distilled student" "short run on the curated selection" \
	"short run on a random selection"; do
	expect_grep "^$row" ref/summary.txt
done
expect_grep "^demo: planted copies at 0.995: precision [01]\.[0-9]*, recall [01]\.[0-9]*" ref.err
expect_grep "^demo: planted leaks at 0.995: precision [01]\.[0-9]*, recall [01]\.[0-9]*" ref.err
expect_grep "^planted copies (copy descriptor, threshold 0.995): precision" ref/summary.txt
expect_grep "demo: stage 5-probe: [0-9]* s" ref.err
expect_grep "total [0-9]* s" ref.err
expect_grep "index.html" ref.out
expect_eq "$(tail -n 1 ref.out | grep -c "ref/index.html")" 1 "the last line names ref/index.html"
# the planted truth: 100 copies and 50 leaks, in dataset ids of the pool and t10k
expect_eq "$(grep -c -v '^#' ref/plant-truth.tsv)" 150 "planted images"
dv2-pack --ls ref/pool | cut -f1 | sort > pool.ids
dv2-pack --ls ref/t10k ref/pool | cut -f1 | sort > all.ids
expect_eq "$(grep -v '^#' ref/plant-truth.tsv | cut -f1 | sort | comm -23 - pool.ids | wc -l)" 0 "copy ids not in the pool"
expect_eq "$(grep -v '^#' ref/plant-truth.tsv | cut -f2 | sort | comm -23 - all.ids | wc -l)" 0 "original ids not in pool or t10k"
expect_eq "$(grep -c 'leak-' ref/plant-truth.tsv)" 50 "leak rows"
# the caught copies can be checked by hand: flips are all caught (flip-invariant descriptor)
expect_grep "^copies-flip	0.995	20	20	" ref/dedup-eval.tsv
for f in dedup-report/index.html dedup-groups.tsv retrieve-sample.tsv retrieve-cluster.tsv hkmeans.ids \
	run/loss.svg run/teacher.safetensors student/loss.svg student/student_ema.safetensors seed/manifest.json \
	pool/manifest.json train/manifest.json t10k/manifest.json; do
	[ -s ref/$f ] && ok || fail "ref/$f missing"
done
expect_eq "$(ls ref/pca/*.jpg | wc -l)" 8 "PCA pictures"
# retrieve-sample.tsv: pool id, seed id, similarity
dv2-pack --ls ref/seed | cut -f1 | sort > seed.ids
expect_eq "$(cut -f1 ref/retrieve-sample.tsv | sort | comm -23 - pool.ids | wc -l)" 0 "retrieved ids not in the pool"
expect_eq "$(cut -f2 ref/retrieve-sample.tsv | sort -u | comm -23 - seed.ids | wc -l)" 0 "query ids not in the seed set"

# a finished directory: a re-run does nothing and changes nothing
cp ref/results.tsv results.before; cp ref/run/teacher.safetensors teacher.before
expect_exit 0 demo ref
expect_same results.before ref/results.tsv
expect_same teacher.before ref/run/teacher.safetensors
# other settings on the same directory are refused
DEMO_SCALE=default expect_exit 1 demo ref
expect_grep "was made with" err.txt

# killed at 10 random moments within the uninterrupted run's duration.  A
# re-run skips the finished stages and redoes the interrupted one, so a
# moment is placed by stage: at moment m the uninterrupted run was O seconds
# into stage S (its stage times), and the killed run is killed O seconds
# after it prints the header of S (at once if it ends first).
sed -n 's/^demo: stage \([^:]*\): \([0-9]*\) s.*/\1 \2/p' ref.err > stages.txt
expect_eq "$(wc -l < stages.txt)" 6 "stage times of the uninterrupted run"
total=$(awk '{ t += $2 } END { print t }' stages.txt)
[ "$total" -ge 1 ] || total=1
moments=$(od -An -N40 -tu4 /dev/urandom | tr -s ' ' '\n' | grep . |
	awk -v d="$total" '{ printf "%.2f\n", ($1 % 100000) / 100000 * d }' | sort -n)
echo "kill moments (s of the uninterrupted run's stages): $(echo $moments)" >&2
i=0
for m in $moments; do
	i=$((i + 1))
	set -- $(awk -v m="$m" '{ if (m < t + $2 || NR == 6) { printf "%s %.2f\n", $1, m - t; exit } t += $2 }' stages.txt)
	DEMO_DIR=kill setsid sh "$DV2_ROOT/scripts/demo" > kill$i.out 2> kill$i.err &
	pid=$!
	n=0
	while ! grep -q "^== $1 " kill$i.err 2>/dev/null && kill -0 $pid 2>/dev/null && [ $n -lt 3000 ]; do
		sleep 0.1; n=$((n + 1))
	done
	sleep "$2"
	kill -9 -- -$pid 2>/dev/null || kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null
	n=0
	while kill -0 -- -$pid 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
	kill -0 -- -$pid 2>/dev/null && fail "kill $i: processes of the demo still run"
	echo "kill $i at $m s: $2 s into stage $1; the run was in $(grep '^== ' kill$i.err | tail -n 1 | cut -d' ' -f2)" >&2
done
expect_exit 0 demo kill
cp err.txt kill-final.err
for f in results.tsv summary.txt dedup-eval.tsv plant-truth.tsv pool.keep retrieve-sample.tsv retrieve-cluster.tsv \
	hkmeans.ids random.ids run/teacher.safetensors student/student_ema.safetensors; do
	expect_same ref/$f kill/$f
done
if ! cmp -s ref/results.tsv kill/results.tsv; then
	diff ref/results.tsv kill/results.tsv >&2
	sed 's/^/  final run: /' kill-final.err | tail -n 20 >&2
fi
finish
