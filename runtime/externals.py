"""Addresses of the external functions generated code calls (BLAS), by symbol name.

BLAS comes from the scipy-openblas32 wheel: a declared dependency that ships an
optimized OpenBLAS with a stable CBLAS interface and a documented way to find it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os


@functools.lru_cache(maxsize=None)
def openblas() -> ctypes.CDLL:
    import scipy_openblas32
    path = os.path.join(scipy_openblas32.get_lib_dir(),
                        f"lib{scipy_openblas32.get_library()}.so")
    return ctypes.CDLL(path)


@functools.lru_cache(maxsize=None)
def libgomp():
    """GCC's OpenMP runtime, used by generated code to run loops on all cores."""
    path = ctypes.util.find_library("gomp")
    if path is None:
        raise RuntimeError("generated code needs libgomp (GCC's OpenMP runtime), which is "
                           "not installed; install it (Debian: libgomp1)")
    return ctypes.CDLL(path)


def addresses(names) -> dict:
    out = {}
    for name in names:
        lib = libgomp() if name.startswith(("GOMP_", "omp_")) else openblas()
        out[name] = ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
    return out


def blas_info() -> dict:
    """Which OpenBLAS kernel and thread count are in use (for benchmark reports)."""
    lib = openblas()
    lib.scipy_openblas_get_corename.restype = ctypes.c_char_p
    lib.scipy_openblas_get_num_threads.restype = ctypes.c_int
    return {"corename": lib.scipy_openblas_get_corename().decode(),
            "threads": lib.scipy_openblas_get_num_threads()}
