# t_pack_man.sh — runs every command of the EXAMPLES sections of
# man/dv2-pack.1 and man/dv2-shard.5 (the lines starting with "$ ") on
# small fixtures, and requires each to succeed.
. "$DV2_ROOT/tests/lib.sh"
SK=/usr/lib/python3/dist-packages/skimage/data
FM=/usr/share/datasets/fashion-mnist
[ -f "$FM/t10k-images-idx3-ubyte.gz" ] || skip "Fashion-MNIST not installed"
ls "$SK"/rocket.jpg >/dev/null 2>&1 || skip "no JPEG files in $SK"
mkdir -p photos/more train/cat train/dog
cp "$SK/rocket.jpg" "$SK/retina.jpg" photos/
cp "$SK/hubble_deep_field.jpg" photos/more/
cp "$SK/rocket.jpg" train/cat/1.jpg; cp "$SK/retina.jpg" train/dog/2.jpg
cp "$FM/t10k-images-idx3-ubyte.gz" "$FM/t10k-labels-idx1-ubyte.gz" .
$PY -c '
import io, tarfile
with tarfile.open("samples.tar", "w", format=tarfile.USTAR_FORMAT) as t:
    for i, name in enumerate(["rocket.jpg", "retina.jpg"]):
        for member, data in [("%03d.jpg" % i, open("photos/" + name, "rb").read()), ("%03d.cls" % i, b"%d" % i)]:
            ti = tarfile.TarInfo(member); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
'
for page in dv2-shard.5 dv2-pack.1; do
	sed -n '/^\.SH EXAMPLES/,/^\.SH /p' "$DV2_ROOT/man/$page" | sed -n 's/^\$ //p' |
		sed -e 's/\\-/-/g' -e 's/\\e/\\/g' > cmds.txt
	n=$(wc -l < cmds.txt | tr -d ' ')
	[ "$n" -ge 3 ] && ok || fail "$page: only $n example commands"
	rm -rf photos.ds photos.dv2s restored fmnist tshirts train.ds samples.ds tshirts.ids
	while IFS= read -r cmd; do
		cmd=$(printf '%s' "$cmd" | sed "s|^python3 |$PY |")
		if sh -c "$cmd" >out.txt 2>err.txt; then ok; else fail "$page example failed: $cmd"; head -n 5 err.txt >&2; fi
	done < cmds.txt
done
# what the examples claim
expect_same photos/more/hubble_deep_field.jpg restored/more/hubble_deep_field.jpg
expect_eq "$(wc -l < tshirts.ids | tr -d ' ')" 1000 "T-shirts in the Fashion-MNIST test set"
expect_grep '"classes": \["cat", "dog"\]' train.ds/manifest.json
finish
