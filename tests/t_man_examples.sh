# t_man_examples.sh — the EXAMPLES of the manual pages are real commands.
#
# 1. Every example block (.EX/.EE or .nf/.fi in EXAMPLES) of every page in
#    man/ is read; every option of a dv2-* command in it must be one that the
#    program's --help lists, and every KEY=VALUE operand of dv2-train and
#    dv2-distill a key of `dv2-train --list-keys` (an example that names an
#    option or a key that does not exist fails here, run or not).
# 2. The blocks of every program page (man/dv2-*.1) and of dv2(7) run as
#    written, in order, in one directory per page, at test scale: small
#    fixtures under the names the examples use, and sed substitutions that
#    scale the command lines:
#      - the Fashion-MNIST IDX files are 600 (train-*) and 200 (t10k-*)
#        images of Debian's t10k set;
#      - configs/ is the repository's; every dv2-train / dv2-distill line
#        stops after 2 iterations (-j 1 -q), and a line with a ViT recipe
#        (configs/vit*.cfg) also gets the keys of a micro ViT (D 32, 4
#        blocks, 16 px crops, 256 prototypes, 4 images per rank);
#      - `srun` and `mpirun -np 8` become `mpirun -np 2`;
#      - /data/lvd, /data/uncurated/ and /tmp/check become directories of
#        the test;
#      - FAISS index strings, cluster counts and sample sizes shrink to the
#        pool of 600 images (the table SCALE below), and the default dedup
#        threshold of dv2(7)'s pipeline becomes 0.999: the micro ViT of one
#        iteration puts Fashion-MNIST images at a median cosine of 0.998
#        (a random ViT-S at 0.944), so at 0.6 one image would be left;
#      - `chromium FILE` becomes `test -s FILE` (the report must exist).
#    Blocks that cannot run here are listed in NOT_RUN with the reason.
# The format pages' blocks (numpy, od, python3 snippets) are only checked
# for their dv2 options.
. "$DV2_ROOT/tests/lib.sh"
[ -f $FMNIST/t10k-images-idx3-ubyte.gz ] || skip "dataset-fashion-mnist not installed"
$PY -c "import PIL" 2>/dev/null || skip "$PY without PIL (python3-pil makes the JPEG fixtures)"
MAN="$DV2_ROOT/man"
W=$(pwd)
F=$W/fixture
mkdir -p "$F" blocks

# PAGE.N: why not run (N counts the blocks of PAGE from 1)
NOT_RUN='dv2-embed.4: needs the released SSCD TorchScript weights (sscd_disc_mixup.torchscript.pt, from the internet)'
[ "${DV2_MPI:-0}" = 1 ] && command -v mpirun >/dev/null 2>&1 || NOT_RUN="$NOT_RUN
dv2-dedup.3: build without MPI or no mpirun
dv2.2: build without MPI or no mpirun
dv2-train.2: build without MPI or no mpirun
dv2-distill.2: build without MPI or no mpirun"
[ "${DV2_FAISS:-1}" = 0 ] && NOT_RUN="$NOT_RUN
dv2-dedup.3: build without FAISS (--index)
dv2-retrieve.1: build without FAISS (--index)
dv2-retrieve.2: build without FAISS (--clusters)"

# ---- 1. extract the blocks ---------------------------------------------------
for page in "$MAN"/*.[157]; do
	name=$(basename "$page"); name=${name%.*}
	awk -v out="blocks/$name" '
		/^\.SH/ { e = ($0 ~ /^\.SH "?EXAMPLES/); next }
		e && (/^\.EX/ || /^\.nf/) { n++; f = out "." n ".sh"; printf "" > f; b = 1; next }
		e && (/^\.EE/ || /^\.fi/) { b = 0; close(f); next }
		b { sub(/^\$ /, ""); gsub(/\\e/, "\\"); gsub(/\\-/, "-"); print >> f }' "$page"
	case $name in dv2-*) [ "$name" != dv2 ] && [ ! -f "blocks/$name.1.sh" ] && [ -f "$MAN/$name.1" ] &&
		fail "$page: no example block";; esac
done
ls blocks/*.sh >/dev/null 2>&1 || { fail "no example blocks found"; finish; }

# ---- 2. options and keys ---------------------------------------------------------
dv2-train --list-keys | awk '{ print $1 }' > keys.txt
for p in "$DV2_BIN"/dv2-*; do
	"$p" --help > "help.$(basename "$p")" 2>&1
done
for b in blocks/*.sh; do
	# one command per line: continuation lines joined, pipes and ; split
	sed -e ':a' -e '/\\$/{N;s/\\\n//;ba' -e '}' "$b" | tr '|;' '\n\n' |
	sed -e 's/^ *//' -e 's/^mpirun -np [0-9]* //' -e 's/^srun //' -e 's/^[A-Z]*=[^ ]* //' |
	grep '^dv2-[a-z]* ' > cmds.txt
	set -f
	while read -r prog args; do
		if [ ! -f "help.$prog" ]; then fail "$b: no program $prog"; continue; fi
		for w in $args; do
			case $w in
			--*) o=${w%%=*}
			     if grep -Eq -e "^ +(-[a-zA-Z], )?$o( |$)" "help.$prog"; then ok; else fail "$b: $prog has no option $o"; fi;;
			-[a-zA-Z]) if grep -q -e "^ *$w," "help.$prog"; then ok; else fail "$b: $prog has no option $w"; fi;;
			-[a-zA-Z]*) fail "$b: $prog: '$w' is not an option form the programs take";;
			[a-z]*.[a-z_]*=*)
				case $prog in dv2-train|dv2-distill)
					if grep -qx -e "${w%%=*}" keys.txt; then ok; else fail "$b: $prog has no config key ${w%%=*}"; fi;;
				esac;;
			esac
		done
	done < cmds.txt
	set +f
done
# scripts/convert-weights: its options are those its --help text names
for b in blocks/*.sh; do
	grep -o 'convert-weights .*' "$b" | grep -o -- ' --[a-z-]*' | while read -r o; do
		grep -q -e "$o" "$DV2_ROOT/scripts/convert-weights" || echo "$b: convert-weights has no option $o"
	done
done > conv.txt
[ -s conv.txt ] && fail "$(cat conv.txt)" || ok

# ---- 3. fixtures -------------------------------------------------------------------
t0=$(date +%s)
# be32 N: N as 4 big-endian bytes (IDX headers)
be32() { printf "\\$(printf %03o $(($1 >> 24 & 255)))\\$(printf %03o $(($1 >> 16 & 255)))\\$(printf %03o $(($1 >> 8 & 255)))\\$(printf %03o $(($1 & 255)))"; }
# idx NAME FIRST COUNT: images FIRST.. of the t10k set as NAME-{images,labels}-*.gz
idx() {
	{ be32 2051; be32 $3; be32 28; be32 28; gzip -dc $FMNIST/t10k-images-idx3-ubyte.gz |
		tail -c +$((16 + $2 * 784 + 1)) | head -c $(($3 * 784)); } | gzip -1 > "$F/$1-images-idx3-ubyte.gz"
	{ be32 2049; be32 $3; gzip -dc $FMNIST/t10k-labels-idx1-ubyte.gz |
		tail -c +$((8 + $2 + 1)) | head -c $3; } | gzip -1 > "$F/$1-labels-idx1-ubyte.gz"
}
idx train 0 600
idx t10k 600 200
dv2-pack -q -o "$F/a" --idx-labels "$F/train-labels-idx1-ubyte.gz" "$F/train-images-idx3-ubyte.gz" &&
dv2-pack -q -o "$F/b" --idx-labels "$F/t10k-labels-idx1-ubyte.gz" "$F/t10k-images-idx3-ubyte.gz" &&
dv2-pack --ls "$F/b" | head -n 100 | cut -f1 > "$F/b100.ids" &&
dv2-pack -q -o "$F/b100" --select "$F/b100.ids" "$F/b" &&
dv2-pack --ls "$F/b" | head -n 8 | cut -f1 > "$F/b8.ids" &&
dv2-pack -q -o "$F/few" --select "$F/b8.ids" "$F/b" ||
	{ fail "fixture datasets"; finish; }
# the keys that make a ViT recipe a micro ViT
MICRO="student.arch=custom student.embed_dim=32 student.depth=4 student.num_heads=2 student.patch_size=4 \
student.ffn_layer=mlp student.drop_path_rate=0 dino.head_n_prototypes=256 dino.head_bottleneck_dim=32 \
dino.head_hidden_dim=64 ibot.head_n_prototypes=256 ibot.head_bottleneck_dim=32 ibot.head_hidden_dim=64 \
crops.global_crops_size=16 crops.local_crops_size=8 crops.local_crops_number=2 train.batch_size_per_gpu=4 \
train.num_workers=1"
# a micro backbone (16 px, recorded in its metadata) and a micro ViT-g-recipe teacher run
# shellcheck disable=SC2086
dv2-train -q -j 2 -c "$DV2_ROOT/configs/vits14.cfg" --data "$F/a" -o "$F/m" --max-iters 1 $MICRO student.layerscale=1.0 &&
dv2-train -q -j 2 -c "$DV2_ROOT/configs/vitg14.cfg" --data "$F/a" -o "$F/g14" --max-iters 1 $MICRO ||
	{ fail "fixture models"; finish; }
MODEL=$F/m/teacher.safetensors
dv2-embed -q -j 2 --pixels --size 16 --resize 16 -o "$F/a.px" "$F/a" &&
dv2-embed -q -j 2 --pixels --size 16 --resize 16 -o "$F/b.px" "$F/b" &&
dv2-embed -q -j 2 --pixels --size 16 --resize 16 -o "$F/b100.px" "$F/b100" ||
	{ fail "fixture matrices"; finish; }
dv2-pack --ls "$F/a" | cut -f1 > "$F/a.ids"
# JPEG files (photos/ and an ImageFolder tree) from the first 12 test images
$PY - "$FMNIST/t10k-images-idx3-ubyte.gz" "$F" <<'PY' || { fail "fixture JPEGs"; finish; }
import gzip, os, sys
from PIL import Image
d = gzip.open(sys.argv[1]).read()[16:]
for i in range(12):
    im = Image.frombytes('L', (28, 28), d[i * 784:(i + 1) * 784])
    for sub in ('photos', 'imagefolder/' + ('even' if i % 2 == 0 else 'odd')):
        os.makedirs(os.path.join(sys.argv[2], sub), exist_ok=True)
        im.save(os.path.join(sys.argv[2], sub, 'img%02d.jpg' % i), quality=90)
PY
dv2-pack -q --extract "$F/uncurated" "$F/b" &&
dv2-pack -q -o "$F/photos.ds" "$F/photos" && dv2-pack -q --extract "$F/wds" --webdataset "$F/photos.ds" &&
	(cd "$F/wds" && ls | sort | tar cf "$F/samples.tar" -T -) || { fail "fixture tar"; finish; }

# fixtures PAGE: the files that PAGE's examples name, in the current directory
fixtures() {
	case $1 in
	dv2-dedup) ln -s "$F/a" pool; ln -s "$F/b" eval; cp "$F/a.px" pool.emb; cp "$F/b.px" eval.emb
	           cp "$F/b.px" imagenet-val.emb; cp "$F/b100.px" cars-test.emb;;
	dv2-embed) ln -s "$MODEL" vits14.safetensors; ln -s "$MODEL" vitl14.safetensors
	           ln -s "$F/b" eval; ln -s "$F/a" train; ln -s "$F/b" fmnist; ln -s "$F/few" few
	           dv2-pack -q --shard-size 16K -o pool "$F/b";;  # several shards for the merge example
	dv2-hkmeans) ln -s "$F/a" pool; cp "$F/a.px" pool.emb;;
	dv2-pack) cp -r "$F/photos" photos; cp -r "$F/imagefolder" train; cp "$F/samples.tar" samples.tar;;
	dv2-probe) mkdir -p runs/s14; ln -s "$MODEL" runs/s14/teacher.safetensors; ln -s "$MODEL" teacher.safetensors
	           ln -s "$F/a" train; ln -s "$F/b" val;;
	dv2-retrieve) cp "$F/b.px" in22k.emb; cp "$F/a.px" pool.emb; cp "$F/a.ids" pool.keep; cp "$F/b100.px" cars.emb;;
	dv2-train) ln -s "$F/a" lvd;;
	dv2) cp -r "$F/uncurated" uncurated; ln -s "$MODEL" vitl14.safetensors; ln -s "$F/b100" curated;;
	dv2-distill) ln -s "$F/a" lvd; mkdir -p runs; cp -r "$F/g14" runs/g14
	             cp "$(ls "$F"/g14/ckpt-*.safetensors | tail -n 1)" g14.safetensors;;
	esac
}

echo "fixtures: $(( $(date +%s) - t0 ))s"

# ---- 4. run the program pages' blocks -------------------------------------------------
MPI="mpirun --oversubscribe -x OMP_NUM_THREADS -x PATH"
[ "$(id -u)" = 0 ] && MPI="$MPI --allow-run-as-root"
# SCALE: sed expressions from the paper's sizes to a pool of 600 images
SCALE='s/IVF65536,PQ32/IVF8,PQ8/g
s/--clusters 100000,10000/--clusters 16,4/
s/--clusters 100000/--clusters 8/
s/--per-cluster 10000/--per-cluster 50/
s/--cap 1000000/--cap 300/
s/--target 1000000/--target 100/
s/--target 2000000/--target 200/
s/--shard-size 512M/--shard-size 8K/
s/^dv2-dedup pool.emb/dv2-dedup -t 0.999 pool.emb/'
export OMP_NUM_THREADS=2
# every dv2 program the blocks start goes through a wrapper that records a
# failure, so a failing command inside a pipeline fails its block too
# (141: SIGPIPE from a reader such as head that stops early)
mkdir -p wrap
for p in "$DV2_BIN"/dv2-*; do
	n=$(basename "$p")
	printf '#!/bin/sh\n"%s" "$@"; rc=$?\n[ $rc = 0 ] || [ $rc = 141 ] || echo "%s $*: exit $rc" >> "%s"\nexit $rc\n' \
		"$p" "$n" "$W/failed.txt" > "wrap/$n"
	chmod +x "wrap/$n"
done
PATH=$W/wrap:$PATH
: > failed.txt
for b in blocks/dv2*.[0-9]*.sh; do
	id=$(basename "$b" .sh)
	page=${id%.*}
	[ -f "$MAN/$page.1" ] || [ "$page" = dv2 ] || continue
	why=$(printf '%s\n' "$NOT_RUN" | grep "^$id: " | head -n 1)
	if [ -n "$why" ]; then echo "not run: $why"; continue; fi
	d=$W/run/$page
	[ -d "$d" ] || { mkdir -p "$d" && (cd "$d" && fixtures "$page"); }
	# one command a line, then the substitutions
	sed -e ':a' -e '/\\$/{N;s/\\\n//;ba' -e '}' "$b" |
	sed -e "s#[^ ]*\(train\|t10k\)-\(labels-idx1\|images-idx3\)-ubyte.gz#$F/\1-\2-ubyte.gz#g" \
		-e "s| configs/| $DV2_ROOT/configs/|g" \
		-e "s|^srun |$MPI -np 2 |" -e "s|^mpirun -np [0-9]* |$MPI -np 2 |" \
		-e "s|/data/lvd|lvd|g" -e "s|/data/uncurated/|uncurated/|g" -e "s|/tmp/check|check|g" -e "s|^chromium |test -s |" \
		-e "$SCALE" \
		-e '/\(^\| \)dv2-\(train\|distill\) /s/$/ --max-iters 2 -j 1 -q/' \
		-e "/configs\/vit[a-z0-9_]*\.cfg/s/\$/ $MICRO/" > "$d/$id.sh"
	echo "== $id"; cat "$d/$id.sh"
	start=$(date +%s)
	(cd "$d" && sh -e "$id.sh" > "$id.out" 2> "$id.err")
	rc=$?
	echo "   $(( $(date +%s) - start ))s, exit $rc"
	if [ $rc = 0 ] && [ ! -s failed.txt ]; then ok
	else fail "$id failed (exit $rc):"; cat failed.txt >&2; tail -n 5 "$d/$id.err" >&2; fi
	: > failed.txt
done
# what the examples say they produce (where they ran)
ran() { ! printf '%s\n' "$NOT_RUN" | grep -q "^$1: "; }
check() { # ID FILE PATTERN WHAT: FILE (of ID's page) has a line matching PATTERN
	ran "$1" || return 0
	if [ -s "run/${1%.*}/$2" ] && grep -q -e "$3" "run/${1%.*}/$2"; then ok; else fail "$1: $4"; fi
}
check dv2-distill.1 dv2-distill.1.out '^ *20 ' "dv2-probe printed no k = 20 row"
check dv2-train.1 dv2-train.1.out '^ *20 ' "dv2-probe printed no k = 20 row"
check dv2-dedup.2 report/index.html . "no report"
check dv2-train.2 runs/l14/teacher.safetensors . "no teacher export"
check dv2-distill.2 runs/s14d/student_ema.safetensors . "no student export"
check dv2-hkmeans.1 pool.1m.ids . "no sample"
check dv2-probe.2 results.json '"knn"' "no k-NN results in the JSON"
check dv2-retrieve.2 cars.sel . "no cluster-based selection"
check dv2.1 dv2.1.out "^ *20 " "dv2-probe printed no k = 20 row"
check dv2.2 runs/s14/teacher.safetensors . "no teacher export"
finish
