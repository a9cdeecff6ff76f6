"""A CPython-facing entry point, so that one call is one native call.

``PyObject *sg_pycall(PyObject *self, PyObject *const *args, Py_ssize_t nargs)`` has the
METH_FASTCALL convention; the runtime turns it into a builtin whose ``self`` is a capsule
of a context (an i64 array, slots named in ``describe()``) built at load time. On the
happy path it checks every argument natively (exact ndarray type, exact descr, rank,
C-contiguous and aligned, static dims, symbolic dims and the dim requirements), reads
the shared variables' current arrays, allocates the outputs through numpy's C API,
runs ``sg_entry`` with the GIL released and returns the output or the list of outputs.
Anything else (conversion, an error to explain, an input overlapping an updated shared
variable) calls the context's Python fallback with the original arguments.

Only exported C API functions are called; the PyArrayObject offsets below are checked by
the runtime on the host before the entry is used.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from symgraph import dims as D
from .checks import ERROR_VALUES   # i64 slots after the dims where failing code leaves values
from .irutil import I1, I32, I64, PTR, VOID, DimEmitter, floor_divmod, for_range, i64, if_then
from .kernels import body_builder

PY_ENTRY = "sg_pycall"
ALIGN = 64                # scratch alignment, as the runtime's ctypes path
ARRAY_FIELDS = {"ob_type": 8, "data": 16, "nd": 24, "dimensions": 32, "descr": 56,
                "flags": 64}
C_CONTIGUOUS, ALIGNED, WRITEABLE = 0x0001, 0x0100, 0x0400
NUMPY_API = {"PyArray_Empty": 184}   # index in numpy's _ARRAY_API table (steals the descr)
HEADER = ("array_type", "fallback", "raise_error", "value_name", "constants", "array_empty",
          "scratch_block", "scratch_size", "scratch_busy", "single")

_P = PTR
C_API = {   # exported CPython functions the entry calls, bound by name at load time
    "PyCapsule_GetPointer": ir.FunctionType(_P, [_P, _P]),
    "Py_IncRef": ir.FunctionType(VOID, [_P]),
    "Py_DecRef": ir.FunctionType(VOID, [_P]),   # a no-op on NULL
    "PyObject_GetAttr": ir.FunctionType(_P, [_P, _P]),
    "PyObject_Vectorcall": ir.FunctionType(_P, [_P, _P, I64, _P]),
    "PyEval_SaveThread": ir.FunctionType(_P, []),
    "PyEval_RestoreThread": ir.FunctionType(VOID, [_P]),
    "PyList_New": ir.FunctionType(_P, [I64]),
    "PyList_SetItem": ir.FunctionType(I32, [_P, I64, _P]),
    "PyLong_FromLongLong": ir.FunctionType(_P, [I64]),
    "PyMem_RawMalloc": ir.FunctionType(_P, [I64]),
    "PyMem_RawFree": ir.FunctionType(VOID, [_P]),
    "PyErr_NoMemory": ir.FunctionType(_P, []),
}
_EMPTY_TYPE = ir.FunctionType(_P, [I32, I64.as_pointer(), _P, I32])


def describe(n_inputs: int, n_shared: int, n_outputs: int) -> dict:
    """The context's slot indices: the header, then one slot per input descr, shared
    storage object, shared descr and output descr."""
    slots = {name: k for k, name in enumerate(HEADER)}
    k = len(HEADER)
    for name, n in (("input_descr", n_inputs), ("shared_storage", n_shared),
                    ("shared_descr", n_shared), ("output_descr", n_outputs)):
        slots[name] = k
        k += n
    slots["size"] = k
    return slots


def supported(input_shapes, shared_shapes, symbols) -> bool:
    """Inputs whose dims are ints or bare symbols binding every symbol, static shared shapes."""
    bound = {d for s in input_shapes for d in s if isinstance(d, str)}
    return all(type(d) is int or isinstance(d, str) for s in input_shapes for d in s) \
        and all(type(d) is int for s in shared_shapes for d in s) and set(symbols) <= bound


class CheckedDims(DimEmitter):
    """A DimEmitter whose arithmetic reports overflow and division by zero in ``self.bad``
    (an i1), so that a dim the runtime would compute as a Python int is never wrapped."""

    def __init__(self, builder, dims_ptr, symbol_index):
        super().__init__(builder, dims_ptr, symbol_index)
        self.bad = ir.Constant(I1, 0)

    def _flag(self, pred):
        self.bad = self.builder.or_(self.bad, pred)

    def _atom(self, atom):
        if isinstance(atom, str) or atom.kind not in ("floordiv", "mod"):
            return super()._atom(atom)
        b = self.builder
        num, den = (self(x) for x in atom.args)
        zero = b.icmp_signed("==", den, i64(0))
        wraps = b.and_(b.icmp_signed("==", num, i64(-2**63)), b.icmp_signed("==", den, i64(-1)))
        self._flag(b.or_(zero, wraps))
        safe = b.select(b.or_(zero, wraps), i64(1), den)   # never trap on a bad division
        return floor_divmod(b, atom.kind, num, safe)

    def _checked(self, op, a, c):
        res = op(a, c)
        self._flag(self.builder.extract_value(res, 1))
        return self.builder.extract_value(res, 0)

    def _emit(self, d):
        b = self.builder
        total = None
        for mono, coeff in d.terms:
            v = i64(coeff)
            for atom in mono:
                v = self._checked(b.smul_with_overflow, v, self._atom(atom))
            total = v if total is None else self._checked(b.sadd_with_overflow, total, v)
        return total


def emit_python_entry(module, entry, spec) -> dict | None:
    """Add ``sg_pycall`` to ``module`` (calling ``entry``, i.e. sg_entry); returns the
    manifest's description of it, or None when the signature is not one it handles.

    ``spec``: inputs [(dtype, shape of ints and symbol names)], shared [(dtype, shape,
    updated)], n_constants, outputs [(dtype, dims)], symbols, scratch_bytes (a dim) and
    requirements [(dim, dim)]."""
    if not supported([s for _, s in spec["inputs"]], [s for _, s, _ in spec["shared"]],
                     spec["symbols"]):
        return None
    # sg_entry is the body of every entry point: compiled once, called, never inlined
    # (inlining would copy all kernels into each wrapper and double the optimizer's work)
    entry.attributes.add("noinline")
    _Emitter(module, entry, spec).emit()
    slots = describe(len(spec["inputs"]), len(spec["shared"]), len(spec["outputs"]))
    return {"name": PY_ENTRY, "api": sorted(C_API), "numpy_api": NUMPY_API,
            "array_fields": ARRAY_FIELDS, "context": slots, "align": ALIGN,
            "error_values": ERROR_VALUES, "updated": [u for _, _, u in spec["shared"]]}


def emit_for_program(module, entry, program, inputs, shared, n_constants, symbols,
                     scratch_bytes) -> dict | None:
    """emit_python_entry for a Program whose buffers codegen has laid out."""
    g = program.graph
    updated = {s for s, v in program.updates if v != s}
    spec = {
        "inputs": [(g.type(n).dtype, tuple(d if type(d) is int else D.as_symbol(d)
                                            for d in g.type(n).shape)) for n in inputs],
        "shared": [(g.type(n).dtype, tuple(g.type(n).shape), n in updated) for n in shared],
        "n_constants": n_constants,
        "outputs": [(g.type(n).dtype, tuple(g.type(n).shape)) for n in program.outputs],
        "symbols": list(symbols),
        "scratch_bytes": scratch_bytes,
        "requirements": [(a, b) for a, b, _ in program.requirements()],
    }
    return emit_python_entry(module, entry, spec)


def _declare(module, name, fnty):
    fn = module.globals.get(name)
    return fn if fn is not None else ir.Function(module, fnty, name=name)


def _all(b, preds):
    out = preds[0]
    for p in preds[1:]:
        out = b.and_(out, p)
    return out


def _nonzero(b, v):
    return b.icmp_unsigned("!=", v, ir.Constant(v.type, None))


class _Emitter:
    """Builds sg_pycall in one pass. Side exits: ``fallback`` (give the call to Python)
    and ``error`` (an exception is set); both first drop the references held."""

    def __init__(self, module, entry, spec):
        self.module, self.entry, self.spec = module, entry, spec
        self.n_in, self.n_sh = len(spec["inputs"]), len(spec["shared"])
        self.n_out = len(spec["outputs"])
        self.slots = describe(self.n_in, self.n_sh, self.n_out)
        self.api = {n: _declare(module, n, t) for n, t in C_API.items()}
        fn = self.fn = ir.Function(module, ir.FunctionType(_P, [_P, _P.as_pointer(), I64]),
                                   name=PY_ENTRY)
        fn.args[0].name, fn.args[1].name, fn.args[2].name = "self", "args", "nargs"
        # Straight-line glue around a call: LLVM's optimizer and SelectionDAG cost far more
        # compile time on it (100+ ms for an MLP step) than they save per call (ns).
        fn.attributes.add("optnone")
        fn.attributes.add("noinline")
        b, self.params = body_builder(fn)
        self.b = b
        self.held = self._array(_P, self.n_sh + self.n_out, "held", ir.Constant(_P, None))
        n_dims = len(spec["symbols"]) + ERROR_VALUES
        self.dims = self._array(I64, n_dims, "dims", i64(0))
        self.table = self._array(_P, self.n_in + self.n_sh + spec["n_constants"]
                                 + self.n_out + 1, "table")
        self.shape = self._array(I64, max([len(s) for _, s in spec["outputs"]] + [1]), "shape")
        self.errargs = self._array(_P, 1 + ERROR_VALUES, "errargs")
        self.input_bytes = self._array(I64, self.n_in, "input_bytes")
        self.raised = b.alloca(_P, name="raised")
        ctx = b.call(self.api["PyCapsule_GetPointer"], [self.params[0], ir.Constant(_P, None)])
        self.ctx = b.bitcast(ctx, I64.as_pointer(), name="ctx")
        self.fallback_block = b.append_basic_block("fallback")
        self.error_block = b.append_basic_block("error")
        self.dim = CheckedDims(b, self.elem(self.dims, 0),
                               {s: k for k, s in enumerate(spec["symbols"])})
        self.bound: dict = {}

    # -- helpers -----------------------------------------------------------------------
    def _array(self, typ, n, name, init=None):
        arr = self.b.alloca(ir.ArrayType(typ, max(1, n)), name=name)
        if init is not None:
            for k in range(n):
                self.b.store(init, self.elem(arr, k))
        return arr

    def elem(self, arr, k):
        return self.b.gep(arr, [i64(0), i64(k) if isinstance(k, int) else k], inbounds=True)

    def ctx_slot(self, name, k=0):
        return self.b.gep(self.ctx, [i64(self.slots[name] + k)], inbounds=True)

    def ctx_ptr(self, name, k=0):
        return self.b.inttoptr(self.b.load(self.ctx_slot(name, k)), _P, name=name)

    def field(self, obj, name, typ):
        b = self.b
        p = b.gep(obj, [i64(ARRAY_FIELDS[name])], inbounds=True)
        return b.load(b.bitcast(p, typ.as_pointer()), name=name)

    def require(self, pred, otherwise=None):
        """Continue when ``pred`` (i1) holds, else go to ``otherwise`` (the fallback)."""
        ok = self.b.append_basic_block("ok")
        self.b.cbranch(pred, ok, otherwise or self.fallback_block)
        self.b.position_at_end(ok)

    def require_dims_ok(self):
        self.require(self.b.not_(self.dim.bad))
        self.dim.bad = ir.Constant(I1, 0)

    def call(self, name, *args):
        return self.b.call(self.api[name], list(args))

    # -- the entry -----------------------------------------------------------------------
    def emit(self):
        b, spec = self.b, self.spec
        self.require(b.icmp_signed("==", self.params[2], i64(self.n_in)))
        for k, (dtype, shape) in enumerate(spec["inputs"]):
            obj = b.load(b.gep(self.params[1], [i64(k)], inbounds=True), name=f"in{k}")
            data, count = self.check_array(obj, self.ctx_ptr("input_descr", k), shape,
                                           C_CONTIGUOUS | ALIGNED)
            b.store(data, self.elem(self.table, k))
            b.store(b.mul(count, i64(np.dtype(dtype).itemsize)), self.elem(self.input_bytes, k))
        same = [b.icmp_signed("==", self.dim(left), self.dim(right))
                for left, right in spec["requirements"]]
        self.require(_all(b, same + [b.not_(self.dim.bad)]))
        self.dim.bad = ir.Constant(I1, 0)
        self.read_shared()
        base = self.n_in + self.n_sh
        consts = b.bitcast(self.ctx_ptr("constants"), _P.as_pointer())
        for j in range(spec["n_constants"]):
            b.store(b.load(b.gep(consts, [i64(j)], inbounds=True)), self.elem(self.table, base + j))
        self.allocate_outputs(base + spec["n_constants"])
        self.run(self.n_in + self.n_sh + spec["n_constants"] + self.n_out)
        self.emit_exits()

    def check_array(self, obj, descr, shape, flags):
        """Exact ndarray type, ``descr``, rank, ``flags``; each dim static, or bound on
        first sight and equal after. Returns (data pointer, element count)."""
        b = self.b
        # The type first: only an ndarray's fields may be read. Then one branch for the
        # header and one for the dims (the emitted code runs unoptimized: few blocks).
        self.require(b.icmp_unsigned("==", self.field(obj, "ob_type", _P),
                                     self.ctx_ptr("array_type")))
        got_flags = b.and_(self.field(obj, "flags", I32), ir.Constant(I32, flags))
        self.require(_all(b, [
            b.icmp_unsigned("==", self.field(obj, "descr", _P), descr),
            b.icmp_signed("==", self.field(obj, "nd", I32), ir.Constant(I32, len(shape))),
            b.icmp_signed("==", got_flags, ir.Constant(I32, flags))]))
        dims = self.field(obj, "dimensions", I64.as_pointer())
        count, same = i64(1), []
        for axis, want in enumerate(shape):
            got = b.load(b.gep(dims, [i64(axis)], inbounds=True), name=f"dim{axis}")
            if isinstance(want, str) and want not in self.bound:
                self.bound[want] = got
                b.store(got, self.elem(self.dims, self.spec["symbols"].index(want)))
            else:
                want = self.bound[want] if isinstance(want, str) else i64(want)
                same.append(b.icmp_signed("==", got, want))
            count = b.mul(count, got)
        if same:
            self.require(_all(b, same))
        return self.field(obj, "data", _P), count

    def read_shared(self):
        """Each shared variable's current array (a new reference, dropped on exit), checked
        like an input and writable; no input may overlap one that is updated. One loop
        over tables of the static facts, so the IR does not grow with their number."""
        if not self.n_sh:
            return
        b = self.b
        facts = [(len(shape), int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize,
                  int(updated)) for dtype, shape, updated in self.spec["shared"]]
        flat = [d for _, shape, _ in self.spec["shared"] for d in shape]
        starts = np.cumsum([0] + [r for r, _, _ in facts])[:-1].tolist()
        rank, nbytes, updated = (self.constant_table(f"shared.{what}", column)
                                 for what, column in zip(("rank", "nbytes", "updated"),
                                                         zip(*facts)))
        start, shapes = self.constant_table("shared.start", starts), \
            self.constant_table("shared.shape", flat or [0])
        name = self.ctx_ptr("value_name")
        with for_range(b, i64(self.n_sh), name="shared") as j:
            value = self.call("PyObject_GetAttr", self.ctx_ptr_at("shared_storage", j), name)
            self.require(_nonzero(b, value), self.error_block)
            b.store(value, self.elem(self.held, j))
            self.require(b.icmp_unsigned("==", self.field(value, "ob_type", _P),
                                         self.ctx_ptr("array_type")))
            flags = C_CONTIGUOUS | ALIGNED | WRITEABLE
            got_flags = b.and_(self.field(value, "flags", I32), ir.Constant(I32, flags))
            n_dims = b.load(self.elem(rank, j))
            self.require(_all(b, [
                b.icmp_unsigned("==", self.field(value, "descr", _P),
                                self.ctx_ptr_at("shared_descr", j)),
                b.icmp_signed("==", b.sext(self.field(value, "nd", I32), I64), n_dims),
                b.icmp_signed("==", got_flags, ir.Constant(I32, flags))]))
            dims = self.field(value, "dimensions", I64.as_pointer())
            first = b.load(self.elem(start, j))
            with for_range(b, n_dims, name="axis") as axis:
                got = b.load(b.gep(dims, [axis], inbounds=True))
                want = b.load(self.elem(shapes, b.add(first, axis)))
                self.require(b.icmp_signed("==", got, want))
            data = self.field(value, "data", _P)
            b.store(data, self.elem(self.table, b.add(j, i64(self.n_in))))
            with if_then(b, b.icmp_signed("!=", b.load(self.elem(updated, j)), i64(0)),
                         name="updated"):
                lo = b.ptrtoint(data, I64)
                self.require_disjoint(lo, b.add(lo, b.load(self.elem(nbytes, j))))

    def constant_table(self, name, values):
        """A private constant i64 array in the module."""
        typ = ir.ArrayType(I64, len(values))
        g = ir.GlobalVariable(self.module, typ, name=f"{PY_ENTRY}.{name}")
        g.global_constant, g.linkage = True, "private"
        g.initializer = ir.Constant(typ, [int(v) for v in values])
        return g

    def ctx_ptr_at(self, name, k):
        """Context slot ``name`` + ``k`` (an i64 value) as a pointer."""
        b = self.b
        slot = b.gep(self.ctx, [b.add(k, i64(self.slots[name]))], inbounds=True)
        return b.inttoptr(b.load(slot), _P, name=name)

    def require_disjoint(self, lo, hi):
        """No input's bytes overlap [lo, hi)."""
        b = self.b
        with for_range(b, i64(self.n_in), name="input") as k:
            a_lo = b.ptrtoint(b.load(self.elem(self.table, k)), I64)
            a_hi = b.add(a_lo, b.load(self.elem(self.input_bytes, k)))
            self.require(b.not_(b.and_(b.icmp_unsigned("<", a_lo, hi),
                                       b.icmp_unsigned("<", lo, a_hi))))

    def allocate_outputs(self, base):
        b = self.b
        empty = b.bitcast(self.ctx_ptr("array_empty"), _EMPTY_TYPE.as_pointer())
        for j, (dtype, shape) in enumerate(self.spec["outputs"]):
            values = [self.dim(d) for d in shape]
            self.require_dims_ok()
            for axis, v in enumerate(values):
                self.require(b.icmp_signed(">=", v, i64(0)))
                b.store(v, self.elem(self.shape, axis))
            descr = self.ctx_ptr("output_descr", j)
            self.call("Py_IncRef", descr)   # PyArray_Empty steals it
            out = b.call(empty, [ir.Constant(I32, len(shape)), self.elem(self.shape, 0), descr,
                                 ir.Constant(I32, 0)], name=f"out{j}")
            self.require(_nonzero(b, out), self.error_block)
            b.store(out, self.elem(self.held, self.n_sh + j))
            b.store(self.field(out, "data", _P), self.elem(self.table, base + j))

    def run(self, scratch_index):
        """Take the scratch block, release the GIL, call sg_entry, give the block back."""
        b = self.b
        nbytes = self.dim(self.spec["scratch_bytes"])
        self.require_dims_ok()
        self.require(b.icmp_signed(">=", nbytes, i64(0)))
        need = b.add(nbytes, i64(ALIGN + 1))
        busy = self.ctx_slot("scratch_busy")
        won = b.extract_value(b.cmpxchg(busy, i64(0), i64(1), "acquire", "monotonic"), 1)
        with b.if_else(won) as (mine, own):
            with mine:
                with if_then(b, b.icmp_signed(">", need, b.load(self.ctx_slot("scratch_size"))),
                             name="grow"):
                    self.call("PyMem_RawFree", self.ctx_ptr("scratch_block"))
                    block = self.call("PyMem_RawMalloc", need)
                    b.store(b.ptrtoint(block, I64), self.ctx_slot("scratch_block"))
                    b.store(b.select(_nonzero(b, block), need, i64(0)),
                            self.ctx_slot("scratch_size"))
                cached = self.ctx_ptr("scratch_block")
                cached_from = b.block
            with own:
                fresh = self.call("PyMem_RawMalloc", need)
                fresh_from = b.block
        block = b.phi(_P, name="block")
        block.add_incoming(cached, cached_from)
        block.add_incoming(fresh, fresh_from)
        no_memory = self.b.append_basic_block("no_memory")
        self.require(_nonzero(b, block), no_memory)
        addr = b.ptrtoint(block, I64)
        aligned = b.and_(b.add(addr, i64(ALIGN - 1)), i64(-ALIGN))
        b.store(b.inttoptr(aligned, _P), self.elem(self.table, scratch_index))
        state = self.call("PyEval_SaveThread")
        rc = b.call(self.entry, [b.bitcast(self.table, _P), b.bitcast(self.dims, _P)], name="rc")
        self.call("PyEval_RestoreThread", state)
        self.release_scratch(won, block)
        self.drop_held(0, self.n_sh)
        failed = self.b.append_basic_block("failed")
        self.require(b.icmp_signed("==", rc, ir.Constant(I32, 0)), failed)
        self.return_outputs()
        b.position_at_end(no_memory)
        self.release_scratch(won, ir.Constant(_P, None))
        self.call("PyErr_NoMemory")
        b.branch(self.error_block)
        b.position_at_end(failed)
        self.raise_kernel_error(rc)

    def release_scratch(self, won, block):
        b = self.b
        with b.if_else(won) as (mine, own):
            with mine:
                b.store_atomic(i64(0), self.ctx_slot("scratch_busy"), "release", 8)
            with own:
                self.call("PyMem_RawFree", block)

    def drop_held(self, start, stop):
        """Release the references in held[start:stop] (a loop: IR of constant size)."""
        if start == stop:
            return
        with for_range(self.b, i64(stop), name="drop", start=i64(start)) as k:
            slot = self.elem(self.held, k)
            self.call("Py_DecRef", self.b.load(slot))
            self.b.store(ir.Constant(_P, None), slot)

    def return_outputs(self):
        b = self.b
        outs = [b.load(self.elem(self.held, self.n_sh + j)) for j in range(self.n_out)]
        single = b.icmp_signed("!=", b.load(self.ctx_slot("single")), i64(0))
        if self.n_out == 1:
            as_list = self.b.append_basic_block("as_list")
            with if_then(b, single, name="single"):
                b.ret(outs[0])
            b.branch(as_list)
            b.position_at_end(as_list)
        result = self.call("PyList_New", i64(self.n_out))
        self.require(_nonzero(b, result), self.error_block)
        for j, out in enumerate(outs):
            self.call("PyList_SetItem", result, i64(j), out)   # steals the reference
        b.ret(result)

    def raise_kernel_error(self, rc):
        """Drop the outputs and let Python raise the message for ``rc`` with the values
        the failing code left after the dims: ``raise_error(rc, v0, v1, v2, v3)``."""
        b = self.b
        self.drop_held(self.n_sh, self.n_sh + self.n_out)
        n = len(self.spec["symbols"])
        values = [b.sext(rc, I64)] + [b.load(self.elem(self.dims, n + k))
                                      for k in range(ERROR_VALUES)]
        boxed = self.errargs
        ok = ir.Constant(I1, 1)
        for k, v in enumerate(values):
            obj = self.call("PyLong_FromLongLong", v)
            b.store(obj, self.elem(boxed, k))
            ok = b.and_(ok, _nonzero(b, obj))
        result = self.raised
        b.store(ir.Constant(_P, None), result)
        with if_then(b, ok, name="boxed"):
            b.store(self.call("PyObject_Vectorcall", self.ctx_ptr("raise_error"),
                              b.bitcast(boxed, _P), i64(len(values)), ir.Constant(_P, None)),
                    result)
        for k in range(len(values)):
            self.call("Py_DecRef", b.load(self.elem(boxed, k)))
        self.call("Py_DecRef", b.load(result))   # raise_error raises: this is NULL
        b.ret(ir.Constant(_P, None))

    def emit_exits(self):
        b = self.b
        b.position_at_end(self.fallback_block)
        self.drop_held(0, self.n_sh + self.n_out)
        b.ret(self.call("PyObject_Vectorcall", self.ctx_ptr("fallback"),
                        b.bitcast(self.params[1], _P), self.params[2], ir.Constant(_P, None)))
        b.position_at_end(self.error_block)
        self.drop_held(0, self.n_sh + self.n_out)
        b.ret(ir.Constant(_P, None))
