"""Addresses of the external functions generated code calls (BLAS), by symbol name.

BLAS comes from the scipy-openblas32 wheel: a declared dependency that ships an
optimized OpenBLAS with a stable CBLAS interface and a documented way to find it.
"""
from __future__ import annotations

import ctypes
import functools
import os


@functools.lru_cache(maxsize=None)
def openblas_path() -> str:
    # The wheel keeps its library in lib/ next to its __init__ (what get_lib_dir()
    # returns). Finding the package without importing it saves the import, which
    # reads the package metadata (milliseconds, on every warm sg.function).
    import importlib.util
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is not None and spec.submodule_search_locations:
        for d in spec.submodule_search_locations:
            path = os.path.join(d, "lib", "libscipy_openblas.so")
            if os.path.exists(path):
                return path
    import scipy_openblas32
    return os.path.join(scipy_openblas32.get_lib_dir(), f"lib{scipy_openblas32.get_library()}.so")


@functools.lru_cache(maxsize=None)
def openblas() -> ctypes.CDLL:
    return ctypes.CDLL(openblas_path())


@functools.lru_cache(maxsize=None)
def libgomp_name() -> str:
    import ctypes.util  # runs a subprocess: only when parallel code needs it
    path = ctypes.util.find_library("gomp")
    if path is None:
        raise RuntimeError("generated code needs libgomp (GCC's OpenMP runtime), which is "
                           "not installed; install it (Debian: libgomp1)")
    return path


@functools.lru_cache(maxsize=None)
def libgomp():
    """GCC's OpenMP runtime, used by generated code to run loops on all cores."""
    return ctypes.CDLL(libgomp_name())


def _is_gomp(name: str) -> bool:
    return name.startswith(("GOMP_", "omp_"))


def addresses(names) -> dict:
    out = {}
    for name in names:
        lib = libgomp() if _is_gomp(name) else openblas()
        out[name] = ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
    return out


def link_arguments(names) -> list:
    """Linker arguments naming the libraries that define ``names`` (see compiler/link.py)."""
    out = []
    if any(not _is_gomp(n) for n in names):
        out.append(openblas_path())
    if any(_is_gomp(n) for n in names):
        out.append(f"-l:{libgomp_name()}")
    return out


def blas_info() -> dict:
    """Which OpenBLAS kernel and thread count are in use (for benchmark reports)."""
    lib = openblas()
    lib.scipy_openblas_get_corename.restype = ctypes.c_char_p
    lib.scipy_openblas_get_num_threads.restype = ctypes.c_int
    return {"corename": lib.scipy_openblas_get_corename().decode(),
            "threads": lib.scipy_openblas_get_num_threads()}
