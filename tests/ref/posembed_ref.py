#!/usr/bin/python3
# posembed_ref.py — PyTorch oracle for tests/test_posembed.c: the positional
# embedding resampling of DINOv2 (spec §2.4) through F.interpolate, mode
# "bicubic", align_corners=False, in the two ways the model calls it
# (scale_factor = (n + offset)/M without antialias; size with antialias) and
# the two other combinations, on awkward grid sizes; gradients by autograd.
# tests/test_posembed.c runs it at test time (the fixture is ~400 KB, too
# large to keep in the repository) and reads the file it writes.
#
# By hand:  /usr/bin/python3 tests/ref/posembed_ref.py posembed.bin
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

from fixture import write_fixture


def resample(pos, M, oh, ow, offset, antialias):
    D = pos.shape[-1]
    cls, grid = pos[:1], pos[1:]
    g = grid.reshape(1, M, M, D).permute(0, 3, 1, 2)
    if offset:
        sy = float(oh + offset) / M
        sx = float(ow + offset) / M
        r = F.interpolate(g, mode="bicubic", antialias=antialias, scale_factor=(sy, sx))
    else:
        r = F.interpolate(g, mode="bicubic", antialias=antialias, size=(oh, ow))
    assert tuple(r.shape[-2:]) == (oh, ow), (r.shape, oh, ow)
    r = r.permute(0, 2, 3, 1).reshape(-1, D)
    return torch.cat([cls, r], 0)


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(5)
    D = 2
    sizes = [(16, 7, 7), (16, 37, 37), (37, 16, 16), (5, 3, 3), (7, 11, 11), (16, 7, 11), (16, 12, 5),
             (37, 16, 23), (4, 1, 1), (3, 8, 2)]
    modes = [(0.1, False), (0.0, True), (0.0, False), (0.1, True)]
    arrays = []
    n = 0
    for (M, oh, ow) in sizes:
        for (offset, aa) in modes:
            if offset and math.floor(M * ((oh + offset) / M)) != oh:
                continue
            pos = torch.tensor(rng.normal(0, 1, (1 + M * M, D)).astype(np.float32), requires_grad=True)
            o = resample(pos, M, oh, ow, offset, aa)
            dout = torch.from_numpy(rng.normal(0, 1, tuple(o.shape)).astype(np.float32))
            (o * dout).sum().backward()
            arrays += [(f"c{n}_params", [M, oh, ow, offset, 1.0 if aa else 0.0, D]), (f"c{n}_pos", pos.detach()),
                       (f"c{n}_out", o.detach()), (f"c{n}_dout", dout), (f"c{n}_dpos", pos.grad)]
            n += 1
    arrays.insert(0, ("ncases", [n]))
    write_fixture(out, arrays)


if __name__ == "__main__":
    main()
