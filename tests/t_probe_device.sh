#!/bin/sh
# t_probe_device.sh — dv2-probe --device: cpu and auto run the k-NN search
# on the CPU with the same numbers; cuda runs it on the GPU where there is
# one (same top-1 as the CPU on data without near-ties), is a runtime error
# (exit 1, saying there is no CUDA device) in a CUDA build on a machine
# without one, and a usage error (exit 2) in a build without CUDA;
# cpu-bf16, a model backend, is a usage error.
. "$DV2_ROOT/tests/lib.sh"
REF="$DV2_ROOT/tests/ref/probe_ref.py"
$PY -c 'import numpy' 2>/dev/null || skip "numpy not available for $PY"
$PY "$REF" gen tr.emb te.emb --n-train 2000 --n-test 300 --dim 16 --classes 5 --spread 3 --seed 3 || fail "gen"

expect_exit 0 dv2-probe --train tr.emb --test te.emb --knn 1,10 --json --device cpu
cp out.txt cpu.json
expect_exit 0 dv2-probe --train tr.emb --test te.emb --knn 1,10 --json --device auto
expect_same out.txt cpu.json
expect_exit 0 dv2-probe -V
expect_grep "^devices: cpu" out.txt
expect_exit 2 dv2-probe --train tr.emb --test te.emb --device cpu-bf16
expect_grep "model backend" err.txt
if [ "${DV2_CUDA:-0}" = 1 ]; then
	expect_exit 0 dv2-probe -V
	expect_grep "^devices: cpu cuda" out.txt
	dv2-probe --train tr.emb --test te.emb --knn 1,10 --json --device cuda > gpu.json 2> gpu.err
	case $? in
	0) $PY - <<'PYEOF' && ok || fail "GPU k-NN top-1 differs from the CPU's"
import json
a, b = json.load(open("cpu.json"))["knn"]["results"], json.load(open("gpu.json"))["knn"]["results"]
assert all(abs(x["top1"] - y["top1"]) < 0.5 for x, y in zip(a, b)), (a, b)
PYEOF
		;;
	1) expect_grep "CUDA device" gpu.err
	   expect_empty gpu.json;;
	*) fail "--device cuda: exit $?";;
	esac
else
	expect_exit 2 dv2-probe --train tr.emb --test te.emb --device cuda
	expect_grep "CPU only" err.txt
fi
finish
