"""Small helpers for writing readable LLVM IR with llvmlite.ir: types, loops, dims."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from llvmlite import ir


I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F32 = ir.FloatType()
F64 = ir.DoubleType()
PTR = ir.PointerType(I8)
VOID = ir.VoidType()

# by numpy dtype (a dict lookup: ``dtype.name`` is a Python property, slow in loops)
_STORAGE = {np.dtype(k): t for k, t in (("float32", F32), ("float64", F64), ("int32", I32),
                                        ("int64", I64), ("bool", I8))}
_VALUE = {**_STORAGE, np.dtype(bool): I1}
# one pointer type per dtype, shared (llvmlite makes a new object per as_pointer())
_POINTER = {d: t.as_pointer() for d, t in _STORAGE.items()}


def storage_type(dtype) -> ir.Type:
    """How a dtype is laid out in memory (bool is one byte, as in numpy)."""
    t = _STORAGE.get(dtype)
    return t if t is not None else _STORAGE[np.dtype(dtype)]


def value_type(dtype) -> ir.Type:
    """How a dtype lives in registers (bool is i1)."""
    t = _VALUE.get(dtype)
    return t if t is not None else _VALUE[np.dtype(dtype)]


def call_intrinsic(builder, name, args, overload=None, ret=None):
    """Call ``llvm.<name>`` overloaded on the first argument's type (or ``overload``)."""
    types = overload or [args[0].type]
    fnty = ir.FunctionType(ret or args[0].type, [a.type for a in args])
    if any(isinstance(t, ir.VectorType) for t in types):
        # llvmlite cannot mangle vector types: name the overload here
        full = ".".join([name] + [_mangle(t) for t in types])
        fn = builder.module.globals.get(full) or ir.Function(builder.module, fnty, name=full)
    else:
        fn = builder.module.declare_intrinsic(name, types, fnty)
    return builder.call(fn, list(args))


def _mangle(t) -> str:
    """An intrinsic's overload suffix for type ``t`` (v8f32, f64, i32...)."""
    if isinstance(t, ir.VectorType):
        return f"v{t.count}{_mangle(t.element)}"
    if isinstance(t, ir.DoubleType):
        return "f64"
    if isinstance(t, ir.FloatType):
        return "f32"
    return f"i{t.width}"


_I64: dict = {}


def i64(v: int) -> ir.Constant:
    """The i64 constant ``v``: one shared object per value (constants are immutable, and
    a kernel uses the same few offsets and strides over and over)."""
    v = int(v)
    c = _I64.get(v)
    if c is None:
        if len(_I64) >= 4096:
            _I64.clear()
        c = _I64[v] = ir.Constant(I64, v)
    return c


def is_zero(v) -> bool:
    return isinstance(v, ir.Constant) and v.constant == 0


def is_one(v) -> bool:
    return isinstance(v, ir.Constant) and v.constant == 1


def offsets_at(builder, offsets, strides, level: int, i) -> list:
    """Each operand's element offset at index ``i`` of loop ``level`` of a nest
    (``offset + i * strides[k][level]``): operands with equal offsets and strides share
    one value, and no ``add 0`` or ``mul 1`` is written."""
    made: dict = {}
    out = []
    for o, s in zip(offsets, strides):
        step = s[level]
        if is_zero(step):
            out.append(o)
            continue
        key = (id(o), id(step) if not isinstance(step, ir.Constant) else step.constant)
        if key not in made:
            v = i if is_one(step) else builder.mul(i, step)
            made[key] = v if is_zero(o) else builder.add(o, v)
        out.append(made[key])
    return out


_NOT_VOLATILE = ir.Constant(I1, 0)


def memcpy(builder, dst, src, nbytes) -> None:
    """``llvm.memcpy`` of ``nbytes`` (an i64 value) bytes, the pointers cast to i8*
    where they are typed otherwise."""
    fn = builder.module.globals.get("llvm.memcpy.p0i8.p0i8.i64")
    if fn is None:
        fn = builder.module.declare_intrinsic("llvm.memcpy", [PTR, PTR, I64])
    dst, src = (p if p.type is PTR or p.type == PTR else builder.bitcast(p, PTR)
                for p in (dst, src))
    builder.call(fn, [dst, src, nbytes, _NOT_VOLATILE])


def typed_ptr(builder, ptr, dtype):
    t = _POINTER.get(dtype)
    return builder.bitcast(ptr, t if t is not None else _POINTER[np.dtype(dtype)])


def load(builder, base, index, dtype, name=""):
    """Element ``index`` of the ``dtype`` array at ``base`` (a typed pointer), as a register value."""
    v = builder.load(builder.gep(base, [index], inbounds=True), name=name)
    if np.dtype(dtype) == np.bool_:
        v = builder.icmp_unsigned("!=", v, ir.Constant(I8, 0))
    return v


def store(builder, value, base, index, dtype):
    if np.dtype(dtype) == np.bool_:
        value = builder.zext(value, I8)
    builder.store(value, builder.gep(base, [index], inbounds=True))


@contextmanager
def for_range(builder, count, name="i", start=None, loop_metadata=None, step: int = 1):
    """``for i in range(start or 0, count, step)`` with named blocks; yields the i64
    index. ``loop_metadata`` (optional) is attached to the back edge as ``!llvm.loop``."""
    start = start if start is not None else i64(0)
    pre = builder.block
    cond = builder.append_basic_block(f"{name}.cond")
    body = builder.append_basic_block(f"{name}.body")
    end = builder.append_basic_block(f"{name}.end")
    builder.branch(cond)
    builder.position_at_end(cond)
    idx = builder.phi(I64, name=name)
    idx.add_incoming(start, pre)
    builder.cbranch(builder.icmp_signed("<", idx, count), body, end)
    builder.position_at_end(body)
    yield idx
    nxt = builder.add(idx, i64(step), name=f"{name}.next", flags=["nsw", "nuw"])
    idx.add_incoming(nxt, builder.block)
    back = builder.branch(cond)
    if loop_metadata is not None:
        back.set_metadata("llvm.loop", loop_metadata)
    builder.position_at_end(end)


def fold_range(builder, start, stop, init, step, name="f", loop_metadata=None):
    """``acc = init; for i in range(start, stop): acc = step(acc, i)`` with the
    accumulator in a register (a phi); returns the final ``acc``."""
    pre = builder.block
    cond = builder.append_basic_block(f"{name}.cond")
    body = builder.append_basic_block(f"{name}.body")
    end = builder.append_basic_block(f"{name}.end")
    builder.branch(cond)
    builder.position_at_end(cond)
    i = builder.phi(I64, name=f"{name}.i")
    acc = builder.phi(init.type, name=f"{name}.acc")
    i.add_incoming(start, pre)
    acc.add_incoming(init, pre)
    builder.cbranch(builder.icmp_signed("<", i, stop), body, end)
    builder.position_at_end(body)
    nxt = step(acc, i)
    i.add_incoming(builder.add(i, i64(1)), builder.block)
    acc.add_incoming(nxt, builder.block)
    back = builder.branch(cond)
    if loop_metadata is not None:
        back.set_metadata("llvm.loop", loop_metadata)
    builder.position_at_end(end)
    return acc


@contextmanager
def if_then(builder, pred, name="if"):
    then = builder.append_basic_block(f"{name}.then")
    end = builder.append_basic_block(f"{name}.end")
    builder.cbranch(pred, then, end)
    builder.position_at_end(then)
    yield
    if not builder.block.is_terminated:
        builder.branch(end)
    builder.position_at_end(end)


def floor_divmod(b, kind: str, num, den):
    """Python's ``//`` (kind "floordiv") or ``%`` ("mod") of i64 values: LLVM's sdiv/srem
    truncate, so adjust when the remainder's sign differs from the divisor's."""
    q, r = b.sdiv(num, den), b.srem(num, den)
    fix = b.and_(b.icmp_signed("!=", r, i64(0)),
                 b.icmp_signed("!=", b.icmp_signed("<", r, i64(0)),
                               b.icmp_signed("<", den, i64(0))))
    if kind == "floordiv":
        return b.sub(q, b.zext(fix, I64))
    return b.select(fix, b.add(r, den), r)


class DimEmitter:
    """Emits the value of symbolic dims from the ``dims`` argument, each once per function."""

    def __init__(self, builder, dims_ptr, symbol_index: dict, at_entry=None):
        self.builder = builder
        self.at_entry = at_entry or (lambda make: make())
        self.dims_ptr = dims_ptr
        self.symbol_index = symbol_index
        self.cache: dict = {}

    def __call__(self, d) -> ir.Value:
        if type(d) is int:
            return i64(d)
        v = self.cache.get(d)
        if v is None:
            v = self.at_entry(lambda: self._emit(d))
            self.cache[d] = v
        return v

    def _atom(self, atom) -> ir.Value:
        b = self.builder
        if isinstance(atom, str):
            if atom not in self.cache:
                p = b.gep(self.dims_ptr, [i64(self.symbol_index[atom])], inbounds=True)
                self.cache[atom] = b.load(p, name=f"dim.{_safe(atom)}")
            return self.cache[atom]
        a, c = (self(x) for x in atom.args)
        if atom.kind in ("floordiv", "mod"):
            return floor_divmod(b, atom.kind, a, c)
        cmp = b.icmp_signed("<" if atom.kind == "min" else ">", a, c)
        return b.select(cmp, a, c)

    def _emit(self, d) -> ir.Value:
        b = self.builder
        total = None
        for mono, coeff in d.terms:
            v = i64(coeff)
            for atom in mono:
                v = b.mul(v, self._atom(atom))
            total = v if total is None else b.add(total, v)
        return total


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def product(builder, values):
    out = i64(1)
    for v in values:
        out = v if (isinstance(out, ir.Constant) and out.constant == 1) else builder.mul(out, v)
    return out
