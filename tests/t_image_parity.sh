# t_image_parity.sh — image decoding, the evaluation transform and each
# deterministic augmentation against PIL 9 / torchvision 0.14 on real
# photographs: tests/ref/image_ref.py writes inputs and references here, then
# build/tests/test_image --parity checks them (tolerances are listed in
# tests/test_image.c); then whole random training crops are replayed with
# torchvision.  Skips when python3 lacks PIL or torchvision.
. "$DV2_ROOT/tests/lib.sh"
T="$DV2_BUILD/tests/test_image"
[ -x "$T" ] || skip "test_image not built"
$PY -c 'import PIL, torchvision, numpy' 2>/dev/null || skip "python3 without PIL/torchvision/numpy"
$PY "$DV2_ROOT/tests/ref/image_ref.py" ref >py.log 2>&1
rc=$?
[ $rc = 77 ] && skip "$(tail -n 1 py.log)"
expect_eq "$rc" 0 "image_ref.py exit status"
[ $rc = 0 ] || sed 's/^/  py: /' py.log >&2
expect_exit 0 "$T" --parity ref
sed 's/^/  /' err.txt | tail -n 20 >&2
expect_grep "checks passed" err.txt
# Cases really compared: decodes, eval transforms, crops and color ops.
for k in decode eval bilin square rcrop op bad; do
	n=$(grep -c "^$k " ref/cases.txt)
	[ "$n" -gt 0 ] && ok || fail "no '$k' cases in cases.txt"
done
# Whole training crops: random parameters drawn by our RNG, replayed with the
# torchvision functional ops (resized crop, flip, jitter in the drawn order,
# grayscale, blur, solarize, normalize) on the same photograph.
mkdir aug
expect_exit 0 "$T" --augment-dump aug ref/chelsea.png
expect_exit 0 $PY "$DV2_ROOT/tests/ref/image_ref.py" --check-augment aug ref/chelsea.png
expect_grep "24 crops replayed, 0 differ" out.txt
finish
