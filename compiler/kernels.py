"""Loop nests for Fused kernels: elementwise bodies over a broadcast iteration space,
optionally reduced over some axes; a group of sibling kernels (horizontal.py) is one
loop nest with several outputs.

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
from symgraph.ops import elementwise as E
from . import irprint, irtext, vecmath
from .irutil import (call_intrinsic, I64, PTR, VOID, for_range, i64, is_one, load,
                     offsets_at, store, typed_ptr)
from .lower_scalar import constant, convert, emit_op, is_float_dt
from .vector_kernels import VectorNest, mark_light

REDUCE_IDENTITY = {"sum": 0, "prod": 1}

# Kernels in vector form are written as IR text (irtext.py) unless this is off (tests
# compare that text with llvmlite's own) or irprint does not print as this llvmlite does.
TEXT_KERNELS = True


def writes_text() -> bool:
    return TEXT_KERNELS and irprint.agrees_with_llvmlite()


def body_builder(fn, outliner=None):
    """(builder, arguments) for the body of ``fn`` (a kernel, an entry point, a segment,
    a dispatcher): written as text (irtext.py) when the printer agrees with llvmlite,
    the same text llvmlite's builder writes (tests/test_irprint.py), else by
    llvmlite's builder. Making and printing llvmlite objects took about a tenth of a
    10,000-op graph's compile, and a sixth of an MLP step's lowering and printing.
    ``outliner``: see irtext.define."""
    if writes_text():
        return irtext.define(fn, outliner)
    return ir.IRBuilder(fn.append_basic_block("entry")), fn.args


@dataclass
class KernelPlan:
    extents: list          # collapsed loop extents (Dims), outermost first
    patterns: list         # per operand (inputs..., out): per collapsed axis, True = dense


def plan_loops(space, in_shapes, reduce_axes=(), *, outputs=None):
    """Collapse the iteration space. Operand k is dense along axis i unless it broadcasts.
    ``outputs`` lists each output's reduced axes (default: one output reduced over
    ``reduce_axes``); an output is addressed like an input broadcast along them."""
    nd = len(space)
    pats = []
    for shape in in_shapes:
        lead = nd - len(shape)
        pats.append([i >= lead and not (type(shape[i - lead]) is int and shape[i - lead] == 1
                                         and not (type(space[i]) is int and space[i] == 1))
                     for i in range(nd)])
    for axes in (outputs if outputs is not None else [reduce_axes]):
        pats.append([i not in axes for i in range(nd)])
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


@dataclass(frozen=True)
class Member:
    """One output of a kernel: its Fused body, and for each of its inputs the index of
    that input among the kernel's (shared) inputs."""
    fused: object
    refs: tuple


def emit_group(module, name, members, in_dtypes, out_dtypes, plan: KernelPlan, *,
               in_place=None, interleave_math: bool = True, lanes: int = 0,
               compact_tails: bool = False, outliner=None) -> ir.Function:
    """``void name(ptr out0.., ptr in0.., i64 lo, i64 hi, i64 extent0..)``: one loop
    nest computing every member's value (common subexpressions once) and writing or
    reducing it into its output. ``plan.patterns`` lists the inputs, then the outputs.
    Pointers are noalias; the outermost loop runs over [lo, hi), so threads can split
    it (when no output is reduced along it: then each thread owns its output rows).
    ``in_place`` (input index -> output index) names inputs whose buffer is that
    output's (computing in place): they are read through the output pointer, so every
    pointer stays noalias (no runtime overlap checks, no second loop version).
    ``interleave_math``: force two vector iterations per loop trip when the body calls
    vector math (see loop_hints; off in big modules, where it costs compile time).
    ``lanes``: write the innermost loop in vector form on that many lanes
    (vector_kernels.py; lanes_for says when a kernel can be). A body of vector math
    with ``interleave_math`` stays a scalar loop for the vectorizer: its interleaved
    vector code ran 20% faster than ours (elementwise_grad), and in a small module the
    compile time it costs is small. ``compact_tails`` (big modules): the vector form runs
    a row's last partial vector through the loop's body (VectorNest, compact).
    ``outliner`` (a fast_isel.Outliner, for the fast code generator): what its
    instruction selector misses is written as calls of helpers."""
    heavy = interleave_math and math_ops([m.fused for m in members]) > 0
    if heavy:
        lanes = 0
    in_place = in_place or {}
    n_out, n_in = len(members), len(in_dtypes)
    n_ptr = n_out + n_in
    fnty = ir.FunctionType(VOID, [PTR] * n_ptr + [I64] * (2 + len(plan.extents)))
    fn = ir.Function(module, fnty, name=name)
    fn.linkage = "internal"
    # kept out of the entry: inlining hundreds of loops into one function makes LLVM's
    # function passes work on one huge body, for no gain (one call per kernel)
    fn.attributes.add("noinline")
    if lanes:
        mark_light(fn)   # vector code already: the light pipeline
    for k in range(n_ptr):
        fn.args[k].add_attribute("noalias")
        fn.args[k].name = (f"out{k}" if n_out > 1 else "out") if k < n_out else f"in{k - n_out}"
    fn.args[n_ptr].name, fn.args[n_ptr + 1].name = "lo", "hi"
    for j, e in enumerate(fn.args[n_ptr + 2:]):
        e.name = f"n{j}"
    b, args = body_builder(fn, outliner if lanes else None)
    lo, hi = args[n_ptr], args[n_ptr + 1]
    extents = list(args[n_ptr + 2:])
    casts: dict = {}   # (argument, dtype) -> its typed pointer, made once

    def typed(k, dt):
        key = (k, np.dtype(dt))
        if key not in casts:
            casts[key] = typed_ptr(b, args[k], dt)
        return casts[key]
    outs = [typed(k, dt) for k, dt in enumerate(out_dtypes)]
    ins = [typed(n_out + k if k not in in_place else in_place[k], dt)
           for k, dt in enumerate(in_dtypes)]

    # stride of each operand along each collapsed axis (0 when it broadcasts there)
    strides = []
    for pat in plan.patterns:
        s, acc = [], i64(1)
        for j in reversed(range(len(extents))):
            if pat[j]:
                s.append(acc)
                acc = b.mul(acc, extents[j]) if not is_one(acc) else extents[j]
            else:
                s.append(i64(0))
        strides.append(list(reversed(s)))

    for k, m in enumerate(members):
        if m.fused.reduce is not None:
            _emit_init(b, m.fused.reduce, outs[k], out_dtypes[k], extents,
                       plan.patterns[n_in + k], lo, hi)

    numbering: dict = {}
    listing = [_instructions(m, in_dtypes, numbering) for m in members]
    paired = _sigmoid_exp_pairs(listing)

    def body(offsets):
        # inputs are loaded on first use, possibly after an earlier member's store: only
        # a group of one computes in place (memory.plan_memory), so no store hits them
        loaded = {}

        def input_value(u):
            if u not in loaded:
                loaded[u] = load(b, ins[u], offsets[u], in_dtypes[u], name=f"x{u}")
            return loaded[u]

        def write(k, v):
            off = offsets[n_in + k]
            if members[k].fused.reduce is None:
                store(b, v, outs[k], off, out_dtypes[k])
            else:
                acc = load(b, outs[k], off, out_dtypes[k])
                store(b, _combine(b, members[k].fused.reduce, acc, v, out_dtypes[k]), outs[k],
                      off, out_dtypes[k])
        emit_members(b, members, listing, paired, in_dtypes, out_dtypes, input_value, write)

    if lanes:
        def emit(builder, input_value, write):
            emit_members(builder, members, listing, paired, in_dtypes, out_dtypes,
                         input_value, write)
        VectorNest(b, lanes, out_dtypes[0], ins, outs, strides, n_in,
                   [m.fused.reduce for m in members], emit,
                   compact=compact_tails).run(extents, lo, hi)
    elif extents:
        # a reduction along the innermost axis carries its sum in a register: several
        # vector accumulators hide the add latency (also in big modules)
        folds = any(m.fused.reduce is not None and not plan.patterns[n_in + k][-1]
                    for k, m in enumerate(members))
        _nest(b, extents, strides, body, [i64(0)] * len(strides), 0, (lo, hi),
              interleave=2 if heavy else 4 if folds else 0)
    else:
        body([i64(0)] * len(strides))
    b.ret_void()
    return fn


def emit_members(b, members, listing, paired, in_dtypes, out_dtypes, input_value, write):
    """Compute every member's value, common subexpressions once, and hand each (in its
    output's dtype) to ``write(k, value)``. ``input_value(u)`` gives input u's register;
    ``listing`` and ``paired`` come from _instructions and _sigmoid_exp_pairs."""
    values = {}

    def value(key):
        v = values.get(key)             # computed (a number) or loaded (("in", u))
        if v is None:
            v = values[key] = input_value(key[1])
        return v

    for k, m in enumerate(members):
        for key, op, arg_keys, arg_dts, dt in listing[k]:
            if key in values:
                continue
            if key in paired:                   # sigmoid(v) and exp(-v) of one v
                sig_key, exp_key, v_key = paired[key]
                values[sig_key], values[exp_key] = vecmath.sigmoid_and_exp_neg(
                    b, value(v_key), np.float32)
                continue
            values[key] = emit_op(b, op, [value(a) for a in arg_keys], list(arg_dts), dt)
        f = m.fused
        last, last_dt = ((listing[k][-1][0], listing[k][-1][4]) if f.body else
                         (("in", m.refs[0]), np.dtype(in_dtypes[m.refs[0]])))
        write(k, convert(b, value(last), last_dt, out_dtypes[k]))


def _instructions(member, in_dtypes, numbering: dict):
    """A member's body as (key, op, argument keys, argument dtypes, dtype) in order. The
    key names the value: ("in", k) for input k, else the number ``numbering`` (shared
    by a group's members) gives to (op as repr, so -0.0 and 0.0 differ; dtype; argument
    keys; argument dtypes), so equal keys across members are one value. (Numbers, not
    the nested tuples themselves: hashing those costs the size of the whole expression
    tree below a value, which grows exponentially with shared subexpressions.)"""
    keys = [("in", u) for u in member.refs]
    dts = [np.dtype(in_dtypes[u]) for u in member.refs]
    out = []
    for (op, args), dt in zip(member.fused.body, member.fused.dtypes):
        dt = np.dtype(dt)
        arg_keys, arg_dts = tuple([keys[a] for a in args]), tuple([dts[a] for a in args])
        key = numbering.setdefault((repr(op), dt, arg_keys, arg_dts), len(numbering))
        out.append((key, op, arg_keys, arg_dts, dt))
        keys.append(key)
        dts.append(dt)
    return out


_F32 = np.dtype(np.float32)


def _sigmoid_exp_pairs(listing) -> dict:
    """key -> (sigmoid key, exp key, v key) for every float32 v whose sigmoid(v) and
    exp(-v) are both computed: one exp reduction serves both
    (vecmath.sigmoid_and_exp_neg)."""
    sig, neg, exp = {}, {}, {}
    for instrs in listing:
        for key, op, arg_keys, arg_dts, dt in instrs:
            if dt != _F32 or arg_dts != (_F32,):
                continue
            if isinstance(op, E.Sigmoid):
                sig[arg_keys[0]] = key
            elif isinstance(op, E.Negative):
                neg[key] = arg_keys[0]
            elif isinstance(op, E.Exp):
                exp[arg_keys[0]] = key
    out = {}
    for n_key, v_key in neg.items():
        if v_key in sig and n_key in exp:
            triple = (sig[v_key], exp[n_key], v_key)
            out[sig[v_key]] = out[exp[n_key]] = triple
    return out


def loop_hints(module, interleave: int = 0):
    """``!llvm.loop`` metadata of a kernel loop. LLVM's unroller stays off: the vector
    body is interleaved, and unrolling hundreds of kernels (and their scalar remainders)
    doubled the optimize time of an MLP step for no measured gain. ``interleave`` forces
    that many vector iterations side by side: a body of vector math is one long
    dependency chain that a single iteration cannot hide (10% on elementwise_grad)."""
    from .window_loops import _LoopID
    hints = [module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")])]
    if interleave:
        hints.append(module.add_metadata([ir.MetaDataString(module, "llvm.loop.interleave.count"),
                                          ir.Constant(ir.IntType(32), interleave)]))
    return _LoopID(module, hints)


# ops whose lowering calls vecmath: a loop body with one of them is latency-bound
MATH_OPS = (E.Exp, E.Log, E.Log1p, E.Expm1, E.Tanh, E.Sigmoid, E.Softplus, E.Sin, E.Cos,
            E.Power)


def math_ops(fuseds) -> int:
    """How many vector-math ops the bodies of ``fuseds`` hold."""
    return sum(isinstance(op, MATH_OPS) for f in fuseds for op, _ in f.body)


def _nest(b, extents, strides, body, offsets, level, bounds=None, interleave=0):
    if level == len(extents):
        body(offsets)
        return
    start, stop = bounds if bounds else (None, extents[level])
    inner = level == len(extents) - 1
    hints = loop_hints(b.module, interleave if inner else 0)
    with for_range(b, stop, name=f"l{level}", start=start, loop_metadata=hints) as i:
        _nest(b, extents, strides, body, offsets_at(b, offsets, strides, level, i),
              level + 1, interleave=interleave)


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
    with for_range(b, stop, name="init", start=start, loop_metadata=loop_hints(b.module)) as i:
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
