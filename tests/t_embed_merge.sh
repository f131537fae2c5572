# t_embed_merge.sh — dv2-embed --merge: the matrices of a dataset's shards
# embedded one by one join into the matrix of one run over the dataset
# (header and rows byte-identical), also from stdin and zstd parts; parts that
# overlap, differ in dimension, dtype or row description are refused naming
# the part (or the id) and leave no output; options that embed are usage
# errors with --merge.
. "$DV2_ROOT/tests/lib.sh"
H="$DV2_BUILD/tests/test_embed"
[ -x "$H" ] || skip "test_embed not built"
E=dv2-embed
"$H" --make-dataset img 20 || fail "make dataset"
dv2-pack -q --shard-size 14K -o ds img || fail "repack into 3 shards"
P="--pixels --size 16 --resize 18"
expect_exit 0 $E -q $P -o whole.emb ds
ls ds/shard-*.dv2s > shards.txt
expect_eq "$(wc -l < shards.txt | tr -d ' ')" 3 "shards in the test dataset"
i=0
while read -r s; do
	expect_exit 0 $E -q $P -o part$i.emb "$s"
	i=$((i + 1))
done < shards.txt
expect_exit 0 $E --merge -o merged.emb part0.emb part1.emb part2.emb
expect_grep "merged 3 matrices: 20 rows" err.txt
expect_same merged.emb whole.emb
# stdin, a zstd part, stdout
expect_exit 0 $E -q $P --zstd -o part1.zst "$(sed -n 2p shards.txt)"
expect_exit 0 sh -c "cat part0.emb | $E --merge part1.zst - part2.emb > out.emb"
expect_exit 0 $E -q --merge -o order.emb part1.emb part0.emb part2.emb
tail -c +4097 out.emb > a.rows; tail -c +4097 order.emb > b.rows
expect_same a.rows b.rows
# refused: overlap (naming the id and both parts), other dims, dtype, params
expect_exit 1 $E --merge -o bad.emb part0.emb part1.emb part0.emb
expect_grep "error: merge: id [0-9]* is in part0.emb and in part0.emb: the parts overlap" err.txt
[ -e bad.emb ] && fail "an overlapping merge left bad.emb" || ok
expect_exit 0 $E -q --pixels --size 8 --resize 9 -o small.emb "$(sed -n 3p shards.txt)"
expect_exit 1 $E --merge -o bad.emb part0.emb small.emb
expect_grep "small.emb: dimension 192 does not match part0.emb (768)" err.txt
expect_exit 0 $E -q $P --f16 -o half.emb "$(sed -n 3p shards.txt)"
expect_exit 1 $E --merge -o bad.emb part0.emb half.emb
expect_grep "half.emb" err.txt
expect_exit 0 $E -q $P --normalize -o norm.emb "$(sed -n 3p shards.txt)"
expect_exit 1 $E --merge -o bad.emb part0.emb norm.emb
expect_grep "norm.emb: the rows there were made with normalize=0" err.txt
[ -e bad.emb ] && fail "a refused merge left bad.emb" || ok
# a truncated part is an error, an existing output needs -f
head -c 5000 part2.emb > cut.emb
expect_exit 1 $E --merge -o bad.emb part0.emb cut.emb
[ -e bad.emb ] && fail "a merge of a truncated part left bad.emb" || ok
expect_exit 1 $E --merge -o merged.emb part0.emb
expect_exit 0 $E --merge -f -o merged.emb part0.emb
# usage errors
expect_exit 2 $E --merge --copy -o x.emb part0.emb
expect_exit 2 $E --merge --resume -o x.emb part0.emb
expect_exit 2 $E --merge -o x.emb
finish
