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
$PY "$DV2_ROOT/bench/make_jpegs.py" "$N" jpg || { echo "skip: cannot make images"; exit 0; }
MB=$(du -sk jpg | awk '{printf "%.1f", $1 / 1024}')
echo "$N JPEG files, $MB MiB, $(nproc) cores"
. "$DV2_ROOT/bench/lib.sh"
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
