"""Lowerings of the indexing ops: Slice and SliceGrad as strided copies, Take and TakeGrad
as checked gathers and scatter-adds, OneHot as checked row fills.

Data movement is bit-exact. A copy is described by two ``View``s (offset and strides
into a flat buffer); axes that stay contiguous in both are merged at compile time, so
a slice with step 1 along the last axis copies one contiguous run per row, in a loop
LLVM vectorizes. Slice bounds on symbolic dims are normalized in IR by Python's own
rules (``slice.indices``), and every index that comes from data is checked before it
is used: native code never reads or writes outside a buffer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from symgraph import dims as D
from symgraph.ops import indexing as X
from .checks import Kernel, fail_with, where
from .codegen import lowers
from .irutil import I64, PTR, call_intrinsic, for_range, i64, load, store, typed_ptr
from .lower_scalar import constant, convert


# -- views and strided copies ---------------------------------------------------------------
@dataclass
class View:
    """Elements ``offset + sum(i[a] * strides[a])`` of a flat buffer. The offset is a dim
    or an i64 value of the entry; strides are dims (in elements)."""

    offset: object
    strides: list


def dense_strides(shape) -> list:
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc = D.mul(acc, d)
    return out[::-1]


def dense(shape) -> View:
    return View(0, dense_strides(shape))


def _same(a, b) -> bool:
    return D.sub(a, b) == 0


def _collapse(counts, views):
    """Loop axes ``[(count, stride per view)]`` with size-1 axes dropped and adjacent axes
    merged where every view steps through them as through one longer axis."""
    axes = []
    for a, n in enumerate(counts):
        if type(n) is int and n == 1:
            continue
        strides = [v.strides[a] for v in views]
        if axes:
            m, outer = axes[-1]
            if all(_same(so, D.mul(n, s)) for so, s in zip(outer, strides)):
                axes[-1] = (D.mul(m, n), strides)
                continue
        axes.append((n, strides))
    return axes


def _scaled(b, i, stride):
    if isinstance(stride, ir.Constant) and stride.constant == 1:
        return i
    return b.mul(i, stride)


def strided_copy(ctx, counts, dst, src, name="k.copy"):
    """``dst = src`` over the index space ``counts``; ``dst``/``src`` are (buffer, dtype,
    View). Values convert as numpy's astype when the dtypes differ."""
    (dst_buf, dst_dt, dst_view), (src_buf, src_dt, src_view) = dst, src
    if any(type(n) is int and n == 0 for n in counts):
        return
    axes = _collapse(counts, [dst_view, src_view])
    scalars = [dst_view.offset, src_view.offset]
    for n, strides in axes:
        scalars += [n] + strides
    k = Kernel(ctx, name, ["dst", "src"], scalars)
    b = k.builder
    out, inp = typed_ptr(b, k.ptrs[0], dst_dt), typed_ptr(b, k.ptrs[1], src_dt)
    same = np.dtype(dst_dt) == np.dtype(src_dt)

    def nest(level, d_off, s_off):
        if level == len(axes):
            if same:   # raw storage: bit-exact, bools included
                b.store(b.load(b.gep(inp, [s_off], inbounds=True)),
                        b.gep(out, [d_off], inbounds=True))
            else:
                store(b, convert(b, load(b, inp, s_off, src_dt), src_dt, dst_dt),
                      out, d_off, dst_dt)
            return
        n, ds, ss = k.values[2 + 3 * level: 5 + 3 * level]
        with for_range(b, n, name=f"c{level}") as i:
            nest(level + 1, b.add(d_off, _scaled(b, i, ds)), b.add(s_off, _scaled(b, i, ss)))

    nest(0, k.values[0], k.values[1])
    k.finish()
    k.call([dst_buf, src_buf])


def fill(ctx, buf, dtype, count, value) -> None:
    """Every element of ``buf`` (``count`` of them) set to ``value`` cast to ``dtype``;
    a value whose bytes are all zero (not -0.0) is a memset."""
    dt = np.dtype(dtype)
    with np.errstate(all="ignore"):
        cell = np.asarray(value).astype(dt)     # unsafe casting, as numpy's assignment
    if type(count) is int and count == 0:
        return
    b = ctx.builder
    if not cell.tobytes().strip(b"\0"):
        size = D.mul(count, dt.itemsize)
        call_intrinsic(b, "llvm.memset", [buf, ir.Constant(ir.IntType(8), 0), ctx.dim(size),
                                           ir.Constant(ir.IntType(1), 0)],
                       overload=[PTR, I64], ret=ir.VoidType())
        return
    k = Kernel(ctx, "k.fill", ["dst"], [count])
    kb = k.builder
    out = typed_ptr(kb, k.ptrs[0], dt)
    with for_range(kb, k.values[0], name="f") as i:
        store(kb, constant(dt, cell.item()), out, i, dt)
    k.finish()
    k.call([buf])


# -- slices ---------------------------------------------------------------------------------
def _smin(b, x, y):
    return b.select(b.icmp_signed("<", x, y), x, y)


def _smax(b, x, y):
    return b.select(b.icmp_signed(">", x, y), x, y)


def _clamp_bound(ctx, v, n, lo, hi):
    """CPython's slice.indices for one given bound: a negative one counts from the end,
    then the result is clamped into [lo, hi]."""
    b = ctx.builder
    if type(v) is int:
        return _smax(b, b.add(i64(v), n), lo) if v < 0 else _smin(b, i64(v), hi)
    v = ctx.dim(v)
    return b.select(b.icmp_signed("<", v, i64(0)), _smax(b, b.add(v, n), lo), _smin(b, v, hi))


def _slice_in_ir(ctx, n, start, stop, step):
    """(first position, length) of ``range(n)[start:stop:step]`` as i64 values."""
    b = ctx.builder
    n = ctx.dim(n)
    lo, hi = (i64(0), n) if step > 0 else (i64(-1), b.sub(n, i64(1)))
    first = (lo if step > 0 else hi) if start is None else _clamp_bound(ctx, start, n, lo, hi)
    last = (hi if step > 0 else lo) if stop is None else _clamp_bound(ctx, stop, n, lo, hi)
    span = b.sub(last, first) if step > 0 else b.sub(first, last)
    length = b.add(b.sdiv(b.sub(span, i64(1)), i64(abs(step))), i64(1))
    return first, b.select(b.icmp_signed(">", span, i64(0)), length, i64(0))


def _axis_start(ctx, nid, axis, entry, n, count):
    """The first position read along one axis (an int or an i64 value), after checking
    at run time what the shape rule could not: an int index against a symbolic size, and
    (defensively) that the slice length equals ``count``, the size the buffers have."""
    b = ctx.builder
    if not isinstance(entry, tuple):
        if type(n) is int:
            return entry % n          # checked against the size when the graph was built
        nv = ctx.dim(n)
        bad = b.icmp_signed(">=", i64(entry), nv) if entry >= 0 else \
            b.icmp_signed("<", i64(entry), b.sub(i64(0), nv))
        fail_with(ctx, bad, f"{where(ctx, nid)}: index {entry} is out of bounds for axis "
                            f"{axis} with size {{0}}", [nv])
        return entry if entry >= 0 else b.add(i64(entry), nv)
    start, stop, step = entry
    if (start, stop, step) == (None, None, 1) and _same(count, n):
        return 0                      # the whole axis: nothing to normalize or check
    if all(type(v) is int or v is None for v in (n, start, stop)):
        r = range(n)[slice(start, stop, step)]
        first, length = (r.start if len(r) else 0), len(r)
        if type(count) is int:
            assert count == length, (nid, axis, count, length)
            return first
        length = i64(length)
    else:
        first, length = _slice_in_ir(ctx, n, start, stop, step)
    ctx.fail_if(b.icmp_signed("!=", length, ctx.dim(count)),
                f"{ctx.node_where(nid)}: internal error: the slice {start}:{stop}:{step} of "
                f"axis {axis} (size {n}) does not have the length {count} of the shape rule")
    return first


def slice_view(ctx, nid, key, shape, counts) -> View:
    """Where ``x[key]`` lives in ``x`` (of ``shape``); ``counts`` is the slice's shape."""
    b = ctx.builder
    static, dynamic, steps = 0, None, []
    for axis, (entry, n, c, s) in enumerate(zip(key, shape, counts, dense_strides(shape))):
        first = _axis_start(ctx, nid, axis, entry, n, c)
        if type(first) is int:
            static = D.add(static, D.mul(first, s))
        else:
            term = b.mul(first, ctx.dim(s))
            dynamic = term if dynamic is None else b.add(dynamic, term)
        steps.append(D.mul(s, entry[2] if isinstance(entry, tuple) else 1))
    offset = static if dynamic is None else b.add(dynamic, ctx.dim(static))
    return View(offset, steps)


@lowers(X.Slice)
def lower_slice(ctx, nid):
    op = ctx.graph.op(nid)
    (x,) = ctx.inputs(nid)
    t, xt = ctx.type(nid), ctx.type(x)
    view = slice_view(ctx, nid, op.key, xt.shape, t.shape)
    strided_copy(ctx, t.shape, (ctx.buffer(nid), t.dtype, dense(t.shape)),
                 (ctx.buffer(x), xt.dtype, view), name="k.slice")


@lowers(X.SliceGrad)
def lower_slice_grad(ctx, nid):
    op = ctx.graph.op(nid)
    (g,) = ctx.inputs(nid)
    t, gt = ctx.type(nid), ctx.type(g)
    fill(ctx, ctx.buffer(nid), t.dtype, D.product(t.shape), 0)
    view = slice_view(ctx, nid, op.key, t.shape, gt.shape)
    strided_copy(ctx, gt.shape, (ctx.buffer(nid), t.dtype, view),
                 (ctx.buffer(g), gt.dtype, dense(gt.shape)), name="k.slice_grad")


# -- gathers and one_hot: every index is checked before it is used ---------------------------
def _gather_split(shape, axis):
    """(outer, n, inner) sizes around the gathered axis (the whole tensor for axis=None)."""
    if axis is None:
        return 1, D.product(shape), 1
    return D.product(shape[:axis]), shape[axis], D.product(shape[axis + 1:])


def _index(b, idx, j, dtype):
    v = load(b, idx, j, dtype, name="index")
    return v if v.type == I64 else b.sext(v, I64)


def _check_indices(k, idx, idx_dt, m, lo, hi, template):
    """Fail on the first index outside [lo, hi), as the reference reports it.
    ``template`` names the bad index as {0}, ``hi`` as {1} and ``lo`` as {2}."""
    b = k.builder
    with for_range(b, m, name="chk") as j:
        v = _index(b, idx, j, idx_dt)
        bad = b.or_(b.icmp_signed("<", v, lo), b.icmp_signed(">=", v, hi))
        k.fail_if(bad, template, [v, hi, lo])


def _take_kernel(ctx, nid, name, axis, big_shape, idx_id, m):
    """A checked kernel over (outer, n, inner, m) with the indices validated up front;
    yields a function emitting the per-index loops, called with (big_ptr, small_ptr)."""
    outer, n, inner = _gather_split(big_shape, axis)
    k = Kernel(ctx, name, ["big", "small", "idx"], [outer, n, inner, m], checked=True)
    b = k.builder
    idx_dt = ctx.type(idx_id).dtype
    idx = typed_ptr(b, k.ptrs[2], idx_dt)
    outer_v, n_v, inner_v, m_v = k.values
    what = (f"axis {axis} with size {{1}}" if axis is not None
            else "the flattened tensor of size {1}")
    _check_indices(k, idx, idx_dt, m_v, b.sub(i64(0), n_v), n_v,
                   f"{where(ctx, nid)}: index {{0}} is out of bounds for {what}; "
                   "valid indices are [{2}, {1})")

    def rows(body):
        """``body(big_offset, small_offset, e)`` for every element of every gathered row."""
        with for_range(b, outer_v, name="o") as o:
            with for_range(b, m_v, name="j") as j:
                v = _index(b, idx, j, idx_dt)
                v = b.select(b.icmp_signed("<", v, i64(0)), b.add(v, n_v), v)
                big = b.mul(b.add(b.mul(o, n_v), v), inner_v)
                small = b.mul(b.add(b.mul(o, m_v), j), inner_v)
                with for_range(b, inner_v, name="e") as e:
                    body(b.add(big, e), b.add(small, e))
    return k, rows


@lowers(X.Take)
def lower_take(ctx, nid):
    op = ctx.graph.op(nid)
    x, idx = ctx.inputs(nid)
    xt, dt = ctx.type(x), ctx.type(nid).dtype
    k, rows = _take_kernel(ctx, nid, "k.take", op.axis, xt.shape, idx,
                           D.product(ctx.type(idx).shape))
    b = k.builder
    src, out = typed_ptr(b, k.ptrs[0], xt.dtype), typed_ptr(b, k.ptrs[1], dt)
    rows(lambda big, small: b.store(b.load(b.gep(src, [big], inbounds=True)),
                                    b.gep(out, [small], inbounds=True)))
    k.finish()
    k.call([ctx.buffer(x), ctx.buffer(nid), ctx.buffer(idx)])


@lowers(X.TakeGrad)
def lower_take_grad(ctx, nid):
    """np.add.at order: for each output element, contributions add up in index order."""
    op = ctx.graph.op(nid)
    g, idx = ctx.inputs(nid)
    t = ctx.type(nid)
    dt = np.dtype(t.dtype)
    fill(ctx, ctx.buffer(nid), dt, D.product(t.shape), 0)
    k, rows = _take_kernel(ctx, nid, "k.take_grad", op.axis, op.shape, idx,
                           D.product(ctx.type(idx).shape))
    b = k.builder
    out, src = typed_ptr(b, k.ptrs[0], dt), typed_ptr(b, k.ptrs[1], ctx.type(g).dtype)

    def add(big, small):
        acc, v = load(b, out, big, dt), load(b, src, small, dt)
        s = b.fadd(acc, v) if dt.kind == "f" else (b.or_(acc, v) if dt == np.bool_
                                                    else b.add(acc, v))
        store(b, s, out, big, dt)
    rows(add)
    k.finish()
    k.call([ctx.buffer(nid), ctx.buffer(g), ctx.buffer(idx)])


@lowers(X.OneHot)
def lower_one_hot(ctx, nid):
    from .kernels import loop_hints
    op = ctx.graph.op(nid)
    (labels,) = ctx.inputs(nid)
    dt = np.dtype(ctx.type(nid).dtype)
    lt = ctx.type(labels)
    k = Kernel(ctx, "k.one_hot", ["out", "labels"], [D.product(lt.shape), op.depth],
               checked=True)
    b = k.builder
    out, lab = typed_ptr(b, k.ptrs[0], dt), typed_ptr(b, k.ptrs[1], lt.dtype)
    m, depth = k.values
    _check_indices(k, lab, lt.dtype, m, i64(0), depth,
                   f"{where(ctx, nid)}: index {{0}} is out of bounds for depth {{1}}; "
                   "valid indices are [0, {1})")
    one, zero = constant(dt, 1), constant(dt, 0)
    with for_range(b, m, name="j", loop_metadata=loop_hints(b.module)) as j:
        v = _index(b, lab, j, lt.dtype)
        row = b.mul(j, depth)
        with for_range(b, depth, name="c", loop_metadata=loop_hints(b.module)) as c:
            store(b, b.select(b.icmp_signed("==", c, v), one, zero), out, b.add(row, c), dt)
    k.finish()
    k.call([ctx.buffer(nid), ctx.buffer(labels)])
