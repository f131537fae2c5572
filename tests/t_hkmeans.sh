# t_hkmeans.sh — dv2-hkmeans on the ring data of the ssl-data-curation
# README, scaled down 10x for speed (2,000 / 20 / 100 / 50 / 800 points,
# 2 levels of 100 and 30 clusters, 10 resampling steps, sample sizes 15 and
# 2, target 100): the sample is close to balanced over the rings, as the
# numpy re-implementation in tests/ref/hkmeans_ref.py is, where random
# sampling takes about two thirds from the big ring.  Then the tree:
# levels reused on rerun, a changed upper level recomputed alone, sampling
# from the tree alone, determinism, corrupt files and usage errors.
. "$DV2_ROOT/tests/lib.sh"
REF="$DV2_ROOT/tests/ref/hkmeans_ref.py"
$PY -c "import numpy" 2>/dev/null || skip "python3-numpy not installed"
H() { sed -n "s/^$1=//p" "$2"; }
cmpf() { $PY -c "import sys; sys.exit(not ($1))" && ok || fail "$2"; }

$PY "$REF" rings rings.emb --scale 10 || fail "making the rings"
args="--clusters 100,30 --steps 10 --sample-size 15,2"
expect_exit 0 dv2-hkmeans --tree tree $args --target 100 rings.emb
cp out.txt sel.ids
expect_grep "level 1: clustered" err.txt
$PY "$REF" shares rings.emb sel.ids > c.txt
$PY "$REF" run rings.emb $args --target 100 > ref.ids || fail "numpy reference"
$PY "$REF" shares rings.emb ref.ids > r.txt
$PY "$REF" random rings.emb --target 100 > rnd.ids
$PY "$REF" shares rings.emb rnd.ids > u.txt
for f in c r u; do echo "$f: $(tr '\n' ' ' < $f.txt)" >&2; done
expect_eq "$(H n c.txt)" 100 "sample size"
cmpf "$(H 0 c.txt) < 0.4" "big ring share $(H 0 c.txt) (random: $(H 0 u.txt))"
cmpf "$(H 0 u.txt) > 0.5" "random sampling should favour the big ring: $(H 0 u.txt)"
cmpf "$(H 1 c.txt) >= 0.05" "smallest ring share $(H 1 c.txt)"
cmpf "$(H entropy c.txt) > 2.0" "entropy $(H entropy c.txt) (max 2.32)"
cmpf "abs($(H entropy c.txt) - $(H entropy r.txt)) < 0.25" "entropy $(H entropy c.txt) vs numpy $(H entropy r.txt)"

# rerun: both levels reused, same sample
expect_exit 0 dv2-hkmeans --tree tree $args --target 100 rings.emb
expect_same out.txt sel.ids
expect_grep "level 1: reused" err.txt
expect_grep "level 2: reused" err.txt
# sampling from the tree alone, another target; closest-first
expect_exit 0 dv2-hkmeans --tree tree --target 50
expect_eq "$(wc -l < out.txt | tr -d ' ')" 50 "--target 50 from the tree"
expect_exit 0 dv2-hkmeans --tree tree --target 100 --sampling closest -o closest.ids
expect_eq "$(wc -l < closest.ids | tr -d ' ')" 100 "closest sampling"
# --multiplier 3 (an image up to three times): at half the pool the three
# small rings fill their whole capacity, three times their size, as in the
# numpy sampler
expect_exit 0 dv2-hkmeans --tree tree --target 1500 --multiplier 3 -o m3.ids
expect_eq "$(wc -l < m3.ids | tr -d ' ')" 1500 "--multiplier 3 sample size"
expect_eq "$(sort m3.ids | uniq -c | awk '$1 > m { m = $1 } END { print m }')" 3 "most times one id is taken"
$PY "$REF" run rings.emb $args --target 1500 --multiplier 3 > refm3.ids || fail "numpy sampler, --multiplier 3"
$PY "$REF" shares rings.emb m3.ids > m3.txt
$PY "$REF" shares rings.emb refm3.ids > rm3.txt
for r in 1 2 3; do expect_eq "$(H $r m3.txt)" "$(H $r rm3.txt)" "ring $r share with --multiplier 3"; done
expect_eq "$(H 1 m3.txt)" 0.0400 "ring 1 (20 points) taken three times"
cmpf "abs($(H entropy m3.txt) - $(H entropy rm3.txt)) < 0.25" "--multiplier 3 entropy $(H entropy m3.txt) vs numpy $(H entropy rm3.txt)"
expect_exit 0 dv2-hkmeans --tree tree --target 20000 --multiplier 3 -o m3all.ids
expect_grep "times --multiplier 3" err.txt
expect_eq "$(sort m3all.ids | uniq -c | awk '{ print $1 }' | sort -u | tr '\n' ' ')" "3 " "every id three times"
expect_eq "$(wc -l < m3all.ids | tr -d ' ')" 8910 "pool times 3"
expect_exit 2 dv2-hkmeans --tree tree --target 10 --multiplier 0
# a changed upper level: level 1 reused, level 2 recomputed
expect_exit 0 dv2-hkmeans --tree tree --clusters 100,20 --steps 10 --sample-size 15,2 rings.emb
expect_grep "level 1: reused" err.txt
expect_grep "level 2: clustered" err.txt
# fewer levels than before: the stale level 3 is removed
expect_exit 0 dv2-hkmeans --tree t3 --clusters 100,30,10 --steps 2 --sample-size 5 rings.emb
expect_exit 0 dv2-hkmeans --tree t3 --clusters 100,30 --steps 2 --sample-size 5 --target 10 rings.emb
expect_grep "2-level tree" err.txt
[ ! -e t3/level-3.hkm ] && ok || fail "t3/level-3.hkm left behind"
# -f recomputes; same seed, same tree, same sample
expect_exit 0 dv2-hkmeans -f --tree tree $args --target 100 rings.emb
expect_same out.txt sel.ids
# a target above the pool: everything, with a warning
expect_exit 0 dv2-hkmeans --tree tree --target 5000
expect_eq "$(wc -l < out.txt | tr -d ' ')" 2970 "target above the pool"
expect_grep "larger than the pool" err.txt
# --keep: only the listed rows are clustered and sampled
expect_exit 0 dv2-hkmeans --tree tree --target 5000
sort -n out.txt | awk 'NR % 3 == 1' > keep.ids
expect_exit 0 dv2-hkmeans --tree tk --clusters 50,10 --steps 2 --sample-size 5 --keep keep.ids --target 5000 rings.emb
sort -n out.txt > kept.sorted
sort -n keep.ids > keep.sorted
expect_same kept.sorted keep.sorted
expect_eq "$(wc -l < keep.ids | tr -d ' ')" 990 "kept rows"
echo 12345 >> keep.ids
expect_exit 0 dv2-hkmeans --tree tk --clusters 50,10 --steps 2 --sample-size 5 --keep keep.ids rings.emb
expect_grep "1 of the 991 ids in keep.ids are not in the pool" err.txt
expect_exit 2 dv2-hkmeans --tree tk --keep keep.ids --target 10

# 160-d blobs in a 16-d subspace: the seeding's projection bound prunes most
# distances and changes no seed (the same level files as every distance
# computed), and the files do not depend on the BLAS's number of threads
$PY "$REF" blobs blobs.emb || fail "making the blobs"
bargs="--clusters 200,20 --steps 2 --niter 5"
expect_exit 0 dv2-hkmeans -v --tree b1 $bargs blobs.emb
pct=$(sed -n 's/.*level 1: .*seeding [0-9.]* s, \([0-9.]*\)% of its distances computed.*/\1/p' err.txt)
cmpf "'$pct' != '' and $pct < 60" "level 1 seeding computed ${pct:-?}% of its distances (the bound should prune most)"
expect_exit 0 env DV2_HKM_SEED_PRUNE=0 dv2-hkmeans -v --tree b2 $bargs blobs.emb
expect_grep "level 1: .* 100.0% of its distances computed" err.txt
expect_same b1/level-1.hkm b2/level-1.hkm
expect_same b1/level-2.hkm b2/level-2.hkm
expect_exit 0 env OPENBLAS_NUM_THREADS=1 dv2-hkmeans -j 1 --tree b3 $bargs blobs.emb
expect_same b1/level-1.hkm b3/level-1.hkm
expect_same b1/level-2.hkm b3/level-2.hkm

# a NaN in the pool is refused, naming the row, before any clustering
$PY - <<EOF || fail "could not make the NaN pool"
import sys; sys.path.insert(0, "$DV2_ROOT/tests/ref")
import emb_util as e, numpy as np
ids, _, x = e.read("rings.emb")
x = x.copy(); x[17, 1] = np.nan
e.write("nan.emb", ids, x)
EOF
expect_exit 1 dv2-hkmeans --tree tnan --clusters 10 nan.emb
expect_grep "nan.emb: row 17 (id [0-9]*): vector contains NaN or infinity" err.txt
[ ! -e tnan/level-1.hkm ] && ok || fail "a level was written from a NaN pool"

# --progress: a meter per level, in distances of the assignment GEMM, that
# ends at 100%
expect_exit 0 dv2-hkmeans --progress -f --tree tprog --clusters 50,10 --steps 2 rings.emb
tr '\r' '\n' < err.txt > prog.txt
expect_grep "distances of level 1 (100.0%)" prog.txt
expect_grep "distances of level 2 (100.0%)" prog.txt
expect_grep "level 2: clustered" prog.txt

# errors
expect_exit 2 dv2-hkmeans --clusters 10 rings.emb
expect_exit 2 dv2-hkmeans --tree t2
expect_exit 2 dv2-hkmeans --tree t2 --clusters 10,20 rings.emb
expect_exit 2 dv2-hkmeans --tree t2 --clusters 10,5 --steps 1,2,3 rings.emb
expect_exit 2 dv2-hkmeans --tree t2 --levels 3 --clusters 10,5 rings.emb
expect_exit 2 dv2-hkmeans --tree t2 --resample sideways --clusters 10 rings.emb
expect_exit 1 dv2-hkmeans --tree t2 --clusters 5000 rings.emb
expect_exit 1 dv2-hkmeans --tree nothing --target 10
head -c 100 tree/level-2.hkm > bad && mv bad tree/level-2.hkm
expect_exit 1 dv2-hkmeans --tree tree --target 10
expect_grep "level-2.hkm" err.txt
finish
