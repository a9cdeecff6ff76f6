"""Loading machine code: a shared library through the system's dynamic loader, or an
object file linked into an in-process MCJIT engine.

The runtime needs no graph and no compiler here: library or object bytes plus the
names of the external symbols they call (BLAS) are enough. The shared library is the
fast way (no LLVM in the process: importing llvmlite costs tens of milliseconds);
the object is the way when no library could be linked. LLVM's native target is
initialized once, lazily.
"""
from __future__ import annotations

import ctypes
import functools
import itertools
import os
import tempfile
import threading
import weakref

from .objects import unpack

_lock = threading.Lock()
_serial = itertools.count()
ENTRY_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p)


@functools.lru_cache(maxsize=None)
def _llvm():
    import llvmlite.binding as llvm
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm


class LoadedCode:
    """Machine code kept alive with its engine (an MCJIT engine or a loaded library);
    ``entry`` is a ctypes function and ``array_entry_addr`` the address of the fast
    entry taking ndarrays (or 0); ``address(name)`` finds any other symbol."""

    def __init__(self, engine, entry_addr: int, array_entry_addr: int = 0, *, lookup=None):
        self.engine = engine
        self.entry_addr = entry_addr
        self.entry = ENTRY_TYPE(entry_addr)
        self.array_entry_addr = array_entry_addr
        self._lookup = lookup if lookup is not None else engine.get_function_address

    def address(self, name: str) -> int:
        return self._lookup(name) or 0


def load_object(obj: bytes, entry: str, external: dict | None = None,
                array_entry: str | None = None) -> LoadedCode:
    """Link ``obj`` (one object or a bundle of them, objects.py) into a fresh engine;
    ``external`` maps symbol names to addresses."""
    llvm = _llvm()
    with _lock:
        for name, addr in (external or {}).items():
            llvm.add_symbol(name, addr)
        target = llvm.Target.from_default_triple()
        tm = target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                          features=llvm.get_host_cpu_features().flatten(),
                                          opt=3, jit=True)
        empty = llvm.parse_assembly("")
        empty.triple = tm.triple
        engine = llvm.create_mcjit_compiler(empty, tm)
        for part in unpack(obj):
            engine.add_object_file(llvm.ObjectFileRef.from_data(part))
        engine.finalize_object()
        addr = engine.get_function_address(entry)
        array_addr = engine.get_function_address(array_entry) if array_entry else 0
    if not addr:
        raise RuntimeError(f"compiled code has no entry point {entry!r}")
    return LoadedCode(engine, addr, array_addr)


def load_library(lib: bytes, entry: str, array_entry: str | None = None) -> LoadedCode | None:
    """Load a shared library made by compiler/link.py, or None if the loader refuses it
    (a temporary directory mounted noexec, a missing dependency): the caller then
    loads the object instead. The libraries it depends on must be loaded already.

    Each load gets a file name never used before in this process, since the loader
    returns an already-loaded library of the same name instead of reading the file;
    the file is deleted once mapped, and the library is closed when the code dies.
    """
    import _ctypes
    name = f"symgraph-{os.getpid()}-{next(_serial)}-"
    try:
        fd, path = tempfile.mkstemp(prefix=name, suffix=".so")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(lib)
            handle = _ctypes.dlopen(path, os.RTLD_NOW | os.RTLD_LOCAL)
        finally:
            os.unlink(path)
    except OSError:
        return None

    def lookup(symbol: str) -> int:
        try:
            return _ctypes.dlsym(handle, symbol)
        except OSError:
            return 0

    addr = lookup(entry)
    if not addr:
        _ctypes.dlclose(handle)
        return None
    code = LoadedCode(handle, addr, lookup(array_entry) if array_entry else 0, lookup=lookup)
    # Closed when the code dies, not at exit: code may still run during shutdown.
    weakref.finalize(code, _ctypes.dlclose, handle).atexit = False
    return code
