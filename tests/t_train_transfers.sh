# t_train_transfers.sh — what a training step moves between host and device,
# as the backend counts it (dv2_backend.info; dv2-train -v prints the
# per-step figures).  Teacher targets, centers, losses, their gradients, the
# collapse diagnostics and the gradient statistics stay on the device: per
# step only a few scalars come back (the loss terms, the diagnostics, one
# norm and one finiteness flag per module), bounded here at 4 KiB.  Host to
# device is the input images and the step's packing plan (masks, row lists,
# iBOT weights, drop-path subsets and cu_seqlens), bounded at 16 KiB above
# the images for this micro config.  Measured when the bound was set:
# device to host 124 B, host to device 24,316 B of which 15,360 B images
# (61,440 B as floats before the pixels went to the device as u8)
# (the logits and their gradients crossed before: 4.5 MB down, 3.1 MB up
# per step for configs/fmnist_tiny.cfg).
. "$DV2_ROOT/tests/lib.sh"
pack_fmnist_t10k data
micro_cfg tiny.cfg 'train.batch_size_per_gpu = 8' 'train.num_workers = 1'
export OMP_NUM_THREADS=1
expect_exit 0 dv2-train -c tiny.cfg --data data -o run -j 1 --max-iters 3 -v
line=$(grep 'transfers per step' err.txt)
echo "$line"
d2h=$(echo "$line" | sed -n 's/.*device to host \([0-9]*\) B.*/\1/p')
h2d=$(echo "$line" | sed -n 's/.*host to device \([0-9]*\) B.*/\1/p')
inp=$(echo "$line" | sed -n 's/.*input images \([0-9]*\) B.*/\1/p')
[ -n "$d2h" ] && [ -n "$h2d" ] && [ -n "$inp" ] || { fail "no transfer figures in: $line"; finish; }
# input: 2 global crops of 16 px and 2 local of 8 px, 3 channels, B = 8, as
# u8 pixels (normalised on the device)
expect_eq "$inp" $(( 3 * (2 * 8 * 16 * 16 + 2 * 8 * 8 * 8) )) "input image bytes per step"
[ "$h2d" -ge "$inp" ] && ok || fail "host to device $h2d B is less than the input $inp B"
[ "$h2d" -le $(( inp + 16384 )) ] && ok || fail "host to device $h2d B is more than the input $inp B + 16 KiB of plan"
[ "$d2h" -le 4096 ] && ok || fail "device to host $d2h B per step is above 4 KiB"
[ "$d2h" -gt 0 ] && ok || fail "device to host is 0 B: the loss scalars are not counted"
finish
