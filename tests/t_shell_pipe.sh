# t_shell_pipe.sh — the curation stages joined by pipes give what they give
# through files: `dv2-pack -o - DIR | dv2-embed -m M - | dv2-dedup -` on a
# directory of 600 Fashion-MNIST images (PNG files) with a micro ViT trained
# for 2 iterations; the same rows and the same kept ids as pack, embed and
# dedup through a dataset and a matrix file.  Then retrieval into
# `dv2-pack --select -`, dv2-hkmeans and dv2-probe reading stdin, and a shard
# stream cut short, which is an error naming stdin, not a short matrix.
. "$DV2_ROOT/tests/lib.sh"
export OMP_NUM_THREADS=1
pack_fmnist_t10k all
dv2-pack --ls all | cut -f1 | sed -n 1,600p > some.ids
dv2-pack -q --select some.ids -o some all || fail "select"
expect_exit 0 dv2-pack --extract imgs some
n=$(find imgs -type f | wc -l | tr -d ' ')
expect_eq "$n" 600 "extracted images"
micro_cfg m.cfg 'train.batch_size_per_gpu = 4' 'train.num_workers = 1' 'train.OFFICIAL_EPOCH_LENGTH = 2' \
	'optim.epochs = 1' 'optim.warmup_epochs = 0' 'train.checkpoint_period = 0'
dv2-train -q -c m.cfg --data some -o run -j 2 || fail "train the micro model"
M=run/teacher.safetensors
E="--features avgpool -j 2"
T="-t 0.995"

# through pipes
sh -c "dv2-pack -q -o - imgs | dv2-embed -q -m $M $E - | dv2-dedup -q $T - > keep.pipe" 2>err.txt
expect_eq "$?" 0 "pack | embed | dedup"
expect_empty err.txt
sh -c "dv2-pack -q -o - imgs | dv2-embed -q -m $M $E - > pipe.emb"
# through files
expect_exit 0 dv2-pack -q -o ds imgs
expect_exit 0 dv2-embed -q -m $M $E -o file.emb ds
expect_exit 0 dv2-dedup -q $T -o keep.file file.emb
expect_same keep.pipe keep.file
tail -c +4097 pipe.emb > pipe.rows; tail -c +4097 file.emb > file.rows
expect_same pipe.rows file.rows
nk=$(wc -l < keep.file | tr -d ' ')
[ "$nk" -gt 10 ] && [ "$nk" -lt 600 ] && ok || fail "kept $nk of 600 (the check needs some removed, some kept)"

# retrieval into a selection read from stdin; matrices on stdin
dv2-pack -q --select - -o cur ds <<EOF
$(sed -n 1,20p keep.file)
EOF
expect_exit 0 dv2-embed -q -m $M $E -o cur.emb cur
sh -c "cat file.emb | dv2-retrieve -q --queries cur.emb --pool - --keep keep.file -n 2 | cut -f1 | dv2-pack -q --select - -o sel ds"
expect_eq "$?" 0 "retrieve | pack --select -"
dv2-retrieve -q --queries cur.emb --pool file.emb --keep keep.file -n 2 -o sel.tsv
expect_grep "\"records\": $(cut -f1 sel.tsv | sort -u | wc -l | tr -d ' ')," sel/manifest.json
sh -c "cat file.emb | dv2-hkmeans -q --tree tree --clusters 20,5 --steps 2 --keep keep.file --target 30 -" > hk.pipe
expect_exit 0 dv2-hkmeans -q --tree tree2 --clusters 20,5 --steps 2 --keep keep.file --target 30 -o hk.file file.emb
expect_same hk.pipe hk.file
dv2-pack --ls all | cut -f1 | sed -n 601,800p > q.ids
dv2-pack -q --select q.ids -o q all || fail "select q"
expect_exit 0 dv2-embed -q -m $M $E -o lab.emb some
expect_exit 0 dv2-embed -q -m $M $E -o q.emb q
sh -c "dv2-pack -q -o - q | dv2-embed -q -m $M $E - | dv2-probe --train lab.emb --test - --knn 5" > probe.pipe
expect_exit 0 dv2-probe --train lab.emb --test q.emb --knn 5
sed 's/test   [^:]*:/test:/' probe.pipe > a.txt; sed 's/test   [^:]*:/test:/' out.txt > b.txt
expect_same a.txt b.txt

# a stream cut short is an error of the reader, with no output
s=ds/shard-000000.dv2s
sh -c "head -c $(($(wc -c < $s) / 2)) $s | dv2-embed -q -m $M $E -o cut.emb -" 2>err.txt
expect_eq "$?" 1 "embed of a truncated stream"
expect_grep "stdin" err.txt
[ -e cut.emb ] && fail "a truncated stream left cut.emb" || ok
sh -c "head -c $((4096 + 300 * 140 + 70)) file.emb | dv2-dedup -q -" > cut.ids 2>err.txt
expect_eq "$?" 1 "dedup of a truncated matrix"
expect_grep "stdin: truncated row" err.txt
finish
