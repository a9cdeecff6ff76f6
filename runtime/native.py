"""Calling compiled code: check arguments, bind dims, allocate, call, apply updates.

Everything that can be decided when the function is compiled is decided then (the
pointer table layout, which output shapes are static, the scratch size when static),
so a call does the argument checks, one native call and little else. The GIL is
released during the native call (ctypes), and each thread has its own pointer table
and scratch workspace, so concurrent calls of one function are safe.
"""
from __future__ import annotations

import ctypes
import threading

import numpy as np

from symgraph import dims as D
from symgraph.errors import InputError

ALIGN = 64
# i64 slots after the dim values in the ``dims`` array: code that fails leaves there the
# values its message names (e.g. the bad index), since they are known only at run time.
ERROR_VALUES = 4
_ERROR_TYPES = {"IndexError": IndexError, "InputError": InputError}


class NativeFunction:
    def __init__(self, code, signature, *, shared, constants, outputs, symbols, scratch_bytes,
                 errors):
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

    def _state(self):
        st = getattr(self._local, "state", None)
        if st is None:
            ptrs = (ctypes.c_void_p * self.n_ptrs)()
            base = self.n_in + len(self.shared)
            for k, c in enumerate(self.constants):
                ptrs[base + k] = c.ctypes.data
            dims = (ctypes.c_int64 * (len(self.symbols) + ERROR_VALUES))()
            st = self._local.state = [ptrs, dims, None, ctypes.addressof(ptrs),
                                      ctypes.addressof(dims)]
        return st

    def _workspace(self, st, nbytes: int) -> int:
        ws = st[2]
        if ws is None or ws.size < nbytes + ALIGN:
            ws = st[2] = np.empty(max(nbytes, 1) + ALIGN, dtype=np.uint8)
        addr = ws.ctypes.data
        return addr + (-addr % ALIGN)

    def __call__(self, args):
        arrays, env = self.signature.bind(args)
        st = self._state()
        ptrs, dims = st[0], st[1]
        for k, a in enumerate(arrays):
            ptrs[k] = a.ctypes.data
        k = self.n_in
        for s in self.shared:
            ptrs[k] = s.value.ctypes.data
            k += 1
        k += len(self.constants)
        outs = []
        for dt, shape in self.outputs:
            if not self._static_outputs:
                shape = tuple(D.evaluate(d, env) for d in shape)
            o = np.empty(shape, dtype=dt)
            ptrs[k] = o.ctypes.data
            outs.append(o)
            k += 1
        for j, s in enumerate(self.symbols):
            dims[j] = env[s]
        nbytes = D.evaluate(self.scratch_bytes, env)
        ptrs[k] = self._workspace(st, nbytes)
        rc = self._entry(st[3], st[4])
        if rc:
            raise self._error(rc, dims)
        return outs

    def _error(self, rc: int, dims) -> Exception:
        """An error entry is a message, or {"type", "message"} with ``{k}`` fields that are
        filled with the values the failing code left after the dims."""
        entry = self.errors[rc - 1] if 0 < rc <= len(self.errors) else f"native error code {rc}"
        if isinstance(entry, str):
            return InputError(entry)
        n = len(self.symbols)
        return _ERROR_TYPES[entry["type"]](entry["message"].format(*dims[n:n + ERROR_VALUES]))
