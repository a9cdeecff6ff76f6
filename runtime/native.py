"""Calling compiled code: check arguments, bind dims, allocate, call, apply updates.

Everything that can be decided when the function is compiled is decided then (the
pointer table layout, which output shapes are static, the scratch size when static),
so a call does the argument checks, one native call and little else. When the host's
numpy array layout is the one the code was built for, the ndarrays themselves are
passed and native code reads their data pointers (no per-array ctypes objects); a
fully static signature also gets a check that is a few identity and tuple comparisons.
The GIL is released during the native call (ctypes), and each thread has its own
pointer tables and scratch workspace, so concurrent calls of one function are safe.

Where the interpreter allows it (runtime/builtin.py), ``builtin()`` gives a Python
builtin whose native code does all of this itself on the happy path and hands every
other call to ``_call`` here, which converts or explains.
"""
from __future__ import annotations

import ctypes
import threading

import numpy as np

from symgraph import dims as D
from symgraph.errors import CallShapeError, InputError
from . import builtin as _builtin

ALIGN = 64
# i64 slots after the dim values in the ``dims`` array: code that fails leaves there the
# values its message names (e.g. the bad index), since they are known only at run time.
ERROR_VALUES = 4
_ERROR_TYPES = {"IndexError": IndexError, "InputError": InputError}


def _array_layout_ok(offset: int) -> bool:
    """Does ``PyArrayObject->data`` sit at ``offset`` in this interpreter?"""
    a = np.empty(3)
    return ctypes.c_void_p.from_address(id(a) + offset).value == a.ctypes.data


class NativeFunction:
    def __init__(self, code, signature, *, shared, constants, outputs, symbols, scratch_bytes,
                 errors, array_data_offset=None, python_entry=None):
        """``shared``: SharedStorage objects in argument order; ``outputs``: (dtype, dims)."""
        self.code = code
        self.signature = signature
        self.shared = list(shared)
        self.constants = [np.ascontiguousarray(c) for c in constants]
        self.outputs = [(np.dtype(dt), tuple(shape)) for dt, shape in outputs]
        self.symbols = list(symbols)
        self.scratch_bytes = scratch_bytes
        self.errors = list(errors)
        self.n_in = len(signature.args)
        self.n_ptrs = self.n_in + len(self.shared) + len(self.constants) + len(self.outputs) + 1
        self._static_outputs = all(type(d) is int for _, s in self.outputs for d in s)
        self._local = threading.local()
        self._entry = code.entry
        self._const_table = (ctypes.c_void_p * max(1, len(self.constants)))(
            *[c.ctypes.data for c in self.constants])
        self._const_addr = ctypes.addressof(self._const_table)
        self._array_entry = None
        if code.array_entry_addr and array_data_offset is not None \
                and _array_layout_ok(array_data_offset):
            n_arrays = self.n_in + len(self.shared) + len(self.outputs)
            proto = ctypes.CFUNCTYPE(ctypes.c_int32, *([ctypes.py_object] * n_arrays),
                                     ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
            self._array_entry = proto(code.array_entry_addr)
        self._static = not self.symbols and not signature.requirements and \
            type(scratch_bytes) is int
        self._fast_specs = [(a.dtype, tuple(a.shape), _c_strides(a.shape, a.dtype))
                            for a in signature.args] if self._static else None
        self._out_shapes = [s for _, s in self.outputs] if self._static_outputs else None
        self._python_entry = python_entry
        self._builtins: dict = {}
        self.fallback_calls = 0   # calls the builtin handed to Python (observed by tests)
        updated = (python_entry or {}).get("updated") or [True] * len(self.shared)
        self._updated = [s for s, u in zip(self.shared, updated) if u]

    # -- the native builtin ------------------------------------------------------------
    def builtin(self, single: bool):
        """A builtin ``f(*args)`` returning the output (``single``) or the list of outputs,
        or None when this interpreter cannot run the native entry."""
        if single not in self._builtins:
            self._builtins[single] = self._make_builtin(single)
        holder = self._builtins[single]
        return None if holder is None else holder.fn

    def _make_builtin(self, single: bool):
        info = self._python_entry
        addr = self.code.address(info["name"]) if info else 0
        if not addr or not _builtin.available(info):
            return None
        if info["error_values"] != ERROR_VALUES:
            raise RuntimeError("compiled code leaves a different number of error values")

        def fallback(*args):
            self.fallback_calls += 1
            outs = self._call(args)
            return outs[0] if single else outs

        def raise_error(rc, *values):
            raise self._error_from(rc, values)

        holder = _builtin.Builtin(addr, info, fallback=fallback, raise_error=raise_error,
                                  shared=self.shared, constants_addr=self._const_addr,
                                  input_dtypes=[a.dtype for a in self.signature.args],
                                  output_dtypes=[dt for dt, _ in self.outputs], single=single)
        return holder

    # -- per-thread state ------------------------------------------------------------
    def _state(self):
        st = getattr(self._local, "state", None)
        if st is None:
            ptrs = (ctypes.c_void_p * self.n_ptrs)()
            base = self.n_in + len(self.shared)
            for k, c in enumerate(self.constants):
                ptrs[base + k] = c.ctypes.data
            dims = (ctypes.c_int64 * (len(self.symbols) + ERROR_VALUES))()
            st = self._local.state = [ptrs, dims, None, ctypes.addressof(ptrs),
                                      ctypes.addressof(dims), 0]
        return st

    def _workspace(self, st, nbytes: int) -> int:
        ws = st[2]
        if ws is None or ws.size < nbytes + ALIGN:
            ws = st[2] = np.empty(max(nbytes, 1) + ALIGN, dtype=np.uint8)
            addr = ws.ctypes.data
            st[5] = addr + (-addr % ALIGN)
        return st[5]

    # -- calling ---------------------------------------------------------------------
    def __call__(self, args):
        if self._static and self._array_entry is not None:
            arrays = self._fast_check(args)
            if arrays is not None:
                if self._updated:
                    arrays = self._unalias(arrays)
                st = self._state()
                outs = [np.empty(s, dtype=dt) for dt, s in self.outputs]
                rc = self._array_entry(*arrays, *[s.value for s in self.shared], *outs,
                                       self._const_addr, self._workspace(st, self.scratch_bytes),
                                       st[4])
                if rc:
                    raise self._error(rc, st)
                return outs
        return self._call(args)

    def _fast_check(self, args):
        """``args`` when they need no conversion at all, else None (the full check runs)."""
        specs = self._fast_specs
        if len(args) != len(specs):
            return None
        for a, (dt, shape, strides) in zip(args, specs):
            if type(a) is not np.ndarray or a.dtype is not dt or a.shape != shape \
                    or a.strides != strides:
                return None
        return args

    def _quick_bind(self, args):
        """(args, dims) when every argument is already a C-contiguous array of its dtype
        and the sizes agree, else None (the full check then runs and explains)."""
        specs = self.signature.args
        if len(args) != len(specs):
            return None
        env = {}
        for a, spec in zip(args, specs):
            if type(a) is not np.ndarray or a.dtype is not spec.dtype \
                    or a.ndim != len(spec.shape) or not a.flags.c_contiguous:
                return None
            for got, want in zip(a.shape, spec.shape):
                if type(want) is int:
                    if got != want:
                        return None
                elif env.setdefault(want, got) != got:
                    return None
        for req in self.signature.requirements:
            if D.evaluate(req.left, env) != D.evaluate(req.right, env):
                return None
        return args, env

    def _call(self, args):
        bound = None if self._array_entry is None else self._quick_bind(args)
        arrays, env = bound if bound is not None else self.signature.bind(args)
        if self._updated:
            arrays = self._unalias(arrays)
        st = self._state()
        outs = []
        for dt, shape in self.outputs:
            if not self._static_outputs:
                shape = tuple(D.evaluate(d, env) for d in shape)
            outs.append(np.empty(shape, dtype=dt))
        dims = st[1]
        for j, s in enumerate(self.symbols):
            dims[j] = env[s]
        scratch = self._workspace(st, D.evaluate(self.scratch_bytes, env))
        if self._array_entry is not None:
            rc = self._array_entry(*arrays, *[s.value for s in self.shared], *outs,
                                   self._const_addr, scratch, st[4])
        else:
            ptrs = st[0]
            for k, a in enumerate(arrays):
                ptrs[k] = a.ctypes.data
            k = self.n_in
            for s in self.shared:
                ptrs[k] = s.value.ctypes.data
                k += 1
            k += len(self.constants)
            for o in outs:
                ptrs[k] = o.ctypes.data
                k += 1
            ptrs[k] = scratch
            rc = self._entry(st[3], st[4])
        if rc:
            raise self._error(rc, st)
        return outs

    def _unalias(self, arrays):
        """Inputs are values at call time: one sharing memory with a shared variable the
        call updates is copied first, so no update can change it under the code."""
        values = [s.value for s in self._updated]
        return [a.copy() if any(np.may_share_memory(a, v) for v in values) else a
                for a in arrays]

    def _error(self, rc: int, st) -> Exception:
        n = len(self.symbols)
        return self._error_from(rc, st[1][n:n + ERROR_VALUES])

    def _error_from(self, rc: int, values) -> Exception:
        """An error entry is a message, or {"type", "message"} with ``{k}`` fields that are
        filled with the values the failing code left after the dims."""
        entry = self.errors[rc - 1] if 0 < rc <= len(self.errors) else f"native error code {rc}"
        if isinstance(entry, str):
            return CallShapeError(entry)
        return _ERROR_TYPES[entry["type"]](entry["message"].format(*values))


def _c_strides(shape, dtype) -> tuple:
    if any(type(d) is not int for d in shape):
        return None
    out, acc = [], np.dtype(dtype).itemsize
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))
