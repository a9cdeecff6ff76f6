"""Loop nests for Fused kernels: elementwise bodies over a broadcast iteration space,
optionally reduced over some axes.

Broadcasting is static, so each input's stride along each axis is known to be 0 or
"dense" at compile time. Adjacent axes with the same broadcast pattern in every
operand are collapsed, so the common case (all operands of one shape) is a single
flat loop that LLVM vectorizes. A reduction's output is addressed like an input
broadcast along the reduced axes, which makes reductions along any axes one scheme.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from symgraph import dims as D
from .irutil import call_intrinsic, I64, PTR, VOID, for_range, i64, load, store, storage_type, typed_ptr
from .lower_scalar import constant, convert, emit_op, is_float_dt

REDUCE_IDENTITY = {"sum": 0, "prod": 1}


@dataclass
class KernelPlan:
    extents: list          # collapsed loop extents (Dims), outermost first
    patterns: list         # per operand (inputs..., out): per collapsed axis, True = dense


def plan_loops(space, in_shapes, reduce_axes=()):
    """Collapse the iteration space. Operand k is dense along axis i unless it broadcasts."""
    nd = len(space)
    pats = []
    for shape in in_shapes:
        lead = nd - len(shape)
        pats.append([i >= lead and not (type(shape[i - lead]) is int and shape[i - lead] == 1
                                         and not (type(space[i]) is int and space[i] == 1))
                     for i in range(nd)])
    pats.append([i not in reduce_axes for i in range(nd)])  # the output
    keep = [i for i in range(nd) if not (type(space[i]) is int and space[i] == 1)]
    extents, patterns = [], [[] for _ in pats]
    for i in keep:
        if extents and all(p[i] == q[-1] for p, q in zip(pats, patterns)):
            extents[-1] = D.mul(extents[-1], space[i])
            continue
        extents.append(space[i])
        for p, q in zip(pats, patterns):
            q.append(p[i])
    return KernelPlan(extents, patterns)


def emit_kernel(module, name, fused, in_dtypes, out_dtype, plan: KernelPlan, *,
                noalias: bool = True) -> ir.Function:
    """``void name(ptr out, ptr in0.., i64 lo, i64 hi, i64 extent0..)``: pointers are
    noalias; the outermost loop runs over [lo, hi), so threads can split it (when that
    axis is not reduced: then each thread owns its rows of the output)."""
    n_in = len(in_dtypes)
    fnty = ir.FunctionType(VOID, [PTR] * (1 + n_in) + [I64] * (2 + len(plan.extents)))
    fn = ir.Function(module, fnty, name=name)
    fn.linkage = "internal"
    for k in range(1 + n_in):
        if noalias:  # not when the output overwrites an input (computing in place)
            fn.args[k].add_attribute("noalias")
        fn.args[k].name = "out" if k == 0 else f"in{k - 1}"
    lo, hi = fn.args[1 + n_in], fn.args[2 + n_in]
    lo.name, hi.name = "lo", "hi"
    extents = list(fn.args[3 + n_in:])
    for j, e in enumerate(extents):
        e.name = f"n{j}"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    out = typed_ptr(b, fn.args[0], out_dtype)
    ins = [typed_ptr(b, fn.args[1 + k], dt) for k, dt in enumerate(in_dtypes)]

    # stride of each operand along each collapsed axis (0 when it broadcasts there)
    strides = []
    for pat in plan.patterns:
        s, acc = [], i64(1)
        for j in reversed(range(len(extents))):
            if pat[j]:
                s.append(acc)
                acc = b.mul(acc, extents[j]) if not _is_one(acc) else extents[j]
            else:
                s.append(i64(0))
        strides.append(list(reversed(s)))

    if fused.reduce is not None:
        _emit_init(b, fused.reduce, out, out_dtype, extents, plan.patterns[-1], lo, hi)

    def body(offsets):
        vals = [load(b, ins[k], offsets[k], dt, name=f"x{k}") for k, dt in enumerate(in_dtypes)]
        dts = list(in_dtypes)
        for (op, args), dt in zip(fused.body, fused.dtypes):
            vals.append(emit_op(b, op, [vals[a] for a in args], [dts[a] for a in args], dt))
            dts.append(np.dtype(dt))
        v = convert(b, vals[-1], dts[-1], out_dtype)
        if fused.reduce is None:
            store(b, v, out, offsets[-1], out_dtype)
        else:
            acc = load(b, out, offsets[-1], out_dtype)
            store(b, _combine(b, fused.reduce, acc, v, out_dtype), out, offsets[-1], out_dtype)

    if extents:
        _nest(b, extents, strides, body, [i64(0)] * len(strides), 0, (lo, hi))
    else:
        body([i64(0)] * len(strides))
    b.ret_void()
    return fn


def _is_one(v) -> bool:
    return isinstance(v, ir.Constant) and v.constant == 1


def _nest(b, extents, strides, body, offsets, level, bounds=None):
    if level == len(extents):
        body(offsets)
        return
    start, stop = bounds if bounds else (None, extents[level])
    with for_range(b, stop, name=f"l{level}", start=start) as i:
        nxt = [o if _is_zero(s[level]) else b.add(o, b.mul(i, s[level]) if not _is_one(s[level]) else i)
               for o, s in zip(offsets, strides)]
        _nest(b, extents, strides, body, nxt, level + 1)


def _is_zero(v) -> bool:
    return isinstance(v, ir.Constant) and v.constant == 0


def _emit_init(b, kind, out, dt, extents, pattern, lo, hi):
    """Fill this call's part of the output with the reduction's identity: the rows
    [lo, hi) of the outermost axis when the output is dense along it, else all of it."""
    inner = i64(1)
    for e, dense in zip(extents[1:], pattern[1:]):
        if dense:
            inner = b.mul(inner, e)
    if extents and pattern[0]:
        start, stop = b.mul(lo, inner), b.mul(hi, inner)
    else:
        start, stop = i64(0), inner
    init = identity(kind, dt)
    with for_range(b, stop, name="init", start=start) as i:
        store(b, init, out, i, dt)


def identity(kind, dt):
    dt = np.dtype(dt)
    if kind in REDUCE_IDENTITY:
        return constant(dt, REDUCE_IDENTITY[kind])
    if dt.kind == "f":
        return constant(dt, -np.inf if kind == "max" else np.inf)
    if dt == np.bool_:
        return constant(dt, kind == "min")
    info = np.iinfo(dt)
    return constant(dt, info.min if kind == "max" else info.max)


def _combine(b, kind, acc, v, dt):
    fl = is_float_dt(dt)
    if kind == "sum":
        return b.fadd(acc, v, flags=("reassoc", "nsz")) if fl else b.add(acc, v)
    if kind == "prod":
        return b.fmul(acc, v, flags=("reassoc", "nsz")) if fl else b.mul(acc, v)
    if fl:
        return call_intrinsic(b, "llvm.maximum" if kind == "max" else "llvm.minimum", [acc, v])
    if np.dtype(dt) == np.bool_:
        return b.or_(acc, v) if kind == "max" else b.and_(acc, v)
    pred = ">" if kind == "max" else "<"
    return b.select(b.icmp_signed(pred, acc, v), acc, v)
