# t_train_multidata.sh — dv2-train with --data given twice reads the two
# datasets as one: a dataset split into two directories (its first shards,
# then the rest) trains to exactly the digest of the whole, shuffled the
# same; the resolved config records both; a shard file among several
# datasets, or a path with a comma, is refused before any work.
. "$DV2_ROOT/tests/lib.sh"
pack_fmnist_t10k whole0
# small shards, so that the dataset can be split
dv2-pack -q --shard-size 300K -o whole whole0 || { fail "repack"; finish; }
n=$(ls whole/shard-*.dv2s | wc -l)
[ "$n" -ge 3 ] && ok || { fail "only $n shards"; finish; }
/usr/bin/python3 - <<'PY' || fail "split"
import json, os, shutil
m = json.load(open("whole/manifest.json"))
half = len(m["shards"]) // 2
for name, part in (("A", m["shards"][:half]), ("B", m["shards"][half:])):
    os.mkdir(name)
    for s in part:
        shutil.copy(os.path.join("whole", s["name"]), name)
    p = dict(m, shards=part, records=sum(s["records"] for s in part), bytes=sum(s["bytes"] for s in part))
    json.dump(p, open(os.path.join(name, "manifest.json"), "w"))
PY
micro_cfg tiny.cfg 'train.batch_size_per_gpu = 4' 'train.num_workers = 1' 'train.OFFICIAL_EPOCH_LENGTH = 3' \
	'optim.epochs = 1'
export OMP_NUM_THREADS=1
expect_exit 0 dv2-train -c tiny.cfg --data whole -o r1 -j 1
d1=$(sed -n 's/.*digest \([0-9a-f]*\).*/\1/p' err.txt)
expect_exit 0 dv2-train -c tiny.cfg --data A --data B -o r2 -j 1
d2=$(sed -n 's/.*digest \([0-9a-f]*\).*/\1/p' err.txt)
[ -n "$d1" ] && [ "$d1" = "$d2" ] && ok || fail "two datasets as one: digest $d2, the whole gives $d1"
expect_grep 'dataset_path = "A,B"' r2/config.cfg
# the other order is other data
expect_exit 0 dv2-train -c tiny.cfg --data B --data A -o r3 -j 1
d3=$(sed -n 's/.*digest \([0-9a-f]*\).*/\1/p' err.txt)
[ "$d3" != "$d1" ] && ok || fail "B then A gave the digest of A then B"
# refused: a single shard among several, a comma in a path
expect_exit 1 dv2-train -c tiny.cfg --data A --data whole/shard-000000.dv2s -o r4 -j 1
expect_grep 'dataset directory' err.txt
[ ! -e r4 ] && ok || fail "a refused run left r4 behind"
expect_exit 2 dv2-train -c tiny.cfg --data 'A,B' -o r5 -j 1
expect_grep 'comma' err.txt
finish
