# t_dedup_report.sh — dv2-dedup --report: real photographs and copies of
# them are packed, embedded (--pixels) and deduplicated with a leakage set;
# the HTML page must name only files that exist, and headless Chromium must
# render the thumbnails (the screenshot has the photographs' colours, and
# loses them when the image files are removed).
. "$DV2_ROOT/tests/lib.sh"

$PY - <<'PYEOF' || fail "could not make the images"
import os
from PIL import Image
S = "/usr/lib/python3/dist-packages/skimage/data"
os.makedirs("img", exist_ok=True); os.makedirs("ev", exist_ok=True)
names = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
         "retina.jpg", "horse.png", "camera.png", "coins.png", "moon.png"]
for i, n in enumerate(names):
    im = Image.open(os.path.join(S, n)).convert("RGB"); im.thumbnail((256, 256))
    im.save("img/%02d_orig.png" % i)
    if i < 5:
        im.save("img/%02d_jpeg.jpg" % i, quality=20)
        im.resize((im.width // 2, im.height // 2)).save("img/%02d_small.png" % i)
    if i == 3:
        im.save("ev/eval_rocket.jpg", quality=40)
PYEOF
dv2-pack -q -o ds img || fail "dv2-pack"
dv2-pack -q -o evds ev || fail "dv2-pack eval"
dv2-embed -q --pixels --size 32 -o pool.emb ds || fail "dv2-embed"
dv2-embed -q --pixels --size 32 -o eval.emb evds || fail "dv2-embed eval"

expect_exit 0 dv2-dedup --report rep --shards ds --shards evds --against eval.emb pool.emb
expect_grep "report written" err.txt
expect_grep "removed 8 as copies, 3 as leakage" err.txt
[ -f rep/index.html ] && ok || fail "no rep/index.html"
# every image the page names exists, and nothing is fetched from elsewhere
grep -o 'src="[^"]*"' rep/index.html | sed 's/src="//; s/"$//' > srcs.txt
[ "$(wc -l < srcs.txt)" -ge 15 ] && ok || fail "only $(wc -l < srcs.txt) images on the page"
while read -r f; do [ -f "rep/$f" ] || fail "missing rep/$f"; done < srcs.txt
expect_nogrep "http" rep/index.html
expect_grep "00_jpeg.jpg" rep/index.html
expect_grep "eval_rocket.jpg" rep/index.html
expect_grep "Leakage hits (1 components dropped)" rep/index.html
# the thumbnails are the original bytes of the records
cmp -s "rep/$(grep -o 'img/[0-9]*\.jpg' rep/index.html | head -n 1)" img/00_jpeg.jpg ||
	cmp -s "rep/$(grep -o 'img/[0-9]*\.jpg' rep/index.html | head -n 1)" img/01_jpeg.jpg && ok ||
	fail "thumbnail bytes differ from the packed image"
# with --margin the page says so and gives each image's background
expect_exit 0 dv2-dedup --margin 0.02 --margin-rank 2 --report repm --shards ds --shards evds --against eval.emb pool.emb
expect_grep "Margin 0.020: an edge, and a leak" repm/index.html
expect_grep ", bg [0-9.]*<" repm/index.html
# a second run refreshes the report in place
expect_exit 0 dv2-dedup --report rep --shards ds pool.emb

command -v chromium >/dev/null || { finish; }
shot() { # HTML PNG
	timeout 60 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
		--screenshot="$PWD/$2" --window-size=1200,1000 "file://$PWD/$1" >/dev/null 2>&1
	[ -s "$2" ]
}
colourful() { # fraction of saturated pixels in a screenshot
	$PY -c "
from PIL import Image; import numpy as np
a = np.asarray(Image.open('$1').convert('RGB')).astype(int)
print('%.4f' % ((a.max(2) - a.min(2)) > 60).mean())"
}
if shot rep/index.html shot.png; then
	ok
	c=$(colourful shot.png)
	echo "saturated pixels with thumbnails: $c" >&2
	$PY -c "import sys; sys.exit(not $c > 0.02)" && ok || fail "screenshot looks blank ($c saturated)"
	cp -r rep rep_noimg && rm -f rep_noimg/img/*
	shot rep_noimg/index.html shot_noimg.png || fail "second screenshot"
	c0=$(colourful shot_noimg.png)
	echo "saturated pixels without the image files: $c0" >&2
	$PY -c "import sys; sys.exit(not $c0 < $c / 3)" && ok || fail "colours do not come from the thumbnails ($c0 vs $c)"
else
	fail "chromium produced no screenshot"
fi
finish
