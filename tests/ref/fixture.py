"""The fixture format read by tests/ref/fixture.h: magic "DV2REF01", a u32
count, then per array its name (u32 length + bytes, under 64), its rank and
dimensions (u32 each) and its values as little-endian float32."""
import struct

import numpy as np


def write_fixture(path, arrays):
    """arrays: a list of (name, array-like) pairs, written in that order."""
    with open(path, "wb") as f:
        f.write(b"DV2REF01")
        f.write(struct.pack("<I", len(arrays)))
        for name, a in arrays:
            a = np.ascontiguousarray(np.asarray(a, dtype=np.float32))
            nb = name.encode()
            assert len(nb) < 64, name
            f.write(struct.pack("<I", len(nb)) + nb)
            f.write(struct.pack("<I", a.ndim))
            for d in a.shape:
                f.write(struct.pack("<I", d))
            f.write(a.astype("<f4").tobytes())
