# b_knn_gpu.sh — GPU exact cosine k-NN (kernels/cuda_knn.cu) against PyTorch
# (torch.mm + torch.topk, FP32, same blocks) on the same GPU, same vectors,
# same run.  Sizes: N=${KNN_N:-1000000} database rows, NQ=${KNN_NQ:-20000}
# queries, D=384, K=64 (dv2-dedup's defaults).  Needs a GPU; prints a skip
# line otherwise.
B=${DV2_BENCH_BIN:-${DV2_BUILD:-$DV2_ROOT/build}/bench}/bench_knn_gpu
N=${KNN_N:-1000000} NQ=${KNN_NQ:-20000} D=${KNN_D:-384} K=${KNN_K:-64}
[ -x "$B" ] || { echo "skip: $B not built"; exit 0; }
"$B" "$N" "$NQ" "$D" "$K" 5 > ours.txt; rc=$?
cat ours.txt
[ $rc = 0 ] || exit 0
PYTHON=${PYTHON:-python3}
"$PYTHON" "$DV2_ROOT/bench/knn_gpu_torch.py" "$N" "$NQ" "$D" "$K" 5 > base.txt || { echo "baseline failed"; exit 0; }
cat base.txt
o=$(sed -n 's/^OURS //p' ours.txt); b=$(sed -n 's/^BASE //p' base.txt)
echo "RESULT knn_gpu_n${N}_q${NQ}_d${D}_k${K} ${o}s ${b}s time speedup=$(echo "$b $o" | awk '{printf "%.2f", $1/$2}')"
