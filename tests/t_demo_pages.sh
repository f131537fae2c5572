# t_demo_pages.sh — scripts/demo-pages over a small demo directory made with
# the real programs: the Fashion-MNIST test set split into seed/ and pool/, a
# 2-iteration micro training run, --pca pictures, a dedup report, dv2-retrieve
# on raw pixels, a hand-written results.tsv.  Every local href and src of
# index.html and gallery.html must name a file that exists; headless Chromium
# must load every image of both pages (and report the one image removed);
# text from the input files is escaped; missing inputs are notes, not links.
. "$DV2_ROOT/tests/lib.sh"
PAGES="$DV2_ROOT/scripts/demo-pages"
D=demo
mkdir "$D"

pack_fmnist_t10k t10k
dv2-pack --ls t10k > all.ls || fail "dv2-pack --ls"
awk -F'\t' 'NR <= 100 { print $1 }' all.ls > seed.ids
awk -F'\t' 'NR > 100 && NR <= 1600 { print $1 }' all.ls > pool.ids
head -n 6 seed.ids > few.ids
dv2-pack -q -o "$D/seed" --select seed.ids t10k || fail "seed split"
dv2-pack -q -o "$D/pool" --select pool.ids t10k || fail "pool split"
dv2-pack -q -o few --select few.ids t10k || fail "pca split"
micro_cfg m.cfg
dv2-train -q --config m.cfg --data "$D/pool" --out "$D/run" --max-iters 2 -j 2 || fail "dv2-train"
dv2-embed -q -m "$D/run/teacher.safetensors" --size 28 --resize 28 --pca "$D/pca" -o few.emb few || fail "dv2-embed --pca"
# a file name that needs percent-encoding in a link
cp "$D/pca/$(ls "$D/pca" | head -n 1)" "$D/pca/odd name #1.jpg"
for s in seed pool; do
	dv2-embed -q --pixels --resize 28 --size 28 -o $s.emb "$D/$s" || fail "dv2-embed --pixels $s"
done
dv2-dedup -q -t 0.95 --report "$D/dedup-report" --shards "$D/pool" -o pool.keep pool.emb || fail "dv2-dedup --report"
dv2-retrieve -q --queries seed.emb --pool pool.emb -n 4 -o "$D/retrieve-sample.tsv" || fail "dv2-retrieve"
q1=$(head -n 1 "$D/retrieve-sample.tsv" | cut -f2)
# a pool id that is not in pool/ (shown as a note), and a malformed line
printf '1\t%s\t0.5\nnot an id line\n' "$q1" >> "$D/retrieve-sample.tsv"
printf 'model\tk=10\tk=20\npixels\t80.1\t80.5\n<img src=x onerror=alert(1)>\t"a&b"\t2\n' > "$D/results.tsv"
printf 'k-NN <script>alert(1)</script> & more\n' > "$D/summary.txt"

# linkcheck DIR PAGE: prints each local href/src target of DIR/PAGE (percent-decoded)
# that does not exist, and every non-local one
linkcheck() {
	grep -o '\(href\|src\)="[^"]*"' "$1/$2" | sed 's/^[a-z]*="//; s/"$//' |
	awk '
	function hexv(c) { return index("0123456789ABCDEF", toupper(c)) - 1 }
	/^[a-z]+:/ || /^\/\// { print "external: " $0; next }
	/^#/ { next }
	{	o = ""; s = $0; sub(/#.*/, "", s)
		for (i = 1; i <= length(s); i++) {
			c = substr(s, i, 1)
			if (c == "%") { o = o sprintf("%c", hexv(substr(s, i + 1, 1)) * 16 + hexv(substr(s, i + 2, 1))); i += 2 }
			else o = o c
		}
		print o }' | sed 's/&amp;/\&/g' |
	while IFS= read -r f; do
		case $f in external:*) echo "$f"; continue ;; esac
		[ -e "$1/$f" ] || echo "missing: $f"
	done
}
nlinks() { grep -o '\(href\|src\)="[^"]*"' "$1" | wc -l; }

expect_exit 0 sh "$PAGES" "$D"
expect_grep "warning: .*retrieve-sample.tsv: 1 malformed lines skipped" err.txt
expect_grep "wrote $D/index.html and $D/gallery.html" err.txt
for p in index gallery; do
	[ -s "$D/$p.html" ] && ok || fail "no $D/$p.html"
	linkcheck "$D" $p.html > bad-$p.txt
	expect_empty bad-$p.txt
done
[ "$(nlinks "$D/index.html")" -ge 13 ] && ok || fail "index.html has only $(nlinks "$D/index.html") links"
[ "$(grep -o '<img ' "$D/gallery.html" | wc -l)" -ge 36 ] && ok || fail "gallery.html has few images"
expect_eq "$(grep -o 'class="query"' "$D/gallery.html" | wc -l | tr -d ' ')" 12 "gallery rows"
expect_grep 'not in pool' "$D/gallery.html"
expect_grep 'image-rendering:pixelated' "$D/gallery.html"
for l in run/loss.svg run/metrics.jsonl gallery.html dedup-report/index.html results.tsv summary.txt \
	'pca/odd%20name%20%231.jpg'; do
	expect_grep "=\"$l\"" "$D/index.html"
done
expect_grep "2 steps logged" "$D/index.html"
expect_grep "kept [0-9]* of\|kept [0-9]*, removed" "$D/index.html"
# missing inputs: a note, no link
expect_grep 'student/loss.svg</code> was not found' "$D/index.html"
expect_nogrep '="student/' "$D/index.html"
# text from files is escaped
expect_grep '<td>&lt;img src=x onerror=alert(1)&gt;</td><td>&quot;a&amp;b&quot;</td>' "$D/index.html"
expect_grep 'k-NN &lt;script&gt;alert(1)&lt;/script&gt; &amp; more' "$D/index.html"
expect_nogrep '<script' "$D/index.html"
expect_nogrep '<img src=x' "$D/index.html"
# the gallery's images are the records' bytes
f=$(grep -o 'gallery/pool/[^"]*' "$D/gallery.html" | head -n 1)
[ -n "$f" ] || { fail "no pool image in gallery.html"; finish; }
key=${f#gallery/pool/}
id=$(awk -F'\t' -v k="$key" '$2 == k { print $1 }' all.ls)
echo "$id" > one.ids
dv2-pack -q --select one.ids -o one t10k && dv2-pack -q --extract one.x one && cmp -s "one.x/$key" "$D/$f" && ok ||
	fail "$f is not the bytes of record $id"

# Without inputs: notes only, no gallery; bad datasets: exit 1, index still written.
mkdir e e/seed e/pool
printf 'a\tb\n1\t2\n' > e/results.tsv
expect_exit 0 sh "$PAGES" e
[ -f e/index.html ] && [ ! -e e/gallery.html ] && ok || fail "empty dir: index.html only"
expect_grep 'the gallery was not built: e/retrieve-sample.tsv is missing' e/index.html
expect_grep 'pca/\*.jpg</code> was not found' e/index.html
linkcheck e index.html > bad-e.txt
expect_empty bad-e.txt
cp "$D/retrieve-sample.tsv" e/
expect_exit 0 sh "$PAGES" e
expect_grep 'the gallery was not built: e/seed is not a dataset' e/index.html
rmdir e/seed e/pool
cp -r "$D/seed" "$D/pool" e/
s=$(ls e/seed/shard-*.dv2s | head -n 1)
head -c 100 "$s" > short && mv short "$s"
expect_exit 1 sh "$PAGES" e
expect_grep "$s" err.txt
expect_grep 'gallery was not built: dv2-pack could not read e/seed' e/index.html
[ ! -e e/gallery.html ] && [ -z "$(ls -A e | grep '^\.')" ] && ok || fail "leftovers in e/: $(ls -A e)"
expect_exit 2 sh "$PAGES"
expect_exit 0 sh "$PAGES" -h
expect_grep '^EXIT STATUS' out.txt
expect_exit 1 sh "$PAGES" nonexistent
expect_grep 'demo-pages: error: nonexistent: not a directory' err.txt

if ! command -v chromium >/dev/null; then
	[ $_fail -gt 0 ] && finish
	skip "chromium not installed (scripts/setup installs it)"
fi
# render PAGE: loads DIR/PAGE in headless Chromium with a script that
# counts, once the page has loaded, the images that did not load; prints
# "images=N broken=M"
mkdir home
render() {
	sed 's|</body>|<script>window.addEventListener("load",function(){var im=document.images,bad=0;for(var i=0;i<im.length;i++)if(!im[i].complete\|\|im[i].naturalWidth===0)bad++;var d=document.createElement("div");d.id="dv2check";d.textContent="images="+im.length+" broken="+bad;document.body.appendChild(d);});</script></body>|' \
		"$1/$2" > "$1/check-$2"
	HOME="$PWD/home" timeout 60 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$PWD/home/profile" \
		--virtual-time-budget=10000 --dump-dom "file://$PWD/$1/check-$2" 2>chromium.err |
		sed -n 's/.*<div id="dv2check">\([^<]*\)<.*/\1/p'
	rm -f "$1/check-$2"
}
for p in index gallery; do
	n=$(grep -o '<img ' "$D/$p.html" | wc -l | tr -d ' ')
	expect_eq "$(render "$D" $p.html)" "images=$n broken=0" "$p.html in Chromium"
done
# the check sees an image that is missing
rm "$D/$f"
n=$(grep -o '<img ' "$D/gallery.html" | wc -l | tr -d ' ')
expect_eq "$(render "$D" gallery.html)" "images=$n broken=1" "gallery.html with $f removed"
expect_eq "$(linkcheck "$D" gallery.html)" "missing: $f" "link check with $f removed"

# A second run: the student's run appears, the gallery is extracted again.
mkdir "$D/student"
cp "$D/run/loss.svg" "$D/run/metrics.jsonl" "$D/student/"
expect_exit 0 sh "$PAGES" "$D"
expect_grep '="student/loss.svg"' "$D/index.html"
expect_nogrep 'student/loss.svg</code> was not found' "$D/index.html"
[ -f "$D/$f" ] && ok || fail "$f not extracted again"
[ -z "$(ls -A "$D" | grep '^\.')" ] && ok || fail "leftovers in $D: $(ls -A "$D" | grep '^\.')"
n=$(grep -o '<img ' "$D/index.html" | wc -l | tr -d ' ')
expect_eq "$(render "$D" index.html)" "images=$n broken=0" "index.html of the second run in Chromium"
finish
