# t_fuzz_seeds.sh — the libFuzzer targets of tests/fuzz still build against
# the library (a source file gaining a dependency breaks them silently
# otherwise) and accept every seed of their corpora (make -C tests/fuzz
# check).  Skips without clang-14, which the fuzz build uses.
. "$DV2_ROOT/tests/lib.sh"
command -v clang-14 >/dev/null || skip "no clang-14 (the fuzz targets build with it)"
expect_exit 0 make -s -C "$DV2_ROOT/tests/fuzz" check
for t in shard matrix safetensors json config idx tar idlist image; do
	expect_grep "fuzz_$t: seeds ok" out.txt
done
finish
