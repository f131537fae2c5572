# t_backend_cuda.sh — every entry of the backend table on the CUDA backends
# (cuda, cuda-bf16) against the CPU backend, forward and backward, at awkward
# and at model sizes (tests/test_backend_ops.c holds the cases and the
# tolerances with their reasons).  SKIP without a CUDA build or a GPU.
. "$DV2_ROOT/tests/lib.sh"
[ "${DV2_CUDA:-0}" = 1 ] || skip "this build has no CUDA"
command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 || skip "no GPU"
"$DV2_BUILD/tests/test_backend_ops" --only cuda,cuda-bf16 --require cuda,cuda-bf16 > ops.txt 2>&1
rc=$?
grep -E '^(FAIL|backend|test_backend_ops)' ops.txt
expect_eq "$rc" 0 "test_backend_ops on cuda and cuda-bf16"
finish
