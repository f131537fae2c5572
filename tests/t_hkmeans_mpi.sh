# t_hkmeans_mpi.sh — dv2-hkmeans under `mpirun -np 2` writes a tree
# byte-identical to one process's and samples the same ids (the assignment
# is split by whole blocks of rows and merged exactly, the seeding's draws
# by blocks of rows summed in order), also at 160 dims where the GEMM's
# rounding differs between the processes, reuses saved levels
# the same way, and both ranks take part.
. "$DV2_ROOT/tests/lib.sh"
REF="$DV2_ROOT/tests/ref/hkmeans_ref.py"
command -v mpirun >/dev/null || skip "mpirun not installed"
[ "${DV2_MPI:-0}" = 1 ] || skip "this build has no MPI"
$PY -c "import numpy" 2>/dev/null || skip "python3-numpy not installed"
MPI="mpirun -np 2 --allow-run-as-root --oversubscribe"

# 14,850 points: 8 blocks of rows at level 1
$PY "$REF" rings rings.emb --scale 2 || fail "making the rings"
args="--clusters 100,30 --steps 3 --sample-size 15,2 --target 300"
dv2-hkmeans -q --tree t1 $args rings.emb > s1.ids || fail "one process"
$MPI dv2-hkmeans -v --tree t2 $args rings.emb > s2.ids 2> err2.txt || fail "mpirun: $(cat err2.txt)"
expect_grep "rank 1 of 2" err2.txt
expect_same t1/level-1.hkm t2/level-1.hkm
expect_same t1/level-2.hkm t2/level-2.hkm
expect_same t1/pool.ids t2/pool.ids
expect_same s1.ids s2.ids
$MPI dv2-hkmeans --tree t2 $args rings.emb > s3.ids 2> err3.txt || fail "mpirun rerun: $(cat err3.txt)"
expect_grep "level 2: reused" err3.txt
expect_same s1.ids s3.ids

# 160 dims (9,000 points, 3 seeding blocks, 5 assignment blocks): the
# k-means++ seeding split by blocks too, and the BLAS of each rank running
# on fewer threads than the one process's, still the same files
$PY "$REF" blobs blobs.emb || fail "making the blobs"
bargs="--clusters 200,20 --steps 2 --niter 5 --target 500"
dv2-hkmeans -q --tree b1 $bargs blobs.emb > b1.ids || fail "one process (blobs)"
$MPI dv2-hkmeans -q --tree b2 $bargs blobs.emb > b2.ids 2> errb.txt || fail "mpirun (blobs): $(cat errb.txt)"
expect_same b1/level-1.hkm b2/level-1.hkm
expect_same b1/level-2.hkm b2/level-2.hkm
expect_same b1.ids b2.ids
finish
