"""teacher_heads.py — the frozen-teacher file of a dv2-train run, for
dv2-distill --teacher: the EMA teacher's backbone under the official names
and its heads as dino_head.* (and ibot_head.* with a separate iBOT head),
taken from a checkpoint, with the architecture metadata of the run's
teacher.safetensors export.  Nothing is changed: every tensor is copied
byte for byte.

    /usr/bin/python3 tests/ref/teacher_heads.py RUN/ckpt-N.safetensors RUN/teacher.safetensors OUT

Used to make tests/data/fmnist_sk2k_teacher.safetensors (see
tests/t_distill_claim.sh for the command that trains the run).
"""
import json
import os
import struct
import sys


def read_header(f):
    n = struct.unpack("<Q", f.read(8))[0]
    return json.loads(f.read(n)), 8 + n


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    ckpt, export, out = sys.argv[1:]
    with open(export, "rb") as f:
        meta = dict(read_header(f)[0]["__metadata__"])
    meta["source"] = "dv2-train teacher with heads (%s)" % os.path.basename(ckpt)
    with open(ckpt, "rb") as f:
        h, base = read_header(f)
        cmeta = h.pop("__metadata__", {})
        meta["step"] = cmeta.get("step", "")
        names = sorted(k for k in h if k.startswith("teacher."))
        blobs, hdr, off = [], {"__metadata__": meta}, 0
        for k in names:
            a, b = h[k]["data_offsets"]
            f.seek(base + a)
            blob = f.read(b - a)
            hdr[k[len("teacher."):]] = {"dtype": h[k]["dtype"], "shape": h[k]["shape"], "data_offsets": [off, off + len(blob)]}
            blobs.append(blob)
            off += len(blob)
    js = json.dumps(hdr, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 8)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
