#!/usr/bin/python3
"""matrix_np.py — an independent numpy side of the embedding matrix format
(man/dv2-matrix.5), used by tests/test_matrix.c.

  matrix_np.py check FILE N D DTYPE   read FILE with the one-liner of the man
                                      page and compare with the generator
  matrix_np.py write FILE N D         write an f32 matrix from the generator
                                      with plain numpy (no dv2 code)
  matrix_np.py npy BASE.npy N D       check the .npy export (np.load)

The generator must match gen_row() in tests/test_matrix.c: values are
multiples of 1/8 so they are exact in f32 and f16 alike.  Exit 0 when all
is well, 1 with a message otherwise."""
import sys
import numpy as np


def gen(n, d):
    i = np.arange(n, dtype=np.int64)[:, None]
    j = np.arange(d, dtype=np.int64)[None, :]
    vec = (((i * 31 + j * 17) % 1000).astype(np.float32) / 8.0 - 60.0).astype(np.float32)
    ids = (np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ np.uint64(0xFFFF000000000000)
    labels = (np.arange(n) % 7 - 1).astype(np.int32)
    return ids, labels, vec


def fail(msg):
    print("matrix_np.py: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    mode, path, n, d = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    ids, labels, vec = gen(n, d)
    if mode == "check":
        F = path
        # The one-liner of man/dv2-matrix.5 (h[4] = dtype, h[5] = dim):
        h = np.fromfile(F, '<u4', 6); m = np.fromfile(F, [('id', '<u8'), ('label', '<i4'), ('vec', '<f4' if h[4] == 1 else '<f2', (h[5],))], offset=4096)
        want_dtype = int(sys.argv[5])
        if h[4] != want_dtype or h[5] != d:
            fail("header dtype/dim %d/%d, expected %d/%d" % (h[4], h[5], want_dtype, d))
        if len(m) != n:
            fail("%d rows, expected %d" % (len(m), n))
        if not np.array_equal(m['id'], ids):
            fail("ids differ")
        if not np.array_equal(m['label'], labels):
            fail("labels differ")
        if not np.array_equal(m['vec'].astype(np.float32), vec):
            fail("vectors differ")
        hdr = open(F, 'rb').read(4096)
        if hdr[:8] != b'DV2MATRX':
            fail("magic")
        rows = int.from_bytes(hdr[32:40], 'little')
        if rows != n:
            fail("row count %d in header, expected %d" % (rows, n))
    elif mode == "write":
        hdr = bytearray(4096)
        hdr[0:8] = b'DV2MATRX'
        hdr[8:28] = np.array([1, 4096, 1, d, 12 + 4 * d], '<u4').tobytes()
        hdr[32:40] = (0xFFFFFFFFFFFFFFFF).to_bytes(8, 'little')
        txt = b'numpy-writer'
        hdr[256:256 + len(txt)] = txt
        rows = np.zeros(n, [('id', '<u8'), ('label', '<i4'), ('vec', '<f4', (d,))])
        rows['id'], rows['label'], rows['vec'] = ids, labels, vec
        with open(path, 'wb') as f:
            f.write(bytes(hdr))
            f.write(rows.tobytes())
    elif mode == "npy":
        base = path[:-4] if path.endswith('.npy') else path
        v = np.load(path)
        i = np.load(base + '.ids.npy')
        lab = np.load(base + '.labels.npy')
        if v.dtype != np.float32 or v.shape != (n, d) or not np.array_equal(v, vec):
            fail("npy vectors: %s %s" % (v.dtype, v.shape))
        if i.dtype != np.uint64 or not np.array_equal(i, ids):
            fail("npy ids")
        if lab.dtype != np.int32 or not np.array_equal(lab, labels):
            fail("npy labels")
    else:
        fail("unknown mode " + mode)


if __name__ == "__main__":
    main()
