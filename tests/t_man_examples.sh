# t_man_examples.sh — the first example of man/dv2-distill.1 runs as written
# (the whole toolchain: pack, train a teacher, distil, embed, probe), at test
# scale: the Fashion-MNIST test set stands in for both of its sets and every
# dv2-train / dv2-distill line stops after 2 iterations.  An example that
# names an option, a file or an output path that does not exist fails here.
. "$DV2_ROOT/tests/lib.sh"
[ -f $FMNIST/t10k-images-idx3-ubyte.gz ] || skip "dataset-fashion-mnist not installed"
page="$DV2_ROOT/man/dv2-distill.1"
awk '/^\.SH EXAMPLES/ { e = 1 } e && /^\.fi/ { exit } f { print } e && /^\.nf/ { f = 1 }' "$page" |
	sed -e 's/\\e/\\/g' -e 's/\\-/-/g' > example.sh
[ -s example.sh ] || { fail "$page: no example block"; finish; }
grep -q '^dv2-distill ' example.sh && ok || fail "the first example does not run dv2-distill"
# test scale: the data, the config paths, 2 iterations per training run
sed -e "s|[a-z0-9]*-labels-idx1-ubyte.gz|$FMNIST/t10k-labels-idx1-ubyte.gz|" \
	-e "s|[a-z0-9]*-images-idx3-ubyte.gz|$FMNIST/t10k-images-idx3-ubyte.gz|" \
	-e "s| configs/| $DV2_ROOT/configs/|g" \
	-e '/^dv2-train \|^dv2-distill /s/$/ --max-iters 2 -j 1 -q/' example.sh > scaled.sh
cat scaled.sh
expect_exit 0 sh -e scaled.sh
grep -q '^ *20 ' out.txt && ok || fail "dv2-probe printed no k = 20 row"
finish
