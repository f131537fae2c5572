#!/bin/sh
# t_weights_names.sh — metadata-less weight files under the names found in
# the wild load in dv2-embed and give the same features as the official
# names (dv2-weights(5), "Tensor names"): chunked blocks as the official
# training code saves them with block_chunks ("blocks.<chunk>.<N>."), a
# "module.backbone." prefix, and a training checkpoint's "teacher.backbone."
# names next to head tensors.  The files are written here with numpy.
. "$DV2_ROOT/tests/lib.sh"
"$PY" -c 'import numpy' 2>/dev/null || skip "/usr/bin/python3 without numpy"
pack_fmnist_t10k all.dv2s
dv2-pack --ls all.dv2s | awk 'NR % 2000 == 1' | cut -f1 > ids.txt
dv2-pack -q -o few.dv2s --select ids.txt all.dv2s || fail "select"

"$PY" - <<'PYEOF' || { fail "could not write the weight files"; finish; }
import json, struct
import numpy as np
rng = np.random.default_rng(0)
D, depth, p, grid = 64, 4, 7, 4
def r(*s): return (rng.standard_normal(s) * 0.2).astype("<f4")
top = {"cls_token": r(1, 1, D), "pos_embed": r(1, 1 + grid * grid, D), "patch_embed.proj.weight": r(D, 3, p, p),
       "patch_embed.proj.bias": r(D), "norm.weight": 1 + r(D), "norm.bias": r(D)}
block = [("norm1.weight", (D,)), ("norm1.bias", (D,)), ("attn.qkv.weight", (3 * D, D)), ("attn.qkv.bias", (3 * D,)),
         ("attn.proj.weight", (D, D)), ("attn.proj.bias", (D,)), ("ls1.gamma", (D,)), ("norm2.weight", (D,)),
         ("norm2.bias", (D,)), ("mlp.fc1.weight", (4 * D, D)), ("mlp.fc1.bias", (4 * D,)),
         ("mlp.fc2.weight", (D, 4 * D)), ("mlp.fc2.bias", (D,)), ("ls2.gamma", (D,))]
blocks = {(i, k): r(*s) for i in range(depth) for k, s in block}
def write(path, name_of, extra={}):
    h, data = {}, b""
    items = list(top.items()) + [(name_of(i, k), v) for (i, k), v in blocks.items()] + list(extra.items())
    for k, v in items:
        raw = v.tobytes()
        h[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    hb = json.dumps(h).encode()
    open(path, "wb").write(struct.pack("<Q", len(hb)) + hb + data)
write("plain.safetensors", lambda i, k: f"blocks.{i}.{k}")
# block_chunks = 2 over depth 4: chunk c holds blocks 2c, 2c+1 (official BlockChunk layout)
write("chunked.safetensors", lambda i, k: f"blocks.{i // 2}.{i}.{k}")
top = {"module.backbone." + k: v for k, v in top.items()}
write("module.safetensors", lambda i, k: f"module.backbone.blocks.{i // 2}.{i}.{k}")
top = {"teacher." + k[len("module."):]: v for k, v in top.items()}
write("teacher.safetensors", lambda i, k: f"teacher.backbone.blocks.{i}.{k}", {"teacher.dino_head.mlp.0.weight": r(16, D)})
PYEOF

for m in plain chunked module teacher; do
	expect_exit 0 dv2-embed -q -m $m.safetensors --size 28 --resize 28 -o $m.emb few.dv2s
done
# the same rows bit for bit (the 4096-byte header names the model file):
# the loader maps every form to the same tensors
tail -c +4097 plain.emb > plain.rows
for m in chunked module teacher; do
	tail -c +4097 $m.emb > $m.rows
	expect_same plain.rows $m.rows
done
[ -s plain.rows ] && ok || fail "no rows"
finish
