"""Turning the compiled ``sg_pycall`` entry into a Python builtin.

The entry reads PyArrayObject fields at fixed offsets and calls exported CPython and
numpy C API functions. Before it is used, this module checks on the running
interpreter that those offsets are right (ctypes reads of known arrays), that numpy's
C API table is the one expected (its array type and a test call of PyArray_Empty) and
that the interpreter has a GIL; if anything differs, no builtin is made and calls take
the ctypes path. The builtin's ``self`` is a capsule of the context (an i64 array); the
method definition, context and everything the context points to are kept alive by a
holder object that the builtin references, so none can go away while it can run.
"""
from __future__ import annotations

import ctypes
import functools
import sys

import numpy as np

METH_FASTCALL = 0x0080


class _MethodDef(ctypes.Structure):
    _fields_ = [("ml_name", ctypes.c_char_p), ("ml_meth", ctypes.c_void_p),
                ("ml_flags", ctypes.c_int), ("ml_doc", ctypes.c_char_p)]


def api_address(name: str) -> int:
    """The address of an exported CPython C API function."""
    return ctypes.cast(getattr(ctypes.pythonapi, name), ctypes.c_void_p).value


def _api(name: str, restype, *argtypes):
    """A private prototype (ctypes.pythonapi's own attributes are shared process-wide)."""
    return ctypes.PYFUNCTYPE(restype, *argtypes)(api_address(name))


def _read(addr: int, ctype):
    return ctype.from_address(addr).value


@functools.lru_cache(maxsize=None)
def _layout_ok(fields: tuple) -> bool:
    """Do PyObject and PyArrayObject have the field offsets ``fields`` names, here?"""
    f = dict(fields)
    if ctypes.sizeof(ctypes.c_void_p) != 8 or sys.implementation.name != "cpython" \
            or "t" in sys.abiflags:   # a free-threaded build ("3.13t")
        return False
    base = np.zeros((2, 3), np.float32)
    for a in (base, base.T, base[:, ::2], np.zeros((), np.float64)):
        p = id(a)
        if _read(p + f["ob_type"], ctypes.c_void_p) != id(np.ndarray) \
                or _read(p + f["data"], ctypes.c_void_p) != a.ctypes.data \
                or _read(p + f["nd"], ctypes.c_int) != a.ndim \
                or _read(p + f["descr"], ctypes.c_void_p) != id(a.dtype) \
                or _read(p + f["flags"], ctypes.c_int) != a.flags.num:
            return False
        dims = _read(p + f["dimensions"], ctypes.c_void_p)
        if a.ndim and tuple((ctypes.c_int64 * a.ndim).from_address(dims)) != a.shape:
            return False
    return True


@functools.lru_cache(maxsize=None)
def _numpy_api(indices: tuple) -> dict | None:
    """Addresses of numpy C API functions by name, from the ``_ARRAY_API`` capsule, or None
    when the table does not look like the one the entry was written for."""
    try:
        from numpy._core import _multiarray_umath as mu
    except ImportError:
        return None
    get = _api("PyCapsule_GetPointer", ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)
    table = ctypes.cast(get(mu._ARRAY_API, None), ctypes.POINTER(ctypes.c_void_p))
    if table[2] != id(np.ndarray):   # PyArray_Type
        return None
    out = {name: table[k] for name, k in indices}
    empty = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_int, ctypes.POINTER(ctypes.c_int64),
                              ctypes.py_object, ctypes.c_int)(out["PyArray_Empty"])
    descr = np.dtype(np.float32)
    _api("Py_IncRef", None, ctypes.py_object)(descr)   # PyArray_Empty steals it
    probe = empty(2, (ctypes.c_int64 * 2)(3, 4), descr, 0)
    if type(probe) is not np.ndarray or probe.shape != (3, 4) or probe.dtype is not descr \
            or not probe.flags.c_contiguous:
        return None
    return out


class Builtin:
    """Owns what the builtin's native code points to; ``fn`` is the builtin itself."""

    def __init__(self, address, info, *, fallback, raise_error, shared, constants_addr,
                 input_dtypes, output_dtypes, single):
        slots = info["context"]
        self.fallback, self.raise_error, self.shared = fallback, raise_error, list(shared)
        self.value_name = sys.intern("value")
        api = _numpy_api(tuple(sorted(info["numpy_api"].items())))
        ctx = self.context = (ctypes.c_int64 * slots["size"])()
        ctx[slots["array_type"]] = id(np.ndarray)
        ctx[slots["fallback"]] = id(fallback)
        ctx[slots["raise_error"]] = id(raise_error)
        ctx[slots["value_name"]] = id(self.value_name)
        ctx[slots["constants"]] = constants_addr
        ctx[slots["array_empty"]] = api["PyArray_Empty"]
        ctx[slots["single"]] = int(single)
        for k, d in enumerate(input_dtypes):
            ctx[slots["input_descr"] + k] = id(_canonical(d))
        for k, s in enumerate(self.shared):
            ctx[slots["shared_storage"] + k] = id(s)
            ctx[slots["shared_descr"] + k] = id(_canonical(s.dtype))
        for k, d in enumerate(output_dtypes):
            ctx[slots["output_descr"] + k] = id(_canonical(d))
        self.slots = slots
        self._scratch_slot = slots["scratch_block"]
        new_capsule = _api("PyCapsule_New", ctypes.py_object, ctypes.c_void_p, ctypes.c_char_p,
                           ctypes.c_void_p)
        self.capsule = new_capsule(ctypes.addressof(ctx), None, None)
        self.method = _MethodDef(b"sg_call", address, METH_FASTCALL, None)
        new_fn = _api("PyCFunction_NewEx", ctypes.py_object, ctypes.c_void_p, ctypes.py_object,
                      ctypes.py_object)
        # ``module`` is any object the function keeps a reference to: this holder.
        self.fn = new_fn(ctypes.addressof(self.method), self.capsule, self)

    def context_slot(self, name: str) -> int:
        """The index of a named context slot (tests read and set the scratch flag)."""
        return self.slots[name]

    def __del__(self):
        block = self.context[self._scratch_slot]
        if block:
            _free(block)


def _canonical(dtype) -> np.dtype:
    """numpy's own instance of a builtin dtype: the descr of arrays numpy makes for it, so
    the entry can compare descr pointers (an equal but distinct descr goes to Python)."""
    return np.dtype(np.dtype(dtype).str)


def _free(block: int) -> None:
    _api("PyMem_RawFree", None, ctypes.c_void_p)(block)


def available(info) -> bool:
    """Can this interpreter run an entry described by manifest ``info``?"""
    if not info or not _layout_ok(tuple(sorted(info["array_fields"].items()))):
        return False
    return _numpy_api(tuple(sorted(info["numpy_api"].items()))) is not None
