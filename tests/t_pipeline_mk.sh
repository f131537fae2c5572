# t_pipeline_mk.sh — scripts/pipeline.mk end to end at test scale, under
# make -j2: 2000 Fashion-MNIST test images as the pool, 100 others as the
# curated set, 50 pool images as the evaluation set whose near-copies leave
# the pool, a micro ViT (2 iterations) as the curation model, a micro
# teacher (3 iterations), a distilled student (2 iterations), k-NN probe
# tables.  Checks the outputs are consistent with each other; that removing
# pool.keep redoes exactly the stages after it (files newer than a marker)
# and leaves the ones before it alone; that make -q then says up to date;
# that a corrupt input fails its stage with a nonzero status, leaving no
# target; and that `help` lists the stages.
. "$DV2_ROOT/tests/lib.sh"
command -v make >/dev/null || skip "no make"
MK="$DV2_ROOT/scripts/pipeline.mk"
export OMP_NUM_THREADS=1
pack_fmnist_t10k all
dv2-pack --ls all | cut -f1 > all.ids
sed -n 1,2000p all.ids > pool.ids
sed -n 2001,2100p all.ids > cur.ids
sed -n 3001,4000p all.ids > etr.ids
sed -n 4001,4300p all.ids > ete.ids
sed -n 1,50p all.ids > ag.ids
for s in pool cur etr ete ag; do
	dv2-pack -q --select $s.ids -o $s all || fail "pack $s"
done
micro_cfg m.cfg 'train.batch_size_per_gpu = 4' 'train.num_workers = 1' 'train.OFFICIAL_EPOCH_LENGTH = 2' \
	'optim.epochs = 1' 'optim.warmup_epochs = 0' 'train.checkpoint_period = 0'
dv2-train -q -c m.cfg --data cur -o mrun -j 2 || fail "train the curation model"
micro_cfg t.cfg 'train.batch_size_per_gpu = 8' 'train.num_workers = 1' 'train.OFFICIAL_EPOCH_LENGTH = 3' \
	'optim.epochs = 1' 'optim.warmup_epochs = 0' 'train.checkpoint_period = 0'
micro_cfg d.cfg 'student.embed_dim = 16' 'student.num_heads = 1' 'train.batch_size_per_gpu = 8' \
	'train.num_workers = 1' 'train.OFFICIAL_EPOCH_LENGTH = 2' 'optim.epochs = 1' 'optim.warmup_epochs = 0' \
	'train.checkpoint_period = 0'
# The micro model's features are close to each other: thresholds near 1.
set -- -f "$MK" OUT=out DATA=pool CURATED=cur MODEL=mrun/teacher.safetensors "EMBED_ARGS=--features avgpool" \
	DEDUP_T=0.995 AGAINST=ag AGAINST_T=0.9999 CONFIG=t.cfg DISTILL_CONFIG=d.cfg EVAL_TRAIN=etr EVAL_TEST=ete J=1

expect_exit 0 make -j2 "$@"
[ $_fail -gt 0 ] && { tail -n 30 out.txt err.txt >&2; finish; }
# every stage's file, in pipeline order
up="out/pool/manifest.json out/pool.emb out/against.emb out/curated.emb"
down="out/pool.keep out/selected.tsv out/selected.ids out/train/manifest.json out/runs/run.done
out/runs/run-distill.done out/eval/student-train.emb out/eval/student-test.emb out/probe-student.txt
out/probe-student.json"
for f in $up $down out/runs/run/teacher.safetensors out/runs/run-distill/student_ema.safetensors; do
	[ -s "$f" ] && ok || fail "no $f"
done
ls out/*.part out/*.tmp out/*/*.part 2>/dev/null | grep . && fail "temporaries left in out/" || ok
# sane: the pool holds its 2000 images, the kept ids are pool ids without
# the evaluation set's, the selection is kept ids, train/ is the selection
expect_grep '"records": 2000,' out/pool/manifest.json
sort pool.ids > pool.s; sort out/pool.keep > keep.s; sort ag.ids > ag.s
expect_eq "$(comm -13 pool.s keep.s | wc -l | tr -d ' ')" 0 "kept ids not in the pool"
expect_eq "$(comm -12 ag.s keep.s | wc -l | tr -d ' ')" 0 "evaluation-set ids kept"
nk=$(wc -l < keep.s | tr -d ' ')
[ "$nk" -gt 100 ] && [ "$nk" -lt 1950 ] && ok || fail "kept $nk of 2000"
sort -u out/selected.ids > sel.s
expect_eq "$(comm -23 sel.s keep.s | wc -l | tr -d ' ')" 0 "selected ids not kept"
nsel=$(wc -l < sel.s | tr -d ' ')
[ "$nsel" -gt 0 ] && ok || fail "nothing selected"
expect_grep "\"records\": $nsel," out/train/manifest.json
expect_eq "$(cat out/runs/run.done)" "out/runs/run" "train stamp"
expect_grep '"step": *2' out/runs/run/metrics.jsonl
expect_grep 'k-NN' out/probe-student.txt
expect_grep '^ *20 ' out/probe-student.txt
expect_grep '"knn"' out/probe-student.json
expect_exit 0 make -q "$@"

# pool.keep removed: the stages after it are redone, the ones before are not
rm out/pool.keep
touch marker
sleep 1
expect_exit 0 make "$@"
for f in $up; do
	[ "$f" -nt marker ] && fail "$f was redone" || ok
done
for f in $down; do
	[ "$f" -nt marker ] && ok || fail "$f was not redone"
done
expect_nogrep 'dv2-embed .*-o out/pool.emb' out.txt
expect_grep 'dv2-dedup ' out.txt
expect_grep '--teacher out/runs/run ' out.txt
expect_exit 0 make -q "$@"
expect_exit 0 make "$@"
expect_grep "Nothing to be done\|is up to date" out.txt

# the other selections: cluster-based retrieval, hierarchical k-means
rm out/selected.tsv
expect_exit 0 make "$@" SELECT=cluster CLUSTERS=20 PER_CLUSTER=30 MIN_QUERIES=1 select
expect_grep 'dv2-retrieve .*--clusters 20 --per-cluster 30 --min-queries 1' out.txt
sort -u out/selected.ids > sel.s
expect_eq "$(comm -23 sel.s keep.s | wc -l | tr -d ' ')" 0 "cluster-selected ids not kept"
[ -s sel.s ] && ok || fail "cluster-based selection is empty"
rm out/selected.tsv
expect_exit 0 make "$@" SELECT=hkmeans HK_CLUSTERS=20,5 HK_TARGET=200 select
sort -u out/selected.ids > sel.s
expect_eq "$(wc -l < sel.s | tr -d ' ')" 200 "hkmeans-selected ids"
expect_eq "$(comm -23 sel.s keep.s | wc -l | tr -d ' ')" 0 "hkmeans-selected ids not kept"
[ -d out/hkmeans ] && ok || fail "no hkmeans tree"

# a training stopped by SIGTERM (what Slurm sends on preemption) exits 0
# after a checkpoint: the stage fails, no stamp, and the next make resumes
micro_cfg long.cfg 'train.batch_size_per_gpu = 8' 'train.num_workers = 1' 'train.OFFICIAL_EPOCH_LENGTH = 60' \
	'optim.epochs = 1' 'optim.warmup_epochs = 0' 'train.checkpoint_period = 5'
cat > stop.sh <<'EOF'
"$@" &
p=$!
n=0
while [ ! -f out/runs/long/ckpt-000000000005.safetensors ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n + 1)); done
kill -TERM $p
wait $p
EOF
expect_exit 2 make "$@" RUN=long CONFIG=long.cfg "TRAIN_LAUNCH=sh $PWD/stop.sh" train
if [ -f out/runs/long/ckpt-000000000060.safetensors ]; then
	echo "the run finished before SIGTERM: interruption not checked" >&2
else
	expect_grep "dv2-train was interrupted; run make again to resume out/runs/long" err.txt
	[ -e out/runs/long.done ] && fail "an interrupted training left its stamp" || ok
	[ -e out/runs/long/teacher.safetensors ] && ok || fail "no teacher after the checkpoint"
	expect_exit 0 make "$@" RUN=long CONFIG=long.cfg train
	expect_grep "resuming from" err.txt
	expect_grep "iterations [0-9]*..60 of 60" err.txt
	[ -s out/runs/long.done ] && ok || fail "no stamp after the resumed run"
fi

# a corrupt input fails its stage: nonzero status, no target
cp -r cur cur2
f=cur2/shard-000000.dv2s
head -c $(($(wc -c < $f) / 2)) $f > cut && mv cut $f
set -- "$@" CURATED=cur2
rm out/curated.emb
expect_exit 2 make "$@"
expect_grep "cur2/shard-000000.dv2s" err.txt
[ -e out/curated.emb ] && fail "a failed stage left out/curated.emb" || ok
expect_exit 1 make -q "$@"

expect_exit 0 make -f "$MK" help
for s in pack embed dedup select curate train distill eval probe DATA CURATED MODEL CONFIG DEVICE SEED J; do
	expect_grep "$s" out.txt
done
finish
