"""Loading machine code: an object file linked into an in-process MCJIT engine.

The runtime needs no graph and no compiler here: object bytes plus the names of the
external symbols they call (BLAS) are enough. LLVM's native target is initialized
once, lazily.
"""
from __future__ import annotations

import ctypes
import functools
import threading

_lock = threading.Lock()
ENTRY_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p)


@functools.lru_cache(maxsize=None)
def _llvm():
    import llvmlite.binding as llvm
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm


class LoadedCode:
    """Machine code kept alive with its engine; ``entry`` is a ctypes function,
    ``array_entry_addr`` the address of the fast entry taking ndarrays (or 0) and
    ``python_entry_addr`` that of the METH_FASTCALL entry (or 0)."""

    def __init__(self, engine, entry_addr: int, array_entry_addr: int = 0,
                 python_entry_addr: int = 0):
        self.engine = engine
        self.entry_addr = entry_addr
        self.entry = ENTRY_TYPE(entry_addr)
        self.array_entry_addr = array_entry_addr
        self.python_entry_addr = python_entry_addr


def load_object(obj: bytes, entry: str, external: dict | None = None,
                array_entry: str | None = None, python_entry: str | None = None) -> LoadedCode:
    """Link ``obj`` into a fresh engine; ``external`` maps symbol names to addresses."""
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
        engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        engine.finalize_object()
        addr = engine.get_function_address(entry)
        array_addr = engine.get_function_address(array_entry) if array_entry else 0
        python_addr = engine.get_function_address(python_entry) if python_entry else 0
    if not addr:
        raise RuntimeError(f"compiled code has no entry point {entry!r}")
    return LoadedCode(engine, addr, array_addr, python_addr)
