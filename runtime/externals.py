"""Addresses of the external functions generated code calls (BLAS), by symbol name.

BLAS comes from the scipy-openblas32 wheel: a declared dependency that ships an
optimized OpenBLAS with a stable CBLAS interface and a documented way to find it.
"""
from __future__ import annotations

import ctypes
import functools
import os


@functools.lru_cache(maxsize=None)
def openblas() -> ctypes.CDLL:
    import scipy_openblas32
    path = os.path.join(scipy_openblas32.get_lib_dir(),
                        f"lib{scipy_openblas32.get_library()}.so")
    return ctypes.CDLL(path)


def addresses(names) -> dict:
    out = {}
    for name in names:
        fn = getattr(openblas(), name)
        out[name] = ctypes.cast(fn, ctypes.c_void_p).value
    return out


def blas_info() -> dict:
    """Which OpenBLAS kernel and thread count are in use (for benchmark reports)."""
    lib = openblas()
    lib.scipy_openblas_get_corename.restype = ctypes.c_char_p
    lib.scipy_openblas_get_num_threads.restype = ctypes.c_int
    return {"corename": lib.scipy_openblas_get_corename().decode(),
            "threads": lib.scipy_openblas_get_num_threads()}
