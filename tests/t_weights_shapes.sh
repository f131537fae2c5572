#!/bin/sh
# t_weights_shapes.sh — the one weight loader (dv2_weights_load) behind
# dv2-embed -m, dv2-train student.pretrained_weights and the teacher of
# dv2-distill applies the same shape rules everywhere: a tensor of another
# shape is exit 1 naming the tensor and both shapes, before anything is
# written; a missing mask_token is allowed, a mask_token stored as [D] loads
# like [1, D], any other missing tensor is exit 1 naming it.  The files are
# a micro dv2-train run's exports, rewritten here with Python.
. "$DV2_ROOT/tests/lib.sh"
pack_fmnist_t10k data
export OMP_NUM_THREADS=1
micro_cfg t.cfg 'train.batch_size_per_gpu = 8' 'train.OFFICIAL_EPOCH_LENGTH = 2' 'optim.epochs = 1' \
	'train.num_workers = 1' 'optim.warmup_epochs = 0' 'teacher.warmup_teacher_temp_epochs = 0'
expect_exit 0 dv2-train -c t.cfg --data data -o run -j 1
[ -s run/teacher.safetensors ] && [ -s run/ckpt-000000000002.safetensors ] || { fail "no exports"; finish; }

# edit SRC DST [drop=NAME] [flat=NAME] [cut=NAME]: rewrites a safetensors file;
# drop leaves a tensor out, flat stores it without its leading 1s, cut
# drops the last row of its first dimension
edit() {
	$PY - "$@" <<'PYEOF'
import json, struct, sys
src, dst, ops = sys.argv[1], sys.argv[2], dict(a.split("=", 1) for a in sys.argv[3:])
b = open(src, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
meta = h.pop("__metadata__", None)
out, data = {}, b""
for k, v in h.items():
    raw = b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]
    shape = list(v["shape"])
    if k == ops.get("drop"):
        continue
    if k == ops.get("flat"):
        while len(shape) > 1 and shape[0] == 1:
            shape = shape[1:]
    if k == ops.get("cut"):
        row = len(raw) // shape[0]
        shape[0] -= 1
        raw = raw[:len(raw) - row]
    out[k] = {"dtype": v["dtype"], "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
    data += raw
if meta is not None:
    out["__metadata__"] = meta
hb = json.dumps(out).encode()
hb += b" " * (-len(hb) % 8)
open(dst, "wb").write(struct.pack("<Q", len(hb)) + hb + data)
PYEOF
	[ $? = 0 ] || fail "edit $*"
}

W=run/teacher.safetensors
edit $W cut.safetensors cut=blocks.1.attn.qkv.weight
edit $W nomask.safetensors drop=mask_token
edit $W flatmask.safetensors flat=mask_token
edit $W noproj.safetensors drop=blocks.0.attn.proj.bias

# dv2-embed -m
expect_exit 0 dv2-embed -q -m $W --size 16 -o ref.emb data
expect_exit 1 dv2-embed -q -m cut.safetensors --size 16 -o cut.emb data
expect_grep "cut.safetensors: tensor blocks.1.attn.qkv.weight is (95, 32), the architecture (custom) needs (96, 32)" err.txt
[ -e cut.emb ] && fail "cut.emb written despite the mismatch" || ok
expect_exit 1 dv2-embed -q -m noproj.safetensors --size 16 -o noproj.emb data
expect_grep "noproj.safetensors: tensor blocks.0.attn.proj.bias is missing, the architecture (custom) needs it (32)" err.txt
for m in nomask flatmask; do
	expect_exit 0 dv2-embed -q -m $m.safetensors --size 16 -o $m.emb data
	tail -c +4097 ref.emb > ref.rows
	tail -c +4097 $m.emb > $m.rows
	expect_same ref.rows $m.rows
done

# dv2-train student.pretrained_weights
expect_exit 1 dv2-train -c t.cfg --data data -o init_cut -j 1 student.pretrained_weights=cut.safetensors
expect_grep "cut.safetensors: tensor blocks.1.attn.qkv.weight is (95, 32), the config needs (96, 32)" err.txt
expect_exit 1 dv2-train -c t.cfg --data data -o init_noproj -j 1 student.pretrained_weights=noproj.safetensors
expect_grep "tensor blocks.0.attn.proj.bias is missing, the config needs it (32)" err.txt
for m in nomask flatmask; do
	expect_exit 0 dv2-train -c t.cfg --data data -o init_$m -j 1 student.pretrained_weights=$m.safetensors
done

# the teacher of dv2-distill: a checkpoint file with a cut backbone tensor
micro_cfg s.cfg 'student.embed_dim = 16' 'student.num_heads = 1' 'train.batch_size_per_gpu = 8' \
	'train.OFFICIAL_EPOCH_LENGTH = 2' 'optim.epochs = 1' 'train.num_workers = 1' 'optim.warmup_epochs = 0' \
	'teacher.warmup_teacher_temp_epochs = 0'
C=run/ckpt-000000000002.safetensors
expect_exit 0 dv2-distill -c s.cfg --teacher $C --data data -o dist_ok -j 1
edit $C tcut.safetensors cut=teacher.backbone.blocks.1.attn.qkv.weight
expect_exit 1 dv2-distill -c s.cfg --teacher tcut.safetensors --data data -o dist_cut -j 1
expect_grep "teacher: .*tcut.safetensors: tensor teacher.backbone.blocks.1.attn.qkv.weight is (95, 32), the config needs (96, 32)" err.txt
[ -e dist_cut ] && fail "dist_cut created despite the mismatch" || ok
edit $C tnomask.safetensors drop=teacher.backbone.mask_token
expect_exit 0 dv2-distill -c s.cfg --teacher tnomask.safetensors --data data -o dist_nomask -j 1
finish
