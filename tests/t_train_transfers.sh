# t_train_transfers.sh — what a training step moves between host and device,
# as the backend counts it (dv2_backend.transfers; dv2-train -v prints the
# per-step figures).  Today the step computes its losses and teacher
# targets on the host, so the logits go down and their gradients come up
# every step; this test pins that the counters see the traffic (host to
# device at least the input images, device to host at least the student's
# DINO logits and their teacher targets).  When the losses move onto the
# backend its bound becomes device to host <= 4 KiB per step.
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
# input: 2 global crops of 16 px and 2 local of 8 px, 3 channels, B = 8
expect_eq "$inp" $(( 4 * 3 * (2 * 8 * 16 * 16 + 2 * 8 * 8 * 8) )) "input image bytes per step"
[ "$h2d" -ge "$inp" ] && ok || fail "host to device $h2d B is less than the input $inp B"
# student DINO logits of (2 + 2) x 8 crops and teacher targets of 2 x 8, K = 256
min=$(( 4 * 256 * (4 * 8 + 2 * 8) ))
[ "$d2h" -ge "$min" ] && ok || fail "device to host $d2h B is less than the logits ($min B)"
finish
