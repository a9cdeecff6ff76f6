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


# Thread policy. Generated loops (libgomp) and BLAS (OpenBLAS's own pool) take turns on
# the same cores. An idle thread of either that keeps spinning takes a core from the
# other: with both libraries' default spin times an MLP step ran twice as slow on 2
# threads as on 1. So idle threads of both sleep at once (OpenBLAS: 2^8 cycles; libgomp:
# no spinning), unless the user set these variables. Each library reads them when it
# loads, so they are in the environment for that moment only.
OPENBLAS_ENV = {"OPENBLAS_THREAD_TIMEOUT": "8"}
OPENBLAS_USER_ENV = {"OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT"}
GOMP_ENV = {"GOMP_SPINCOUNT": "0"}
GOMP_USER_ENV = {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"}


def _load_with_env(path: str, env: dict, user_env: set) -> ctypes.CDLL:
    tuned = not (user_env & os.environ.keys())
    if tuned:
        os.environ.update(env)
    try:
        return ctypes.CDLL(path)
    finally:
        if tuned:
            for k in env:
                del os.environ[k]


@functools.lru_cache(maxsize=None)
def openblas() -> ctypes.CDLL:
    return _load_with_env(openblas_path(), OPENBLAS_ENV, OPENBLAS_USER_ENV)


LIBGOMP = "libgomp.so.1"   # by soname: the loader finds it without a search subprocess


def libgomp_available() -> bool:
    try:
        libgomp()
    except OSError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def libgomp():
    """GCC's OpenMP runtime, used by generated code to run loops on all cores."""
    from . import threads
    name = LIBGOMP
    try:
        lib = _load_with_env(name, GOMP_ENV, GOMP_USER_ENV)
    except OSError as exc:
        raise OSError(f"generated code needs libgomp (GCC's OpenMP runtime, {name}), which "
                      f"could not be loaded ({exc}); install it (Debian: libgomp1) or set "
                      f"SYMGRAPH_PARALLEL=0") from None
    threads.note_libgomp_loaded()
    return lib


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
        out.append(f"-l:{LIBGOMP}")
    return out


def blas_info() -> dict:
    """Which OpenBLAS kernel and thread count are in use (for benchmark reports)."""
    lib = openblas()
    lib.scipy_openblas_get_corename.restype = ctypes.c_char_p
    lib.scipy_openblas_get_num_threads.restype = ctypes.c_int
    return {"corename": lib.scipy_openblas_get_corename().decode(),
            "threads": lib.scipy_openblas_get_num_threads()}
