# b_sscd.sh — dv2-embed throughput (images/s) of an SSCD ResNet-50 (GeM,
# 512-d projection, L2 norm; random weights in the released layout from
# tests/ref/sscd_ref.py, converted by scripts/convert-weights) at SSCD's
# square 288 x 288 on the CPU, end to end from shards (decode, bilinear
# resize, normalize, forward, rows written), against PyTorch on the same
# JPEGs and thread count: PIL decode + torchvision Resize([288, 288]) +
# the TorchScript model, in batches (sscd_ref.py time).  SSCD_N images
# (default 32) from bench/make_jpegs.py; SSCD_RUNS runs (default 3) per side,
# medians; threads SSCD_THREADS (default "1 $(nproc)").  SSCD_LARGE=1: the
# sscd_disc_large shape instead (ResNeXt-101 32x4d in Classy Vision's layout,
# 1024-d; sscd_ref.py make-large), at SSCD_SIZE (default 288).
N=${SSCD_N:-32} RUNS=${SSCD_RUNS:-3} BATCH=${SSCD_BATCH:-16} SIZE=${SSCD_SIZE:-288}
PY=/usr/bin/python3
REF="$DV2_ROOT/tests/ref/sscd_ref.py"
$PY -c 'import PIL, torch, torchvision' 2>/dev/null || { echo "skip: python3 without PIL/torch/torchvision (no baseline)"; exit 0; }
command -v dv2-pack >/dev/null || { echo "skip: dv2-pack not built"; exit 0; }
$PY "$REF" make . >/dev/null 2>&1 || { echo "skip: cannot build the reference model"; exit 0; }
TS=sscd.torchscript.pt TAG=r50
if [ "${SSCD_LARGE:-0}" = 1 ]; then
	$PY "$REF" make-large . >/dev/null 2>&1 || { echo "skip: cannot build the large reference model"; exit 0; }
	TS=large/large.torchscript.pt TAG=rx101
fi
"$DV2_ROOT/scripts/convert-weights" -q "$TS" sscd.safetensors || { echo "skip: conversion failed"; exit 0; }
mkdir -p jpg
$PY "$DV2_ROOT/bench/make_jpegs.py" "$N" jpg || { echo "skip: cannot make images"; exit 0; }
dv2-pack -q -o ds jpg/ || { echo "skip: dv2-pack failed"; exit 0; }
. "$DV2_ROOT/bench/lib.sh"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for T in ${SSCD_THREADS:-1 $(nproc)}; do
	: >ours.txt
	: >base.txt
	i=0
	while [ $i -lt "$RUNS" ]; do
		t0=$(now)
		OMP_NUM_THREADS=$T OPENBLAS_NUM_THREADS=$T dv2-embed -q -f -m sscd.safetensors --size "$SIZE" -b "$BATCH" -j "$T" -o out.emb ds ||
			{ echo "dv2-embed failed"; exit 0; }
		t1=$(now)
		echo "$t0 $t1" | awk '{print $2 - $1}' >>ours.txt
		OMP_NUM_THREADS=$T $PY "$REF" time "$TS" jpg "$T" "$BATCH" "$SIZE" 2>/dev/null | sed -n 's/^BASE //p' >>base.txt
		i=$((i + 1))
	done
	o=$(median <ours.txt) b=$(median <base.txt)
	echo "threads $T: ours (s): $(tr '\n' ' ' <ours.txt)  baseline (s): $(tr '\n' ' ' <base.txt)"
	[ -n "$b" ] || { echo "baseline failed"; continue; }
	echo "RESULT sscd_${TAG}_${SIZE}_n${N}_t$T $(echo "$N $o" | awk '{printf "%.2f", $1/$2}') $(echo "$N $b" | awk '{printf "%.2f", $1/$2}') images/s speedup=$(echo "$b $o" | awk '{printf "%.2f", $1/$2}')"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
