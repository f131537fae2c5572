# t_train_learn.sh — dv2-train learns: a tiny ViT (D 32, 2 blocks) trained
# for 160 iterations of 16 images on 8000 Fashion-MNIST test images gives a
# teacher whose k-NN top-1 (k = 20, dv2-embed + dv2-probe, 2000 held-out
# images) beats the same architecture at its random initialization by at
# least 20 points and reaches at least 30%.
# Honest scope: with the official LayerScale init (1e-5) the random-init
# class tokens are nearly identical, so that baseline is near chance (about
# 8–10%); the trained teacher reached about 41% when this bound was set.  It
# stays below the k-NN of raw pixels (about 81%): the proof of learning at
# a larger budget is docs/RESULTS.md (configs/fmnist_tiny.cfg).
. "$DV2_ROOT/tests/lib.sh"
pack_fmnist_t10k all
dv2-pack --ls all | cut -f1 > ids.txt
head -n 8000 ids.txt > tr.ids
tail -n 2000 ids.txt > te.ids
dv2-pack -q --select tr.ids -o tr all && dv2-pack -q --select te.ids -o te all || { fail "split"; finish; }
micro_cfg t.cfg 'student.drop_path_rate = 0' 'dino.head_hidden_dim = 128' \
	'train.batch_size_per_gpu = 16' 'train.OFFICIAL_EPOCH_LENGTH = 20' 'train.num_workers = 1' \
	'train.checkpoint_period = 0' 'teacher.momentum_teacher = 0.99' \
	'teacher.warmup_teacher_temp = 0.04' 'teacher.teacher_temp = 0.07' \
	'teacher.warmup_teacher_temp_epochs = 3' 'optim.epochs = 8' 'optim.lr = 1e-3' \
	'optim.warmup_epochs = 1' 'optim.layerwise_decay = 1.0' 'crops.global_crops_scale = [0.4, 1.0]' \
	'crops.local_crops_scale = [0.1, 0.4]' 'crops.global_crops_size = 28' 'crops.local_crops_size = 12'
expect_exit 0 dv2-train -c t.cfg --data tr -o trained -j 2
expect_exit 0 dv2-train -c t.cfg --data tr -o random -j 2 --max-iters 1
a=$(knn20 trained/teacher.safetensors tr te); r=$(knn20 random/teacher.safetensors tr te)
echo "k-NN top-1: trained $a, random init $r" >&2
if [ -n "$a" ] && [ -n "$r" ] && awk -v a="$a" -v r="$r" 'BEGIN { exit !(a >= r + 20 && a >= 30) }'; then
	ok
else
	fail "trained teacher k-NN $a vs random init $r (want >= random + 20 and >= 30)"
fi
# The DINO term must learn, not only the backbone: with the official init
# (LayerScale 1e-5) and warm-up of the teacher temperature this recipe ends
# with dino_local at its uniform value, (2*2/6) ln K (docs/RESULTS.md, "Keeping
# the DINO term alive"); with LayerScale 1.0 and a teacher temperature of 0.04
# throughout (configs/fmnist_sk256.cfg's changes) the teacher's targets differ
# between images and the student's local crops match them better than
# uniform.  A change that turns the image-level objective off (uniform
# targets, a DINO weight of 0, a head that does not learn) ends at or above
# uniform and fails here.
expect_exit 0 dv2-train -c t.cfg --data tr -o alive -j 2 student.layerscale=1.0 teacher.teacher_temp=0.04
set -- $(metric_mean alive/metrics.jsonl dino_local 20)
u=$(awk 'BEGIN { printf "%.4f", (2 * 2 / 6) * log(256) }')
echo "dino_local, mean of the last ${2:-0} iterations: ${1:-none} (uniform $u)" >&2
[ "${2:-0}" = 20 ] && awk -v m="$1" -v u="$u" 'BEGIN { exit !(m <= u - 0.05) }' && ok ||
	fail "dino_local did not fall 0.05 below its uniform value (2*2/6) ln 256 by the end"
finish
