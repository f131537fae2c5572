# t_pack_wds.sh — WebDataset shards as the `webdataset` library writes them:
# .tar.gz and .tgz read like .tar; the image of a sample chosen by its
# extension (x.jpg over x.seg.png, whatever the order); upper-case
# extensions; a sample whose members are not adjacent, one with only an
# unsupported image (.webp) or none, and a bad .cls value are skipped with
# a warning naming the member, never dropped silently; --extract
# --webdataset writes KEY.jpg + KEY.cls that pack back to the same records.
. "$DV2_ROOT/tests/lib.sh"

SK=/usr/lib/python3/dist-packages/skimage/data
[ -f "$SK/rocket.jpg" ] || skip "no JPEG files in $SK"
$PY - "$SK" <<'PYEOF'
import io, sys, tarfile
sk = sys.argv[1]
jpg = open(sk + "/rocket.jpg", "rb").read()
png = open(sk + "/astronaut.png", "rb").read()
def write(name, mode, members):
    with tarfile.open(name, mode, format=tarfile.USTAR_FORMAT) as t:
        for m, payload in members:
            ti = tarfile.TarInfo(m); ti.size = len(payload)
            t.addfile(ti, io.BytesIO(payload))
good = [("s000.seg.png", png), ("s000.jpg", jpg), ("s000.cls", b"3\n"),
        ("s001.png", png), ("s001.cls", b"7"),
        ("s002.JPG", jpg), ("s002.CLS", b"5\n"), ("s002.json", b"{}")]
for name, mode in [("good.tar", "w"), ("good.tar.gz", "w:gz"), ("good.tgz", "w:gz")]:
    write(name, mode, good)
write("bad.tar", "w", [("a.jpg", jpg), ("b.jpg", jpg), ("a.cls", b"1"),
                       ("c.webp", b"RIFF0000WEBPVP8 "), ("c.cls", b"2"),
                       ("d.json", b"{}"),
                       ("e.jpg", jpg), ("e.cls", b"cat\n")])
PYEOF
printf 's000.jpg\t3\ns001.png\t7\ns002.JPG\t5\n' > want.txt
for t in good.tar good.tar.gz good.tgz; do
	expect_exit 0 dv2-pack -o "ds_$t" "$t"
	dv2-pack --ls "ds_$t" | cut -f2,3 > got.txt
	expect_same got.txt want.txt
done
cat good.tgz | dv2-pack -q -o - - | dv2-pack --ls - | cut -f2,3 > got_pipe.txt
expect_same got_pipe.txt want.txt
# the image bytes are the .jpg member's, not the .seg.png's
expect_exit 0 dv2-pack --extract ex ds_good.tar
expect_same ex/s000.jpg "$SK/rocket.jpg"

# samples that cannot be packed are skipped, each with its reason
expect_exit 0 dv2-pack -o dsb bad.tar
expect_grep "warning: skipped bad.tar: member a.cls: sample 'a' comes back after other samples" err.txt
expect_grep "warning: skipped bad.tar: member c.webp: unsupported image format" err.txt
expect_grep "warning: skipped bad.tar: sample 'd' has no image member" err.txt
expect_grep "warning: skipped bad.tar: member e.cls: bad label 'cat'" err.txt
expect_grep "2 records .* 4 skipped" err.txt
expect_exit 1 dv2-pack --strict -o dsc bad.tar
expect_grep "a.cls" err.txt

# back to the ecosystem: KEY.jpg + KEY.cls, which pack back to the same records
expect_exit 0 dv2-pack --webdataset --extract wx ds_good.tar
expect_eq "$(cd wx && ls | tr '\n' ' ')" "s000.cls s000.jpg s001.cls s001.png s002.JPG s002.cls " "webdataset files"
expect_eq "$(cat wx/s001.cls)" "7" "label file"
tar --sort=name -cf back.tar -C wx . 2>/dev/null || tar -cf back.tar -C wx s000.cls s000.jpg s001.cls s001.png s002.JPG s002.cls
dv2-pack -q -o - back.tar | dv2-pack --ls - | cut -f3 > back_labels.txt
cut -f2 want.txt > want_labels.txt
expect_same back_labels.txt want_labels.txt
expect_exit 2 dv2-pack --webdataset -o x good.tar
finish
