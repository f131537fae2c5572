# t_blas.sh — the OpenBLAS kernel correction (ops/cpu/cpu_blas.h,
# cli/cli_blas.c): the decision table; a GEMM under a fallback core equals
# the GEMM under the core dv2 would ask for; a program re-executes itself with
# OPENBLAS_CORETYPE when OpenBLAS runs a fallback (DV2_BLAS_ASSUME_CORE makes
# the decision as if OpenBLAS had reported it) and leaves a user's setting
# alone; -V and -v say which kernels run.
set -u
. "$DV2_ROOT/tests/lib.sh"
T="$DV2_BUILD/tests/test_blas"
"$T" || { fail "decision table"; finish; }

# the vector kernels (ops/cpu/cpu_vec.h): -V and -v say which run,
# DV2_CPU_ISA picks one, and one this CPU lacks falls back with a warning
if [ "$(uname -m)" = x86_64 ]; then
	out=$(DV2_CPU_ISA=sse2 dv2-pack -V) || fail "DV2_CPU_ISA=sse2 dv2-pack -V"
	echo "$out" | grep -qx "vector kernels: sse2" || fail "DV2_CPU_ISA=sse2: $out"
	best=$(env -u DV2_CPU_ISA dv2-pack -V | sed -n 's/^vector kernels: //p')
	case $best in sse2|avx2|avx512) ;; *) fail "-V names no vector kernels: '$best'";; esac
	out=$(DV2_CPU_ISA=nosuch dv2-pack -V 2>err.txt) || fail "DV2_CPU_ISA=nosuch dv2-pack -V"
	echo "$out" | grep -qx "vector kernels: $best" || fail "an unknown DV2_CPU_ISA did not fall back to $best: $out"
	grep -q "DV2_CPU_ISA=nosuch is not available on this CPU; using $best" err.txt ||
		fail "no warning for an unknown DV2_CPU_ISA: $(cat err.txt)"
	err=$(DV2_CPU_ISA=sse2 dv2-pack -v --ls /dev/null 2>&1 >/dev/null)
	echo "$err" | grep -q "vector kernels: sse2" || fail "-v does not name the vector kernels: $err"
fi

want=$("$T" --better Prescott)
if [ "$want" = - ]; then
	echo "skip: this CPU has no AVX: no core better than Prescott to compare"; exit 77
fi
got=$(OPENBLAS_CORETYPE=Prescott "$T" --gemm a.bin) || fail "gemm under Prescott"
[ "$got" = Prescott ] || fail "OPENBLAS_CORETYPE=Prescott ran '$got'"
got=$(OPENBLAS_CORETYPE=$want "$T" --gemm b.bin) || fail "gemm under $want"
[ "$got" = "$want" ] || fail "OPENBLAS_CORETYPE=$want ran '$got'"
"$T" --compare a.bin b.bin || fail "GEMM under $want differs from Prescott"

# the re-execution: a fallback is corrected, and -V and -v say so
out=$(env -u OPENBLAS_CORETYPE DV2_BLAS_ASSUME_CORE=Prescott dv2-pack -V) || fail "dv2-pack -V"
echo "$out"
echo "$out" | grep -q "^blas: .*$want kernels (OpenBLAS chose Prescott on this .* CPU; corrected)" ||
	fail "-V after a corrected fallback: $out"
err=$(env -u OPENBLAS_CORETYPE DV2_BLAS_ASSUME_CORE=Prescott dv2-pack -v --ls /dev/null 2>&1 >/dev/null)  # an error after the parse is fine
echo "$err" | grep -q "blas: $want kernels" || fail "-v after a corrected fallback: $err"
# a user's OPENBLAS_CORETYPE is kept
out=$(OPENBLAS_CORETYPE=Prescott DV2_BLAS_ASSUME_CORE=Prescott dv2-pack -V) || fail "dv2-pack -V"
echo "$out" | grep -q "^blas: .*Prescott kernels (OPENBLAS_CORETYPE=Prescott set by the user" ||
	fail "a user's OPENBLAS_CORETYPE was not kept: $out"
# the right core: no re-execution
out=$(env -u OPENBLAS_CORETYPE DV2_BLAS_ASSUME_CORE=SapphireRapids dv2-pack -V)
echo "$out" | grep -q "chosen by OpenBLAS" || fail "no correction expected: $out"
finish
