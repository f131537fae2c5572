# t_pack_resume.sh — a real dv2-pack run killed with SIGKILL in the middle,
# then the same command again: it keeps the complete shards, removes the
# temporary file of the killed one, and ends with a dataset byte-identical to
# an uninterrupted run.
. "$DV2_ROOT/tests/lib.sh"
FM=/usr/share/datasets/fashion-mnist
[ -f "$FM/train-images-idx3-ubyte.gz" ] || skip "Fashion-MNIST not installed"
set -- -j 1 --level 19 --shard-size 256K --idx-labels "$FM/train-labels-idx1-ubyte.gz" "$FM/train-images-idx3-ubyte.gz"

dv2-pack -q -o ref "$@" || fail "reference run"
nref=$(ls ref/shard-*.dv2s | wc -l)
[ "$nref" -gt 20 ] && ok || fail "reference has only $nref shards"

dv2-pack -q -o run "$@" &
pid=$!
i=0
while [ ! -f run/shard-000008.dv2s ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
if [ -f run/manifest.json ]; then
	skip "the run finished before it could be killed"
fi
nkept=$(ls run/shard-*.dv2s | wc -l)
echo "killed with $nkept complete shards"
[ "$nkept" -ge 9 ] && ok || fail "expected at least 9 complete shards, got $nkept"
# every shard that carries its final name is whole
for s in run/shard-*.dv2s; do expect_exit 0 dv2-pack --verify "$s"; done
# an unfinished dataset is not readable as a dataset
expect_exit 1 dv2-pack --ls run
expect_grep "manifest" err.txt

expect_exit 0 dv2-pack -o run "$@"
expect_grep "resuming run: keeping $nkept complete shards" err.txt
# the summary counts the whole dataset, and says what was kept
expect_grep "60000 records in $nref shards ([0-9]* records in $nkept shards kept from the interrupted run" err.txt
expect_eq "$(ls -A run | grep -c tmp)" 0 "temporary files left"
if diff -r ref run >diff.txt; then ok; else fail "resumed dataset differs from the reference"; head diff.txt >&2; fi
# shards from other inputs are not silently kept
rm run/manifest.json
expect_exit 1 dv2-pack -o run --idx-labels "$FM/t10k-labels-idx1-ubyte.gz" "$FM/t10k-images-idx3-ubyte.gz"
expect_grep "do not match\|use -f" err.txt
finish
