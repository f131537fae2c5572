# t_dist_mpi.sh — lib/core/dist.h collectives, and the backends' collective
# entries, across 2 and 3 MPI ranks (skips without MPI).
. "$DV2_ROOT/tests/lib.sh"
[ "${DV2_MPI:-0}" = 1 ] || skip "build without MPI"
command -v mpirun >/dev/null || skip "no mpirun"
t="$DV2_BUILD/tests/test_dist"
[ -x "$t" ] || skip "test_dist not built"
extra=""
[ "$(id -u)" = 0 ] && extra="--allow-run-as-root"
for np in 2 3; do
	expect_exit 0 mpirun $extra --oversubscribe -np $np "$t"
	expect_grep "checks passed" err.txt
done
finish
