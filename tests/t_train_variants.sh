# t_train_variants.sh — the model variants of the official configs train and
# export: separate iBOT head with Sinkhorn-Knopp targets (vitl14/vitg14
# style; the checkpoint holds both heads of student and teacher), and
# registers + SwiGLU + chunked block names + antialiased pos-embed
# resampling (teacher.safetensors gets the official blocks.N. names and the
# architecture metadata, and dv2-embed reads it).
. "$DV2_ROOT/tests/lib.sh"
pack_fmnist_t10k data
micro_cfg v.cfg 'student.drop_path_rate = 0.2' 'train.batch_size_per_gpu = 8' \
	'train.OFFICIAL_EPOCH_LENGTH = 4' 'optim.epochs = 2'
expect_exit 0 dv2-train -c v.cfg --data data -o sep -j 1 ibot.separate_head=true train.centering=sinkhorn_knopp \
	ibot.head_n_prototypes=128 ibot.head_bottleneck_dim=16 evaluation.eval_period_iterations=3
# evaluation.eval_period_iterations: the teacher after iterations 3 and 6 of 8
# (eval/training_2, training_5, as the official trainer names them), and no
# export between
expect_eq "$(ls sep/eval | tr '\n' ' ')" "training_2 training_5 " "teacher exports under sep/eval"
[ -s sep/eval/training_5/teacher.safetensors ] && ok || fail "no eval/training_5/teacher.safetensors"
cmp -s sep/eval/training_2/teacher.safetensors sep/eval/training_5/teacher.safetensors &&
	fail "the teacher exports after iterations 3 and 6 are the same file" || ok
expect_exit 0 dv2-train -c v.cfg --data data -o reg -j 1 student.num_register_tokens=4 student.interpolate_offset=0 \
	student.interpolate_antialias=true student.ffn_layer=swiglufused student.block_chunks=2
$PY - <<'PY' >names.txt
import json, struct
def header(p):
    d = open(p, "rb").read(); n = struct.unpack("<Q", d[:8])[0]; return json.loads(d[8:8 + n])
h = header("sep/ckpt-000000000008.safetensors")
print("sep", sorted(k for k in h if k.endswith("ibot_head.last_layer.weight_v")), h["student.ibot_head.last_layer.weight_v"]["shape"])
h = header("reg/teacher.safetensors")
print("reg", h["__metadata__"]["ffn_layer"], h["__metadata__"]["num_register_tokens"], h["__metadata__"]["block_chunks"],
      "blocks.1.mlp.w12.weight" in h, "register_tokens" in h)
h = header("reg/ckpt-000000000008.safetensors")
print("chunked", "student.backbone.blocks.1.1.mlp.w12.weight" in h)
PY
cat names.txt >&2
expect_grep "sep \['student.ibot_head.last_layer.weight_v', 'teacher.ibot_head.last_layer.weight_v'\] \[128, 16\]" names.txt
expect_grep "reg swiglufused 4 0 True True" names.txt
expect_grep "chunked True" names.txt
dv2-pack -q --select "$(dv2-pack --ls data | head -n 5 | cut -f1 > five.ids; echo five.ids)" -o five data
expect_exit 0 dv2-embed -m reg/teacher.safetensors --size 16 --resize 16 -o five.emb five
finish
