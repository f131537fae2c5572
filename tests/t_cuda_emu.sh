# t_cuda_emu.sh — the CUDA backends' real kernel code (lib/ops/cuda/*.cu)
# on the host, through the emulation of tests/emu (one fiber per GPU
# thread, cuBLAS and cub stand-ins; see tests/emu/README), held to the CPU
# backend by test_backend_ops: the cases of --small, once with the blocks
# and threads in order and once reversed (a result that depends on the
# order is a race) in a build with AddressSanitizer and UBSan (a kernel's
# access outside its buffers, a misaligned load, an overflow).  The small
# attention cases reach every template (DH 32, 64, 128).  This checks
# kernel logic, not a GPU.  SKIP (77) without g++ or the CUDA headers.
#   DV2_EMU_CASES="gelu layernorm": only the cases whose names contain these
: "${DV2_ROOT:=$(cd "$(dirname "$0")/.." && pwd)}"
export DV2_ROOT
. "$DV2_ROOT/tests/lib.sh"
case $(pwd) in "$DV2_ROOT"*) cd "$(mktemp -d "${TMPDIR:-/tmp}/dv2-emu.XXXXXX")" ;; esac # logs stay out of the tree
EMU=${DV2_EMU_BUILD:-build-emu}
build() { # BUILD [EMU_SAN]
	(cd "$DV2_ROOT" && BUILD=$1 LIB_BUILD=$EMU EMU_SAN=${2:-} sh tests/emu/build.sh) > "build-$(basename "$1").txt" 2>&1
	rc=$?
	[ "$rc" = 77 ] && skip "$(tail -n 1 "build-$(basename "$1").txt")"
	if [ "$rc" != 0 ]; then
		tail -n 30 "build-$(basename "$1").txt" >&2
		fail "tests/emu/build.sh BUILD=$1 (exit $rc)"
		finish
	fi
}
build "$EMU"
build "$EMU-asan" address,undefined
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1
B="--only cuda,cuda-bf16 --require cuda,cuda-bf16"

# check NAME BUILD ORDER ARGS...: one run of the emulated backends
check() {
	name=$1 bin=$DV2_ROOT/$2/test_backend_ops_emu order=$3; shift 3
	EMU_ORDER=$order "$bin" $B "$@" > "$name.txt" 2>&1
	rc=$?
	grep -E '^(FAIL|CUDA emulation|test_backend_ops)' "$name.txt"
	[ "$rc" = 0 ] || grep -A3 -E 'ERROR: AddressSanitizer' "$name.txt" | head -n 4 >&2
	expect_eq "$rc" 0 "test_backend_ops_emu $name (EMU_ORDER=$order)"
}

if [ -n "${DV2_EMU_CASES:-}" ]; then
	set --
	for c in $DV2_EMU_CASES; do set -- "$@" --case "$c"; done
	check picked "$EMU" forward "$@"
	check picked-reversed-asan "$EMU-asan" reverse "$@"
else
	check small "$EMU" forward --small
	check small-reversed-asan "$EMU-asan" reverse --small
fi
finish
