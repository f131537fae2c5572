# t_pack.sh — dv2-pack end to end: JPEG round trip (pack -> extract gives
# the same bytes), bad images, Fashion-MNIST IDX ingest checked against an
# independent reading of the label file, pipe mode, --select, labels from
# tar / directories / TSV, repacking, duplicate keys, unsafe keys on
# extract, usage errors.
. "$DV2_ROOT/tests/lib.sh"

SK=/usr/lib/python3/dist-packages/skimage/data
FM=/usr/share/datasets/fashion-mnist
ls "$SK"/*.jpg >/dev/null 2>&1 || skip "no JPEG files in $SK"

# ---- JPEG round trip -------------------------------------------------------
mkdir -p img/sub
for f in "$SK"/*.jpg /usr/lib/python3/dist-packages/sklearn/datasets/images/*.jpg; do
	[ -f "$f" ] || continue
	case "$f" in *truncated*) continue;; esac
	cp "$f" img/
done
cp "$SK/rocket.jpg" img/sub/rocket2.jpg
cp "$SK/astronaut.png" img/sub/astro.png
n_img=$(find img -type f | wc -l)
expect_exit 0 dv2-pack -o ds img
expect_grep "$n_img records" err.txt
expect_exit 0 dv2-pack --verify ds
expect_exit 0 dv2-pack --extract out ds
for f in $(cd img && find . -type f | sed 's|^\./||'); do
	expect_same "img/$f" "out/$f"
done
# the same inputs give the same bytes (determinism)
expect_exit 0 dv2-pack -o ds2 img
expect_same ds/shard-000000.dv2s ds2/shard-000000.dv2s
expect_same ds/manifest.json ds2/manifest.json
# the thread count does not change the bytes
dv2-pack -q -j 1 -o - img > j1.dv2s && dv2-pack -q -j 3 -o - img > j3.dv2s
expect_same j1.dv2s j3.dv2s
# --progress draws on stderr even when it is not a terminal; stdout stays data
dv2-pack --progress -o - img 2> prog.txt | dv2-pack --ls - > /dev/null
expect_grep "records.*/s.*MB/s" prog.txt
# ids are the XXH64 of the key; keys are relative to the directory operand
dv2-pack --ls ds > ls.txt
expect_eq "$(wc -l < ls.txt | tr -d ' ')" "$n_img" "ls lines"
expect_grep "	sub/rocket2.jpg	-1	$(wc -c < img/sub/rocket2.jpg | tr -d ' ')\$" ls.txt

# ---- a damaged image is skipped with a warning, or fatal with --strict -----
cp -r img bad && cp "$SK/truncated.jpg" bad/ && printf 'not an image' > bad/junk.jpg
expect_exit 0 dv2-pack -o dsb bad
expect_grep "warning: skipped .*junk.jpg" err.txt
expect_grep "2 skipped" err.txt
expect_exit 1 dv2-pack --strict -o dsc bad
expect_grep "junk.jpg\|truncated.jpg" err.txt
[ ! -e dsc/manifest.json ] && ok || fail "--strict failure left a manifest"

# ---- duplicate keys are an error ---------------------------------------------
expect_exit 1 dv2-pack -o - img/rocket.jpg img/rocket.jpg
expect_grep "duplicate key" err.txt

# ---- Fashion-MNIST test set from IDX -----------------------------------------
if [ -f "$FM/t10k-images-idx3-ubyte.gz" ]; then
	expect_exit 0 dv2-pack -o fm --idx-labels "$FM/t10k-labels-idx1-ubyte.gz" "$FM/t10k-images-idx3-ubyte.gz"
	dv2-pack --ls fm > fm.tsv
	expect_eq "$(wc -l < fm.tsv | tr -d ' ')" 10000 "IDX records"
	cut -f3 fm.tsv > got_labels.txt
	$PY -c 'import gzip,sys; d=gzip.open(sys.argv[1]).read(); assert d[:4]==b"\0\0\x08\x01"; print("\n".join(str(b) for b in d[8:]))' \
		"$FM/t10k-labels-idx1-ubyte.gz" > want_labels.txt
	expect_same got_labels.txt want_labels.txt
	expect_grep "^[0-9]*	t10k-images-idx3-ubyte/000123.png	" fm.tsv
	# pixels are stored losslessly: decode a PNG and compare with the IDX bytes
	expect_exit 0 dv2-pack --extract fmx fm
	$PY - "$FM/t10k-images-idx3-ubyte.gz" fmx/t10k-images-idx3-ubyte/000123.png <<'EOF' && ok || fail "PNG pixels differ from IDX"
import gzip, sys
from PIL import Image
d = gzip.open(sys.argv[1]).read()
want = d[16 + 123 * 784: 16 + 124 * 784]
im = Image.open(sys.argv[2])
assert im.mode == "L" and im.size == (28, 28), (im.mode, im.size)
assert im.tobytes() == want
EOF
	# pipe mode: a stream on stdout read back from stdin
	dv2-pack -q -o - --idx-labels "$FM/t10k-labels-idx1-ubyte.gz" "$FM/t10k-images-idx3-ubyte.gz" | dv2-pack --ls - > pipe.tsv
	expect_same pipe.tsv fm.tsv
	# select: every 7th id, from a file and from stdin, with extra columns
	awk -F'\t' 'NR % 7 == 1 {print $1 "\tscore\tsrc"}' fm.tsv > keep.ids
	awk -F'\t' 'NR % 7 == 1' fm.tsv > want_sel.tsv
	expect_exit 0 dv2-pack -o sel --select keep.ids fm
	expect_grep "8571 not selected" err.txt
	dv2-pack --ls sel > got_sel.tsv
	expect_same got_sel.tsv want_sel.tsv
	dv2-pack -q -o - --select - fm < keep.ids | dv2-pack --ls - > got_sel2.tsv
	expect_same got_sel2.tsv want_sel.tsv
	# repacking a dataset into several shards keeps every record
	expect_exit 0 dv2-pack -o fm_small --shard-size 1M fm
	[ -f fm_small/shard-000005.dv2s ] && ok || fail "--shard-size 1M did not split"
	for s in fm_small/shard-*.dv2s; do
		[ "$(wc -c < "$s")" -le 1048576 ] && ok || fail "$s larger than 1M"
	done
	dv2-pack --ls fm_small > small.tsv
	expect_same small.tsv fm.tsv
fi

# ---- WebDataset tar: key.jpg + key.cls ----------------------------------------
$PY - "$SK" <<'EOF'
import io, sys, tarfile
sk = sys.argv[1]
with tarfile.open("wds.tar", "w", format=tarfile.USTAR_FORMAT) as t:
    for i, (name, cls) in enumerate([("rocket.jpg", 3), ("retina.jpg", 7), ("astronaut.png", 0)]):
        data = open(f"{sk}/{name}", "rb").read()
        ext = name.rsplit(".", 1)[1]
        for member, payload in [(f"s{i:03d}.{ext}", data), (f"s{i:03d}.cls", b"%d\n" % cls),
                                (f"s{i:03d}.json", b"{}")]:
            ti = tarfile.TarInfo(member); ti.size = len(payload)
            t.addfile(ti, io.BytesIO(payload))
with tarfile.open("evil.tar", "w", format=tarfile.USTAR_FORMAT) as t:
    data = open(f"{sk}/rocket.jpg", "rb").read()
    ti = tarfile.TarInfo("../evil.jpg"); ti.size = len(data)
    t.addfile(ti, io.BytesIO(data))
EOF
expect_exit 0 dv2-pack -o - wds.tar
dv2-pack -o - wds.tar 2>/dev/null | dv2-pack --ls - | cut -f2,3 > wds.txt
printf 's000.jpg\t3\ns001.jpg\t7\ns002.png\t0\n' > want_wds.txt
expect_same wds.txt want_wds.txt
# the same tar from a pipe
cat wds.tar | dv2-pack -q -o - - | dv2-pack --ls - | cut -f2,3 > wds2.txt
expect_same wds2.txt want_wds.txt
# a member name that would leave the extraction directory gets a clean key
# when packed, so the dataset extracts in full (t_pack_safe.sh has more)
expect_exit 0 dv2-pack -o evil evil.tar
dv2-pack --ls evil | cut -f2 > evil.txt
expect_eq "$(cat evil.txt)" "evil.jpg" "clean key of ../evil.jpg"
expect_exit 0 dv2-pack --extract ex evil
[ -f ex/evil.jpg ] && [ ! -e evil.jpg ] && ok || fail "../evil.jpg not extracted inside ex"
[ ! -e evil.jpg ] && ok || fail "extract wrote outside its directory"

# ---- labels: --label-from-dir (ImageFolder) and --labels TSV ------------------
mkdir -p classes/dog classes/cat
cp "$SK/rocket.jpg" classes/dog/a.jpg; cp "$SK/retina.jpg" classes/cat/b.jpg; cp "$SK/hubble_deep_field.jpg" classes/dog/c.jpg
expect_exit 0 dv2-pack -o cls --label-from-dir classes
expect_grep '"classes": \["cat", "dog"\]' cls/manifest.json
dv2-pack --ls cls | cut -f2,3 > cls.txt
printf 'cat/b.jpg\t0\ndog/a.jpg\t1\ndog/c.jpg\t1\n' > want_cls.txt
expect_same cls.txt want_cls.txt
printf 'dog/c.jpg\t42\n' > lab.tsv
dv2-pack -q -o - --labels lab.tsv classes | dv2-pack --ls - | cut -f2,3 > lab.txt
printf 'cat/b.jpg\t-1\ndog/a.jpg\t-1\ndog/c.jpg\t42\n' > want_lab.txt
expect_same lab.txt want_lab.txt
# paths on stdin
find classes -name '*.jpg' | sort | dv2-pack -q -o - - | dv2-pack --ls - | cut -f2 > list.txt
printf 'classes/cat/b.jpg\nclasses/dog/a.jpg\nclasses/dog/c.jpg\n' > want_list.txt
expect_same list.txt want_list.txt

# ---- an existing dataset is not overwritten without -f --------------------------
expect_exit 1 dv2-pack -o ds img
expect_grep "use -f" err.txt
expect_exit 0 dv2-pack -f -o ds img
expect_same ds/shard-000000.dv2s ds2/shard-000000.dv2s

# ---- usage errors exit 2 --------------------------------------------------------
expect_exit 2 dv2-pack img
expect_exit 2 dv2-pack -o x
expect_exit 2 dv2-pack -o x --level 0 img
expect_exit 2 dv2-pack -o x --shard-size 12Q img
expect_exit 2 dv2-pack -o x --no-such-option img
expect_exit 2 dv2-pack --ls --verify ds
expect_exit 2 dv2-pack --ls -o x ds
expect_exit 2 dv2-pack -o x --select - -
expect_exit 0 dv2-pack --help
expect_grep "shard-size" out.txt
# runtime errors exit 1
expect_exit 1 dv2-pack -o x no-such-file.jpg
expect_exit 1 dv2-pack --ls no-such-dir
finish
