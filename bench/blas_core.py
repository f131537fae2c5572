"""Prints which BLAS kernels a baseline process runs: imports torch (and
numpy), then asks every OpenBLAS library mapped into this process for its
core name, so a benchmark can show that both sides run the same kernels;
then the instruction set of PyTorch's own vector kernels."""
import ctypes
import sys

try:
    import numpy  # noqa: F401
    import torch  # noqa: F401
except ImportError as e:
    print(f"baseline blas: cannot import {e.name}")
    sys.exit(0)

seen = []
with open("/proc/self/maps") as f:
    for line in f:
        path = line.split()[-1] if len(line.split()) >= 6 else ""
        if "openblas" in path.lower() and path not in seen:
            seen.append(path)
for path in seen:
    lib = ctypes.CDLL(path)
    try:
        lib.openblas_get_corename.restype = ctypes.c_char_p
        core = lib.openblas_get_corename().decode()
    except AttributeError:
        core = "?"
    print(f"baseline blas: {path}: {core} kernels")
if not seen:
    print("baseline blas: no OpenBLAS mapped (torch uses its own kernels)")
# PyTorch's own vectorised kernels (elementwise ops, softmax): the
# instruction set it dispatches to (ATEN_CPU_CAPABILITY overrides it)
cap = [ln.split(":", 1)[1].strip() for ln in torch.__config__.show().splitlines()
       if "CPU capability usage" in ln]
print(f"baseline vector kernels: {cap[0] if cap else '?'}")
