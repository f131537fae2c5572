# t_pack_corrupt.sh — damaged shards are clear errors (file, record, offset),
# never a crash or a hang: a flipped byte, truncation, a truncated pipe, a
# wrong version, a non-shard, a manifest that disagrees with its shards.
. "$DV2_ROOT/tests/lib.sh"
FM=/usr/share/datasets/fashion-mnist
[ -f "$FM/t10k-images-idx3-ubyte.gz" ] || skip "Fashion-MNIST not installed"
expect_exit 0 dv2-pack -o ds --shard-size 1M --idx-labels "$FM/t10k-labels-idx1-ubyte.gz" "$FM/t10k-images-idx3-ubyte.gz"
expect_exit 0 dv2-pack --verify ds
flip() { # FILE OFFSET
	$PY -c 'import sys; p, o = sys.argv[1], int(sys.argv[2]); b = bytearray(open(p, "rb").read()); b[o] ^= 0x55; open(p, "wb").write(b)' "$1" "$2"
}
size() { wc -c < "$1" | tr -d ' '; }

cp -r ds flipped
flip flipped/shard-000002.dv2s $(( $(size ds/shard-000002.dv2s) / 2 ))
expect_exit 1 dv2-pack --verify flipped
expect_grep "shard-000002.dv2s: record [0-9]* at offset [0-9]*: " err.txt
expect_exit 1 dv2-pack --ls flipped
expect_exit 1 dv2-pack --extract x flipped
# the same damage read through a pipe
expect_exit 1 sh -c 'cat flipped/shard-000002.dv2s | dv2-pack --ls -'
expect_grep "(stdin): record [0-9]* at offset" err.txt

# a flipped byte in the index
cp -r ds flipidx
flip flipidx/shard-000001.dv2s $(( $(size ds/shard-000001.dv2s) - 100 ))
expect_exit 1 dv2-pack --verify flipidx
expect_grep "shard-000001.dv2s: index" err.txt

# truncation: at a record, inside the index, to the header only
for cut in 5000 $(( $(size ds/shard-000000.dv2s) - 10 )) 24 3; do
	cp ds/shard-000000.dv2s t.dv2s
	$PY -c 'import sys; open(sys.argv[1], "r+b").truncate(int(sys.argv[2]))' t.dv2s $cut
	expect_exit 1 dv2-pack --verify t.dv2s
	expect_grep "t.dv2s: .*\(truncated\|no index\)" err.txt
	expect_exit 1 sh -c 'cat t.dv2s | dv2-pack --ls - >/dev/null'
	expect_grep "(stdin).*truncated" err.txt
done

# not a shard, a future version
printf 'hello world, not a shard at all' > junk.dv2s
expect_exit 1 dv2-pack --verify junk.dv2s
expect_grep "junk.dv2s: not a dv2 shard" err.txt
cp ds/shard-000000.dv2s v2.dv2s
flip v2.dv2s 16
expect_exit 1 dv2-pack --ls v2.dv2s
expect_grep "v2.dv2s: shard format version" err.txt

# a manifest that disagrees with its shards
cp -r ds badman
sed 's/"records": 10000/"records": 10001/' ds/manifest.json > badman/manifest.json
expect_exit 1 dv2-pack --verify badman
expect_grep "manifest" err.txt
# a manifest that is not JSON: the message names the file
cp -r ds badjson
printf '{1}' > badjson/manifest.json
expect_exit 1 dv2-pack --ls badjson
expect_grep "badjson/manifest.json: json" err.txt
rm ds/shard-000003.dv2s
expect_exit 1 dv2-pack --verify ds
expect_grep "shard-000003.dv2s" err.txt
finish
