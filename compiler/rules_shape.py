"""Rules on shape ops and reductions: transposes, reshapes, broadcasts, sums of broadcasts.

All of them are exact except ``sum(broadcast_to(x)) -> x * count``, which replaces a
sum of n equal terms by one product (a different rounding, documented on the rule).
"""
from __future__ import annotations

import numpy as np

from symgraph import dims as D
from symgraph.ops import elementwise as E
from symgraph.ops import reductions as R
from symgraph.ops.leaves import DimValue
from symgraph.ops.shape import BroadcastTo, Reshape, Transpose

from .rewrite import rewrite


def _size_one(d) -> bool:
    return type(d) is int and d == 1


# -- transposes ---------------------------------------------------------------------------
@rewrite("simplify", Transpose)
def merge_transposes(rw, n):
    """transpose(transpose(x, p), q) -> transpose(x, p[q]), and -> x when that is the identity"""
    (y,) = rw.ins(n)
    if not rw.isa(y, Transpose):
        return None
    (x,) = rw.ins(y)
    p, q = rw.op(y).axes, rw.op(n).axes
    axes = tuple(p[i] for i in q)
    if axes == tuple(range(len(axes))):
        return x
    return rw.make(Transpose(axes=axes), x)


def _single_element(shape) -> bool:
    return all(_size_one(d) for d in shape)


@rewrite("simplify", Transpose, Reshape)
def move_scalar_broadcast_out(rw, n):
    """transpose(broadcast_to(c, s)) -> broadcast_to(c, s') for a one-element c (same for
    reshape): every element is c either way"""
    (y,) = rw.ins(n)
    if rw.isa(y, BroadcastTo):
        (c,) = rw.ins(y)
        if _single_element(rw.shape(c)) and len(rw.shape(c)) <= len(rw.shape(n)):
            return rw.make(BroadcastTo(shape=rw.shape(n)), c)


def expanded_source(rw, r):
    """x when ``r`` is reshape(x) that only prepends size-1 dims (or reshapes a one-element
    x to size-1 dims): broadcasting x is then the same as broadcasting r."""
    if not rw.isa(r, Reshape):
        return None
    (x,) = rw.ins(r)
    xs, s = rw.shape(x), rw.shape(r)
    lead = len(s) - len(xs)
    if lead < 0:
        return None
    if s[lead:] == xs and _single_element(s[:lead]):
        return x
    if _single_element(xs) and _single_element(s):
        return x
    return None


@rewrite("simplify", BroadcastTo)
def remove_reshape_under_broadcast(rw, n):
    """broadcast_to(reshape(x, (1,) + x.shape), s) -> broadcast_to(x, s)"""
    x = expanded_source(rw, rw.ins(n)[0])
    if x is not None:
        return rw.make(BroadcastTo(shape=rw.shape(n)), x)


@rewrite("simplify", Transpose)
def remove_transpose_of_size_one_axes(rw, n):
    """transpose(x) -> reshape(x) when only size-1 axes move (the memory order is the same)"""
    (x,) = rw.ins(n)
    axes = rw.op(n).axes
    shape = rw.shape(x)
    moved = [a for a in axes if not _size_one(shape[a])]
    if moved == sorted(moved):
        return rw.make(Reshape(shape=rw.shape(n)), x)


# -- reshapes and broadcasts --------------------------------------------------------------
@rewrite("simplify", Reshape)
def merge_reshapes(rw, n):
    """reshape(reshape(x, s1), s2) -> reshape(x, s2), and reshape(x, x.shape) -> x"""
    (y,) = rw.ins(n)
    if rw.shape(y) == rw.shape(n):
        return y
    if rw.isa(y, Reshape):
        (x,) = rw.ins(y)
        if rw.shape(x) == rw.shape(n):
            return x
        return rw.make(Reshape(shape=rw.shape(n)), x)


@rewrite("simplify", BroadcastTo)
def merge_broadcasts(rw, n):
    """broadcast_to(broadcast_to(x, s1), s2) -> broadcast_to(x, s2); same shape -> x"""
    (y,) = rw.ins(n)
    if rw.shape(y) == rw.shape(n):
        return y
    if rw.isa(y, BroadcastTo):
        (x,) = rw.ins(y)
        return rw.make(BroadcastTo(shape=rw.shape(n)), x)


# -- reductions -----------------------------------------------------------------------------
@rewrite("simplify", R.Sum, R.Prod, R.Max, R.Min)
def remove_reduction_over_size_one_axes(rw, n):
    """sum(x, axes) -> sum(x, axes without size-1 axes); no axis left -> reshape(x)"""
    (x,) = rw.ins(n)
    op = rw.op(n)
    shape = rw.shape(x)
    keep = tuple(a for a in op.axes if not _size_one(shape[a]))
    if keep == op.axes:
        return None
    if keep:
        y = rw.make(type(op)(axes=keep, keepdims=True), x)
    else:
        y = x
    return rw.conform(_reshape(rw, y, rw.shape(n)), n)


def _reshape(rw, x, shape):
    return x if rw.shape(x) == tuple(shape) else rw.make(Reshape(shape=tuple(shape)), x)


def _count(rw, dims, dtype):
    """The product of ``dims`` as a scalar node: a constant, or a DimValue at run time."""
    c = D.product(dims)
    if type(c) is int:
        return rw.constant(c, dtype)
    return rw.make(DimValue(dim=c, dtype=np.dtype(dtype)))


@rewrite("simplify", R.Sum)
def fold_sum_of_broadcast(rw, n):
    """sum(broadcast_to(x, s), axes) -> sum(x, other axes) * count of the broadcast axes.

    A sum of n copies of v becomes v * n: one rounding instead of n - 1, which is the
    more accurate answer; the unoptimized graph may differ in the last bits.
    """
    (b,) = rw.ins(n)
    if not rw.isa(b, BroadcastTo):
        return None
    (x,) = rw.ins(b)
    op, target = rw.op(n), rw.shape(b)
    xs = (1,) * (len(target) - len(rw.shape(x))) + rw.shape(x)
    stretched = [a for a in op.axes if _size_one(xs[a]) and not _size_one(target[a])]
    if not stretched:
        return None
    dt = rw.dtype(n)
    y = _reshape(rw, x, xs)
    others = tuple(a for a in op.axes if a not in stretched)
    if others:
        y = rw.make(R.Sum(axes=others, keepdims=True), y)
    if rw.dtype(y) != dt:
        y = rw.make(E.Cast(dtype=dt), y)
    y = rw.make(E.Multiply(), y, _count(rw, [target[a] for a in stretched], dt))
    kept = R.reduced_shape(target, op.axes, True)
    if rw.shape(y) != kept:
        y = rw.make(BroadcastTo(shape=kept), y)
    return rw.conform(_reshape(rw, y, rw.shape(n)), n)


@rewrite("simplify", R.Sum, R.Prod, R.Max, R.Min)
def merge_nested_reductions(rw, n):
    """sum(sum(x, a1), a2) -> sum(x, a1 + a2), one loop (and the same for prod, max, min).
    For sum and prod this reassociates."""
    (y,) = rw.ins(n)
    op, inner = rw.op(n), rw.op(y)
    if type(inner) is not type(op) or rw.dtype(y) != rw.dtype(n) or len(rw.consumers(y)) != 1:
        return None
    (x,) = rw.ins(y)
    if rw.dtype(x) != rw.dtype(y):
        return None
    rest = list(range(len(rw.shape(x)))) if inner.keepdims else \
        [a for a in range(len(rw.shape(x))) if a not in inner.axes]
    axes = tuple(sorted(set(inner.axes) | {rest[a] for a in op.axes}))
    return _reshape(rw, rw.make(type(op)(axes=axes, keepdims=True), x), rw.shape(n))
