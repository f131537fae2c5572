#!/bin/sh
# t_convert_weights.sh — scripts/convert-weights on small random state dicts
# made here (no downloads): an official torch-hub dict (MLP as .pth, and
# SwiGLU with 4 registers as .safetensors), a chunked training checkpoint
# with heads, Hugging Face
# checkpoints (pytorch_model.bin in a directory with config.json, and a
# model.safetensors with F16 tensors and "dinov2." names).  The outputs are
# read back by a json+numpy reader written here: names, values (bitwise),
# q/k/v merged in the right order, architecture metadata.  Also the exit
# codes for usage and data errors.
. "$DV2_ROOT/tests/lib.sh"
CONV="$DV2_ROOT/scripts/convert-weights"
$PY -c 'import torch' 2>/dev/null || skip "/usr/bin/python3 without torch"

cat > make.py <<'PYEOF'
import json, struct, sys
import numpy as np
import torch
g = torch.Generator().manual_seed(0)
def r(*s): return torch.randn(*s, generator=g)
def official(D=64, depth=3, p=7, grid=4, swiglu=False, R=0):
    sd = {"cls_token": r(1, 1, D), "mask_token": r(1, D), "pos_embed": r(1, 1 + grid * grid, D),
          "patch_embed.proj.weight": r(D, 3, p, p), "patch_embed.proj.bias": r(D), "norm.weight": r(D), "norm.bias": r(D)}
    if R: sd["register_tokens"] = r(1, R, D)
    h = 8 * ((int(4 * D * 2 / 3) + 7) // 8) if swiglu else 4 * D
    for i in range(depth):
        b = f"blocks.{i}."
        sd.update({b + "norm1.weight": r(D), b + "norm1.bias": r(D), b + "attn.qkv.weight": r(3 * D, D),
                   b + "attn.qkv.bias": r(3 * D), b + "attn.proj.weight": r(D, D), b + "attn.proj.bias": r(D),
                   b + "ls1.gamma": r(D), b + "norm2.weight": r(D), b + "norm2.bias": r(D), b + "ls2.gamma": r(D)})
        if swiglu:
            sd.update({b + "mlp.w12.weight": r(2 * h, D), b + "mlp.w12.bias": r(2 * h), b + "mlp.w3.weight": r(D, h), b + "mlp.w3.bias": r(D)})
        else:
            sd.update({b + "mlp.fc1.weight": r(h, D), b + "mlp.fc1.bias": r(h), b + "mlp.fc2.weight": r(D, h), b + "mlp.fc2.bias": r(D)})
    return sd
def to_hf(sd, prefix=""):
    out = {}
    m = {"cls_token": "embeddings.cls_token", "mask_token": "embeddings.mask_token", "pos_embed": "embeddings.position_embeddings",
         "register_tokens": "embeddings.register_tokens", "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
         "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias", "norm.weight": "layernorm.weight", "norm.bias": "layernorm.bias"}
    lm = {"norm1": "norm1", "norm2": "norm2", "attn.proj": "attention.output.dense", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
          "mlp.w12": "mlp.weights_in", "mlp.w3": "mlp.weights_out"}
    for k, v in sd.items():
        if k in m:
            out[prefix + m[k]] = v; continue
        _, n, rest = k.split(".", 2)
        L = f"{prefix}encoder.layer.{n}."
        if rest.startswith("attn.qkv."):
            kind = rest.split(".")[-1]
            q, kk, vv = v.chunk(3, 0)
            out[L + "attention.attention.query." + kind] = q
            out[L + "attention.attention.key." + kind] = kk
            out[L + "attention.attention.value." + kind] = vv
        elif rest == "ls1.gamma": out[L + "layer_scale1.lambda1"] = v
        elif rest == "ls2.gamma": out[L + "layer_scale2.lambda1"] = v
        else:
            mod, kind = rest.rsplit(".", 1)
            out[L + lm[mod] + "." + kind] = v
    return out
def write_st(path, sd, f16=()):
    h, data = {"__metadata__": {"format": "pt"}}, b""
    for k, v in sd.items():
        a = v.numpy().astype(np.float16 if k in f16 else np.float32)
        raw = a.tobytes()
        h[k] = {"dtype": "F16" if k in f16 else "F32", "shape": list(a.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    hb = json.dumps(h).encode()
    open(path, "wb").write(struct.pack("<Q", len(hb)) + hb + data)

a = official()
torch.save(a, "hub.pth")
b = official(D=128, depth=2, swiglu=True, R=4)
write_st("hub_reg.safetensors", b)
np.savez("ref.npz", **{"a/" + k: v.numpy() for k, v in a.items()}, **{"b/" + k: v.numpy() for k, v in b.items()})
open("hub.st", "wb").write(b"already here")
# training checkpoint: 3 blocks in 2 chunks, heads
t = {}
for k, v in a.items():
    if k.startswith("blocks."):
        n = int(k.split(".")[1]); k = k.replace(f"blocks.{n}.", f"blocks.{0 if n < 2 else 1}.{n}.", 1)
    t["backbone." + k] = v
t["dino_head.mlp.0.weight"] = r(16, 64)
t["dino_head.last_layer.weight_g"] = r(8, 1)
torch.save({"teacher": t}, "train.pth")
torch.save({"model": {**{"teacher." + k: v for k, v in t.items()}, **{"student." + k: v * 2 for k, v in t.items()}}}, "fsdp.pth")
import os
os.makedirs("hf", exist_ok=True)
torch.save(to_hf(a), "hf/pytorch_model.bin")
json.dump({"model_type": "dinov2", "num_attention_heads": 2, "hidden_size": 64}, open("hf/config.json", "w"))
write_st("hf_reg.safetensors", to_hf(b, "dinov2."), f16={"dinov2.embeddings.cls_token", "dinov2.encoder.layer.1.mlp.weights_in.weight"})
write_st("unknown.safetensors", {"cls_token": a["cls_token"], "weird.thing": r(3)})
# shapes that disagree with the architecture the file otherwise gives
bad = dict(a); bad["blocks.1.attn.proj.weight"] = r(64, 32); write_st("badshape.safetensors", bad)
bad = dict(a); del bad["blocks.2.norm2.bias"]; write_st("missing.safetensors", bad)
bad = dict(a); bad["blocks.1.mlp.fc1.weight"] = r(128, 64); bad["blocks.1.mlp.fc1.bias"] = r(128); write_st("width.safetensors", bad)
PYEOF

cat > check.py <<'PYEOF'
import json, struct, sys
import numpy as np
def read(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; assert n % 8 == 0
    h = json.loads(b[8:8 + n]); d = b[8 + n:]; out = {}
    for k, v in h.items():
        if k == "__metadata__": continue
        assert v["dtype"] == "F32"; s, e = v["data_offsets"]
        out[k] = np.frombuffer(d[s:e], "<f4").reshape(v["shape"])
    return h["__metadata__"], out
def same(got, want, what):
    assert sorted(got) == sorted(want), (what, sorted(set(got) ^ set(want)))
    for k in want:
        assert got[k].shape == want[k].shape, (what, k, got[k].shape, want[k].shape)
        assert np.array_equal(got[k], want[k]), (what, k)
z = np.load("ref.npz")
a = {k[2:]: z[k] for k in z.files if k.startswith("a/")}
b = {k[2:]: z[k] for k in z.files if k.startswith("b/")}
m, t = read("hub.st"); same(t, a, "hub")
want = dict(arch="custom", embed_dim="64", depth="3", num_heads="1", patch_size="7", img_size="28", in_chans="3",
            ffn_layer="mlp", ffn_hidden="256", num_register_tokens="0", interpolate_offset="0.1", interpolate_antialias="0",
            qkv_bias="1", proj_bias="1", ffn_bias="1", block_chunks="0", format="dv2")
for k, v in want.items(): assert m[k] == v, (k, m[k], v)
m, t = read("reg.st"); same(t, b, "reg")
assert m["ffn_layer"] == "swiglufused" and m["ffn_hidden"] == "344" and m["num_register_tokens"] == "4"
assert m["interpolate_offset"] == "0.0" and m["interpolate_antialias"] == "1" and m["num_heads"] == "2"
m, t = read("train.st")
assert t["dino_head.mlp.0.weight"].shape == (16, 64) and "dino_head.last_layer.weight_g" in t
same({k: v for k, v in t.items() if not k.startswith("dino_head.")}, a, "train"); assert m["depth"] == "3"
m, t = read("student.st"); same(t, {k: v * 2 for k, v in a.items()}, "student (heads dropped)")
m, t = read("hf.st"); same(t, a, "hf"); assert m["num_heads"] == "2", m["num_heads"]
m, t = read("hf_reg.st")
for k in ("cls_token", "blocks.1.mlp.w12.weight"): b[k] = b[k].astype(np.float16).astype(np.float32)
same(t, b, "hf_reg"); assert m["num_register_tokens"] == "4" and m["arch"] == "custom"
print("ok")
PYEOF

$PY make.py || { fail "could not make the test checkpoints"; finish; }

expect_exit 1 $PY "$CONV" hub.pth hub.st
expect_grep "exists" err.txt
expect_exit 0 $PY "$CONV" -f hub.pth hub.st
expect_grep "tensors, custom D=64 depth=3" err.txt
expect_exit 0 $PY "$CONV" -q hub_reg.safetensors reg.st
expect_empty err.txt
expect_exit 0 $PY "$CONV" --heads train.pth train.st
expect_grep "training checkpoint (teacher)" err.txt
expect_exit 0 $PY "$CONV" --student fsdp.pth student.st
expect_exit 0 $PY "$CONV" hf hf.st
expect_grep "Hugging Face" err.txt
expect_exit 0 $PY "$CONV" hf_reg.safetensors hf_reg.st
expect_exit 0 $PY check.py
expect_grep "^ok" out.txt

# errors: data (1) and usage (2)
expect_exit 1 $PY "$CONV" missing.pth x.st
expect_grep "missing.pth" err.txt
expect_exit 1 $PY "$CONV" unknown.safetensors x.st
expect_grep "unrecognized tensor names" err.txt
printf 'not a checkpoint at all' > junk.pth
expect_exit 1 $PY "$CONV" junk.pth x.st
expect_grep "neither a PyTorch checkpoint nor a safetensors" err.txt
head -c 100 hub.st > cut.safetensors
expect_exit 1 $PY "$CONV" cut.safetensors x.st
expect_exit 2 $PY "$CONV" --bogus hub.pth x.st
expect_exit 2 $PY "$CONV" hub.pth
expect_exit 2 $PY "$CONV" --num-heads 0 hub.pth x.st
expect_exit 0 $PY "$CONV" --help
expect_grep "Usage" out.txt
for f in badshape width; do
	expect_exit 1 $PY "$CONV" $f.safetensors x.st
	expect_grep "^convert-weights: error: $f.safetensors: tensor 'blocks.1.*has shape .* needs" err.txt
done
expect_exit 1 $PY "$CONV" missing.safetensors x.st
expect_grep "tensor 'blocks.2.norm2.bias' is missing" err.txt

# the CLI contract of the other programs: -V, grouped short flags, '-' for
# stdin and stdout, a closed pipe ends it silently, one-line errors
expect_exit 0 $PY "$CONV" -V
want=$(sed -n 's/^#define DV2_VERSION "\(.*\)"/\1/p' "$DV2_ROOT/lib/core/dv2.h")
expect_grep "^convert-weights $want " out.txt
expect_exit 0 $PY "$CONV" -fq hub.pth hub.st
expect_empty err.txt
expect_exit 2 $PY "$CONV" -fx hub.pth x.st
expect_grep "unknown option '-x'" err.txt
expect_exit 0 sh -c "$PY '$CONV' -q - stdin.st < hub.pth"
expect_exit 0 sh -c "$PY '$CONV' -q - - < hub_reg.safetensors > piped.st"
expect_exit 0 sh -c "$PY '$CONV' -q piped.st again.st"
mkdir -p named && cp hub.pth named/stdin  # the metadata names the source: "stdin"
$PY "$CONV" -q named/stdin stdin2.st 2>/dev/null
expect_same stdin.st stdin2.st
# a reader that goes away: no traceback, no message
$PY "$CONV" hub.pth - 2>pipe.err | head -c 10 > /dev/null
expect_empty pipe.err
$PY "$CONV" --help 2>pipe.err | head -n 1 > /dev/null
expect_empty pipe.err
expect_exit 1 sh -c "printf 'garbage!!' | $PY '$CONV' - x.st"
expect_grep "^convert-weights: error: stdin: neither" err.txt
mkdir -p hfbad && printf '{not json' > hfbad/config.json && cp hf/pytorch_model.bin hfbad/
expect_exit 1 $PY "$CONV" hfbad x.st
expect_grep "config.json: not JSON" err.txt
$PY -c 'import torch; torch.save({"cls_token": torch.tensor(1.0), "blocks.0.norm1.weight": torch.zeros(3)}, "scalar.pth")'
expect_exit 1 $PY "$CONV" scalar.pth x.st
expect_grep "^convert-weights: error: scalar.pth: " err.txt
expect_nogrep "Traceback" err.txt
for f in err.txt pipe.err; do
	[ "$(wc -l < $f)" -le 1 ] && ok || fail "$f: more than one line"
done
[ -e x.st ] && fail "x.st written by a failing run" || ok
ls -a | grep -q '\.tmp\.' && fail "temporary file left behind" || ok
finish
