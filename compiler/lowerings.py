"""The lowering table for the core ops: elementwise, reductions, shape, softmax.

Each entry is ``lower_<op>(ctx, nid)``: it emits a kernel function (pointer
arguments marked noalias, so loops vectorize) and a call to it from the entry.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from symgraph import dims as D
from symgraph.ops import elementwise as E
from symgraph.ops import reductions as R
from symgraph.ops import shape as S
from symgraph.ops import nn as NN
from symgraph.ops.leaves import DimValue
from .codegen import lowers, VIEW_OPS
from .irtext import text_function
from .fused import Fused
from .irutil import (call_intrinsic, I1, I64, PTR, VOID, fold_range, for_range, i64, load,
                     store, typed_ptr, value_type)
from .horizontal import as_fused
from .kernels import (Member, plan_loops, emit_group, identity, _combine, MATH_OPS, loop_hints,
                      math_ops)
from .lower_scalar import constant
from . import vecmath
from .parallel import call_kernel, MATH_COST
from .vector_kernels import lanes_for, lanes_for_dtype, mark_light, softmax_rows

# Fused kernels in vector form where they can be (vector_kernels.py)
DEFAULT_VECTOR_KERNELS = True
VECTOR_KERNELS = DEFAULT_VECTOR_KERNELS   # tests change it (cachekey.py)

VIEW_OPS.add(S.Reshape)


def new_kernel(ctx, prefix, n_ptrs, n_dims, ptr_names=None):
    """An internal function ``void (ptr noalias..., i64...)`` and a builder at its entry."""
    fnty = ir.FunctionType(VOID, [PTR] * n_ptrs + [I64] * n_dims)
    fn = ir.Function(ctx.module, fnty, name=ctx.name(prefix))
    fn.linkage = "internal"
    fn.attributes.add("noinline")   # as emit_group's kernels: one copy, not one per call
    for k in range(n_ptrs):
        fn.args[k].add_attribute("noalias")
        if ptr_names:
            fn.args[k].name = ptr_names[k]
    return fn, ir.IRBuilder(fn.append_basic_block("entry"))


def _call(ctx, fn, ptrs, dims):
    ctx.builder.call(fn, list(ptrs) + [ctx.dim(d) for d in dims])


# -- elementwise and fused kernels -------------------------------------------------------
def _check_nonempty(ctx, nid, fused):
    if fused.reduce in ("max", "min"):
        count = D.product(fused.space[a] for a in fused.axes)
        if type(count) is int and count == 0:
            ctx.fail_if(ir.Constant(I1, 1), f"{ctx.node_where(nid)}: {fused.reduce} of an empty axis")
        elif type(count) is not int:
            ctx.fail_if(ctx.builder.icmp_signed("==", ctx.dim(count), i64(0)),
                        f"{ctx.node_where(nid)}: {fused.reduce} of an empty axis")


def _lower_loop(ctx, nid):
    """Lower node ``nid`` as a Fused loop nest; a member of a sibling group (see
    horizontal.py) is lowered with its whole group, at its first member."""
    g = ctx.graph
    group = ctx.plan.groups.get(nid, (nid,))
    if group[0] != nid:
        return                              # emitted with the group's first member
    fuseds = [as_fused(g, m) for m in group]
    in_ids, members = [], []
    for m, f in zip(group, fuseds):
        _check_nonempty(ctx, m, f)
        refs = []
        for i in g.inputs(m):
            if i not in in_ids:
                in_ids.append(i)
            refs.append(in_ids.index(i))
        members.append(Member(f, tuple(refs)))
    in_dtypes = tuple(g.type(i).dtype for i in in_ids)
    out_dtypes = tuple(g.type(m).dtype for m in group)
    space = fuseds[0].space
    plan = plan_loops(space, [g.type(i).shape for i in in_ids],
                      outputs=[f.axes if f.reduce else () for f in fuseds])
    # an output written over an input (computing in place) reads it through its own pointer
    homes = ctx.plan.home
    in_place = {k: j for k, i in enumerate(in_ids) for j, m in enumerate(group)
                if m in ctx.plan.inplace and homes.get(i) == homes[m]}
    # the code depends on the bodies and the broadcast patterns, not on the sizes
    key = (tuple((f.body, f.dtypes, f.reduce, mem.refs) for f, mem in zip(fuseds, members)),
           in_dtypes, out_dtypes, tuple(tuple(p) for p in plan.patterns),
           tuple(sorted(in_place.items())))
    fn = ctx.kernel_cache.get(key)
    if fn is None:
        label = fuseds[0].name if len(group) == 1 else f"group{len(group)}"
        big = _big_program(ctx)
        streamed = ctx.light is not None and big     # fast code generator: fast_isel.py
        fn = emit_group(ctx.module, ctx.name(f"k.{label}"), members, in_dtypes, out_dtypes,
                        plan, in_place=in_place, interleave_math=not big and _interleave(
                            ctx, fuseds), compact_tails=big,
                        outliner=ctx.light.outliner(ctx.module) if streamed else None,
                        lanes=lanes_for(members, in_dtypes, out_dtypes, plan.extents)
                        if VECTOR_KERNELS else 0)
        ctx.kernel_cache[key] = fn
        if streamed and text_function(fn) is not None:
            ctx.light.add(fn, expected=ctx._fused_steps)
    splittable, reduced = _split_plan(plan, fuseds, out_dtypes, len(in_ids), in_place)
    call_kernel(ctx, fn, [ctx.buffer(m) for m in group] + [ctx.buffer(i) for i in in_ids],
                plan.extents, splittable=splittable, reduced=reduced,
                cost=_cost_per_element(fuseds))


def _split_plan(plan, fuseds, out_dtypes, n_in, in_place):
    """(splittable, reduced): whether threads may share the outermost axis, and the
    outputs reduced along it with their (kind, dtype, element count) for per-thread
    partials (never for an output computed in place)."""
    if not plan.extents:
        return False, {}
    reduced = {}
    for k, f in enumerate(fuseds):
        pattern = plan.patterns[n_in + k]
        if pattern[0]:
            continue
        count = D.product(e for e, dense in zip(plan.extents[1:], pattern[1:]) if dense)
        if k in in_place.values():
            return False, {}
        reduced[k] = (f.reduce, out_dtypes[k], count)
    return True, reduced


def _cost_per_element(fuseds) -> int:
    return max(1, sum(MATH_COST if isinstance(op, MATH_OPS) else 1
                      for f in fuseds for op, _ in f.body))


# Vector math ops a module interleaves at most (kernels.emit_group, interleave_math):
# the loop vectorizer interleaving inlined math costs about 25 ms of LLVM time per op
# (a 100-op graph with 36 of them: 0.62 s of LLVM), for loops 20-30 % faster than in
# vector form (elementwise_grad, 6 ops: 1.72-1.81 against 2.25-2.32 ms). Kernels past
# the budget are written in vector form.
MAX_INTERLEAVED_MATH = 12


def _interleave(ctx, fuseds) -> bool:
    """Whether a kernel of ``fuseds`` may have its math interleaved (within the
    module's budget, which it then uses up)."""
    count = math_ops(fuseds)
    used = getattr(ctx, "_interleaved_math", 0)
    if used + count > MAX_INTERLEAVED_MATH:
        return False
    ctx._interleaved_math = used + count
    return True


def _big_program(ctx) -> bool:
    """Whether the module will count as big for target.parse_and_optimize (more
    functions than BIG_MODULE_FUNCTIONS): then loops are not forced to interleave."""
    big = getattr(ctx, "_big_program", None)
    if big is None:
        from .target import BIG_MODULE_FUNCTIONS
        g = ctx.graph
        ctx._fused_steps = sum(as_fused(g, n) is not None for n in ctx.plan.steps)
        big = ctx._fused_steps > BIG_MODULE_FUNCTIONS
        ctx._big_program = big
    return big


@lowers(Fused, E.Elementwise, S.BroadcastTo, R.Sum, R.Prod, R.Max, R.Min)
def lower_loop(ctx, nid):
    _lower_loop(ctx, nid)


@lowers(DimValue)
def lower_dim_value(ctx, nid):
    op = ctx.graph.op(nid)
    b = ctx.builder
    v = ctx.dim(op.dim)
    dt = op.dtype
    val = b.sitofp(v, value_type(dt)) if dt.kind == "f" else (
        b.trunc(v, value_type(dt)) if dt == np.int32 else v)
    store(b, val, typed_ptr(b, ctx.buffer(nid), dt), i64(0), dt)


# -- transpose: a strided copy ------------------------------------------------------------
@lowers(S.Transpose)
def lower_transpose(ctx, nid):
    op = ctx.graph.op(nid)
    (x,) = ctx.inputs(nid)
    in_shape = ctx.type(x).shape
    dt = ctx.type(nid).dtype
    nd = len(in_shape)
    fn, b = new_kernel(ctx, "k.transpose", 2, nd, ["out", "x"])
    out, src = typed_ptr(b, fn.args[0], dt), typed_ptr(b, fn.args[1], dt)
    dims_in = list(fn.args[2:])
    in_strides = [None] * nd
    acc = i64(1)
    for a in reversed(range(nd)):
        in_strides[a] = acc
        acc = b.mul(acc, dims_in[a])
    out_dims = [dims_in[a] for a in op.axes]
    out_strides = [in_strides[a] for a in op.axes]

    def nest(level, o_off, i_off):
        if level == nd:
            store(b, load(b, src, i_off, dt), out, o_off, dt)
            return
        with for_range(b, out_dims[level], name=f"t{level}") as i:
            nest(level + 1, b.add(b.mul(o_off, out_dims[level]), i),
                 b.add(i_off, b.mul(i, out_strides[level])))
    nest(0, i64(0), i64(0))
    b.ret_void()
    _call(ctx, fn, [ctx.buffer(nid), ctx.buffer(x)], in_shape)


# -- softmax / log_softmax along one axis ----------------------------------------------
def _split(shape, axis):
    return D.product(shape[:axis]), shape[axis], D.product(shape[axis + 1:])


@lowers(NN.Softmax)
def lower_softmax(ctx, nid):
    op = ctx.graph.op(nid)
    (x,) = ctx.inputs(nid)
    dt = ctx.type(nid).dtype
    log = isinstance(op, NN.LogSoftmax)
    fn, b = new_kernel(ctx, "k.log_softmax" if log else "k.softmax", 2, 3, ["out", "x"])
    out, src = typed_ptr(b, fn.args[0], dt), typed_ptr(b, fn.args[1], dt)
    n_outer, n, n_inner = fn.args[2:]
    shape = _split(ctx.type(x).shape, op.axis)
    # along the last axis (the usual case) rows are contiguous: no loop over the inner
    # extent, no stride the vectorizer would version its loops for
    rows = type(shape[2]) is int and shape[2] == 1
    lanes = lanes_for_dtype(dt) if VECTOR_KERNELS else 0
    if lanes and rows:
        mark_light(fn)          # rows in vector form (vector_kernels.py)
        softmax_rows(b, log, dt, out, src, n_outer, n, lanes)
        b.ret_void()
        _call(ctx, fn, [ctx.buffer(nid), ctx.buffer(x)], shape)
        return
    with for_range(b, n_outer, name="o") as o:
        if rows:
            base = b.mul(o, n)
            _softmax_row(b, log, dt, out, src, n, lambda i: b.add(base, i))
        else:
            with for_range(b, n_inner, name="j") as j:
                base = b.add(b.mul(b.mul(o, n), n_inner), j)
                _softmax_row(b, log, dt, out, src, n,
                             lambda i: b.add(base, b.mul(i, n_inner)))
    b.ret_void()
    _call(ctx, fn, [ctx.buffer(nid), ctx.buffer(x)], shape)


def _softmax_row(b, log, dt, out, src, n, at):
    """One softmax (or log_softmax) of ``n`` elements at offsets ``at(i)``: a max, a
    sum of exponentials, a write."""
    m = _reduce_loop(b, n, lambda i: load(b, src, at(i), dt), "max", dt)
    finite = b.fcmp_ordered("<", call_intrinsic(b, "llvm.fabs", [m]), constant(dt, np.inf))
    m = b.select(finite, m, constant(dt, 0.0))
    s = _reduce_loop(b, n, lambda i: vecmath.exp(b, b.fsub(load(b, src, at(i), dt), m), dt),
                     "sum", dt)
    if log:
        lse = b.fadd(vecmath.log(b, s, dt), m)
        with for_range(b, n, name="w", loop_metadata=_lean(b)) as i:
            store(b, b.fsub(load(b, src, at(i), dt), lse), out, at(i), dt)
    else:
        inv = b.fdiv(constant(dt, 1.0), s)
        with for_range(b, n, name="w", loop_metadata=_lean(b)) as i:
            e = vecmath.exp(b, b.fsub(load(b, src, at(i), dt), m), dt)
            store(b, b.fmul(e, inv), out, at(i), dt)


def _lean(b):
    """Loop metadata: vectorize, but neither unroll nor interleave. The softmax of a
    classifier runs along rows of ten: copies of its exp and log bodies only cost
    compile time (its kernel had 1,700 optimized lines, an MLP step's largest)."""
    return loop_hints(b.module, interleave=1)


def _reduce_loop(b, n, value_at, kind, dt):
    """Fold ``value_at(i)`` for i < n with a register accumulator (phi)."""
    return fold_range(b, i64(0), n, identity(kind, dt),
                      lambda acc, i: _combine(b, kind, acc, value_at(i), dt),
                      name="r", loop_metadata=_lean(b))


# -- argmax / argmin ------------------------------------------------------------------
@lowers(R.Argmax)
def lower_argmax(ctx, nid):
    op = ctx.graph.op(nid)
    (x,) = ctx.inputs(nid)
    shape = ctx.type(x).shape
    dt = ctx.type(x).dtype
    is_min = isinstance(op, R.Argmin)
    if op.axis is None:
        outer, n, inner = 1, D.product(shape), 1
    else:
        outer, n, inner = _split(shape, op.axis)
    if type(n) is int and n == 0:
        ctx.fail_if(ir.Constant(I1, 1), f"{ctx.node_where(nid)}: {op.name} of an empty axis")
    elif type(n) is not int:
        ctx.fail_if(ctx.builder.icmp_signed("==", ctx.dim(n), i64(0)),
                    f"{ctx.node_where(nid)}: {op.name} of an empty axis")
    fn, b = new_kernel(ctx, f"k.{op.name}", 2, 3, ["out", "x"])
    out, src = typed_ptr(b, fn.args[0], np.int64), typed_ptr(b, fn.args[1], dt)
    n_outer, n_len, n_inner = fn.args[2:]
    fl = dt.kind == "f"
    with for_range(b, n_outer, name="o") as o:
        with for_range(b, n_inner, name="j") as j:
            base = b.add(b.mul(b.mul(o, n_len), n_inner), j)
            first = load(b, src, base, dt)
            pre = b.block
            cond, body, end = (b.append_basic_block(f"am.{s}") for s in ("cond", "body", "end"))
            b.branch(cond)
            b.position_at_end(cond)
            i = b.phi(I64)
            best = b.phi(value_type(dt))
            best_i = b.phi(I64)
            i.add_incoming(i64(1), pre)
            best.add_incoming(first, pre)
            best_i.add_incoming(i64(0), pre)
            b.cbranch(b.icmp_signed("<", i, n_len), body, end)
            b.position_at_end(body)
            v = load(b, src, b.add(base, b.mul(i, n_inner)), dt)
            if fl:  # numpy: the first NaN wins
                better = b.fcmp_unordered("<" if is_min else ">", v, best)
                better = b.and_(better, b.fcmp_ordered("==", best, best))
            elif dt == np.bool_:
                better = b.icmp_unsigned("<" if is_min else ">", v, best)
            else:
                better = b.icmp_signed("<" if is_min else ">", v, best)
            best.add_incoming(b.select(better, v, best), b.block)
            best_i.add_incoming(b.select(better, i, best_i), b.block)
            i.add_incoming(b.add(i, i64(1)), b.block)
            b.branch(cond)
            b.position_at_end(end)
            store(b, best_i, out, b.add(b.mul(o, n_inner), j), np.int64)
    b.ret_void()
    _call(ctx, fn, [ctx.buffer(nid), ctx.buffer(x)], [outer, n, inner])


from . import lower_linalg  # noqa: E402,F401  (registers matmul)
from . import lower_indexing, lower_joining  # noqa: E402,F401  (indexing and joining ops)
from . import lower_conv  # noqa: E402,F401  (registers convolution and pooling)
