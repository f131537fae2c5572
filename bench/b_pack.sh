# b_pack.sh — dv2-pack against `tar -cf - FILES | zstd -3` on the same real
# JPEG files in the same run: the write side (pack a directory of JPEGs into
# a dataset vs. into a .tar.zst) and the read side (`dv2-pack --ls` and
# `dv2-pack --verify`, which decompress and checksum every record, vs.
# `zstd -dc | tar -tf -`).  The JPEGs are crops of the real photographs of
# skimage/sklearn/matplotlib re-encoded at quality 90 and ImageNet-like
# sizes (PACK_N files, default 400).  PACK_RUNS runs per side (default 5),
# medians; one warm-up run each so that both read from the page cache.
# dv2-pack fsyncs each shard before renaming it; tar | zstd > file does not.
N=${PACK_N:-400} RUNS=${PACK_RUNS:-5}
PY=/usr/bin/python3
command -v zstd >/dev/null || { echo "skip: zstd not installed (no baseline)"; exit 0; }
command -v dv2-pack >/dev/null || { echo "skip: dv2-pack not built"; exit 0; }
$PY -c 'import PIL' 2>/dev/null || { echo "skip: python3 without PIL"; exit 0; }
mkdir -p jpg
$PY - "$N" <<'PYEOF' || { echo "skip: cannot make images"; exit 0; }
import glob, random, sys
from PIL import Image
n = int(sys.argv[1])
srcs = sorted(glob.glob("/usr/lib/python3/dist-packages/skimage/data/*.jpg") +
              glob.glob("/usr/lib/python3/dist-packages/skimage/data/*.png") +
              glob.glob("/usr/lib/python3/dist-packages/sklearn/datasets/images/*.jpg") +
              glob.glob("/usr/share/matplotlib/mpl-data/sample_data/*.jpg"))
ims = []
for p in srcs:
    try:
        im = Image.open(p).convert("RGB")
    except Exception:
        continue
    if min(im.size) >= 256:
        ims.append(im)
rng = random.Random(0)
for i in range(n):
    im = ims[i % len(ims)]
    w, h = im.size
    s = rng.uniform(0.6, 1.0)
    cw, ch = int(w * s), int(h * s)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    c = im.crop((x, y, x + cw, y + ch))
    f = 500 / max(c.size)
    c = c.resize((max(256, int(c.size[0] * f)), max(256, int(c.size[1] * f))), Image.BICUBIC)
    c.save("jpg/%05d.jpg" % i, quality=90)
PYEOF
MB=$(du -sk jpg | awk '{printf "%.1f", $1 / 1024}')
echo "$N JPEG files, $MB MiB, $(nproc) cores"
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
t() { t0=$(now); "$@" >/dev/null 2>&1 || echo "FAILED: $*" >&2; t1=$(now); echo "$t0 $t1" | awk '{print $2 - $1}'; }
pack_ours() { dv2-pack -q -o ds jpg/; }
pack_base() { (cd jpg && ls | sort | tar -cf - -T - | zstd -q -3 > ../base.tar.zst); }
read_ls() { dv2-pack --ls ds; }
read_verify() { dv2-pack -q --verify ds; }
read_base() { zstd -dc base.tar.zst | tar -tf -; }
: >po.txt; : >pb.txt; : >ro.txt; : >rv.txt; : >rb.txt
rm -rf ds; pack_ours; pack_base; read_ls >/dev/null; read_base >/dev/null
i=0
while [ $i -lt "$RUNS" ]; do
	rm -rf ds; sync; t pack_ours >>po.txt; t pack_base >>pb.txt
	t read_ls >>ro.txt; t read_verify >>rv.txt; t read_base >>rb.txt
	i=$((i + 1))
done
po=$(median <po.txt) pb=$(median <pb.txt) ro=$(median <ro.txt) rv=$(median <rv.txt) rb=$(median <rb.txt)
echo "pack ours (s): $(tr '\n' ' ' <po.txt) baseline (s): $(tr '\n' ' ' <pb.txt)"
echo "read ls (s): $(tr '\n' ' ' <ro.txt) verify (s): $(tr '\n' ' ' <rv.txt) baseline (s): $(tr '\n' ' ' <rb.txt)"
echo "sizes: dataset $(du -sk ds | cut -f1) KiB, tar.zst $(du -k base.tar.zst | cut -f1) KiB"
r() { echo "$1 $2" | awk '{printf "%.2f", $1 / $2}'; }
mbs() { echo "$MB $1" | awk '{printf "%.0f", $1 / $2}'; }
echo "RESULT pack_write_jpeg_n$N $(mbs "$po") $(mbs "$pb") MiB/s speedup=$(r "$pb" "$po")"
echo "RESULT pack_read_ls_n$N $(mbs "$ro") $(mbs "$rb") MiB/s speedup=$(r "$rb" "$ro")"
echo "RESULT pack_read_verify_n$N $(mbs "$rv") $(mbs "$rb") MiB/s speedup=$(r "$rb" "$rv")"
