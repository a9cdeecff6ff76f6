"""Numerical stabilization: replace fragile compositions by stable ops.

These rules change results where the unoptimized graph overflows, underflows or loses
precision (that is their purpose): with logits of magnitude 1000, log(softmax(x)) is
-inf and its gradient nan, log_softmax(x) and its gradient are finite. Elsewhere they
agree with the unoptimized graph up to rounding.

Gradients need the same care as forward values: the vjp of log(s) divides by s, which
is 0 when s underflowed. ``cancel_positive_factors`` removes such (g / s) * s pairs,
so the backward pass of a stabilized forward pass is stable too.
"""
from __future__ import annotations

import numpy as np

from symgraph.ops import elementwise as E
from symgraph.ops import reductions as R
from symgraph.ops.nn import LogSoftmax, Softmax
from symgraph.ops.shape import BroadcastTo, Reshape
from symgraph.types import is_float

from .rewrite import rewrite

FACTOR_LIMIT = 16


def _is_softmax(rw, n) -> bool:
    return type(rw.op(n)) is Softmax


def _one_plus(rw, n):
    """x when ``n`` is 1 + x or x + 1, else None."""
    if rw.isa(n, E.Add):
        a, b = rw.ins(n)
        if rw.has_value(a, 1):
            return b
        if rw.has_value(b, 1):
            return a
    return None


def _float_unary(rw, n, cls):
    """x when ``n``'s input is ``cls(x)`` with a float x, else None."""
    (y,) = rw.ins(n)
    if rw.isa(y, cls) and type(rw.op(y)) is not LogSoftmax:
        (x,) = rw.ins(y)
        if is_float(rw.dtype(x)):
            return x
    return None


@rewrite("stabilize", E.Log)
def stabilize_log_softmax(rw, n):
    """log(softmax(x)) -> log_softmax(x)"""
    (y,) = rw.ins(n)
    if _is_softmax(rw, y):
        return rw.make(LogSoftmax(axis=rw.op(y).axis), rw.ins(y)[0])


@rewrite("stabilize", E.Log)
def stabilize_log_sigmoid(rw, n):
    """log(sigmoid(x)) -> -softplus(-x)"""
    x = _float_unary(rw, n, E.Sigmoid)
    if x is not None:
        return rw.conform(rw.make(E.Negative(), rw.make(E.Softplus(), rw.make(E.Negative(), x))), n)


def _one_minus_sigmoid(rw, n):
    """x when ``n`` is 1 - sigmoid(x), else None."""
    if rw.isa(n, E.Subtract):
        a, b = rw.ins(n)
        if rw.has_value(a, 1) and rw.isa(b, E.Sigmoid):
            return rw.ins(b)[0]
    return None


@rewrite("stabilize", E.Log)
def stabilize_log_one_minus_sigmoid(rw, n):
    """log(1 - sigmoid(x)) -> -softplus(x)"""
    x = _one_minus_sigmoid(rw, rw.ins(n)[0])
    if x is not None and is_float(rw.dtype(x)):
        return rw.conform(rw.make(E.Negative(), rw.make(E.Softplus(), x)), n)


@rewrite("stabilize", E.Subtract)
def stabilize_one_minus_sigmoid(rw, n):
    """1 - sigmoid(x) -> sigmoid(-x) when nothing else needs sigmoid(x): as cheap, and
    accurate where sigmoid(x) rounds to 1 (1 - sigmoid(20) is 0 in float32)"""
    x = _one_minus_sigmoid(rw, n)
    if x is not None and len(rw.consumers(rw.ins(n)[1])) == 1:
        return rw.conform(rw.make(E.Sigmoid(), rw.make(E.Negative(), x)), n)


@rewrite("stabilize", E.Log, E.Log1p)
def stabilize_softplus(rw, n):
    """log(1 + exp(x)) -> softplus(x), and log1p(exp(x)) -> softplus(x)"""
    (y,) = rw.ins(n)
    e = y if rw.isa(n, E.Log1p) else _one_plus(rw, y)
    if e is not None and rw.isa(e, E.Exp) and is_float(rw.dtype(e)):
        return rw.conform(rw.make(E.Softplus(), rw.ins(e)[0]), n)


@rewrite("stabilize", E.Log)
def stabilize_log1p(rw, n):
    """log(1 + x) -> log1p(x)"""
    x = _one_plus(rw, rw.ins(n)[0])
    if x is not None and is_float(rw.dtype(x)):
        return rw.conform(rw.make(E.Log1p(), x), n)


@rewrite("stabilize", E.Subtract, E.Add)
def stabilize_expm1(rw, n):
    """exp(x) - 1 -> expm1(x), and exp(x) + (-1) -> expm1(x)"""
    a, b = rw.ins(n)
    minus_one = rw.has_value(b, 1) if rw.isa(n, E.Subtract) else rw.has_value(b, -1)
    if minus_one and rw.isa(a, E.Exp) and is_float(rw.dtype(a)):
        return rw.conform(rw.make(E.Expm1(), rw.ins(a)[0]), n)


# -- logsumexp and softmax ----------------------------------------------------------------
def _strip(rw, n):
    """(the node under a chain of reshapes/broadcasts, the chain's ops outermost first)"""
    chain = []
    while rw.isa(n, BroadcastTo, Reshape):
        chain.append(rw.op(n))
        n = rw.ins(n)[0]
    return n, chain


def _sum_of_exp(rw, s):
    """(x, axis) when ``s`` is sum(exp(x), axis=(axis,)), else None."""
    if not rw.isa(s, R.Sum) or len(rw.op(s).axes) != 1:
        return None
    (e,) = rw.ins(s)
    if rw.isa(e, E.Exp) and is_float(rw.dtype(e)):
        return e, rw.op(s).axes[0]
    return None


def _is_shifted(rw, x) -> bool:
    """Whether ``x`` is y - max(y) (what stabilize_logsumexp builds), so it never refires."""
    if not rw.isa(x, E.Subtract):
        return False
    m, _ = _strip(rw, rw.ins(x)[1])
    if rw.isa(m, E.Where):
        m = rw.ins(m)[1]
    return rw.isa(m, R.Max)


@rewrite("stabilize", E.Log)
def stabilize_logsumexp(rw, n):
    """log(sum(exp(x))) -> log(sum(exp(x - m))) + m with m = max(x) (0 where not finite)"""
    (s,) = rw.ins(n)
    if not rw.isa(s, R.Sum):
        return None
    (e,) = rw.ins(s)
    if not rw.isa(e, E.Exp) or not is_float(rw.dtype(e)):
        return None
    (x,) = rw.ins(e)
    op = rw.op(s)
    counts = [rw.shape(x)[a] for a in op.axes]
    if _is_shifted(rw, x) or not all(type(d) is int and d > 0 for d in counts):
        return None
    dt = rw.dtype(x)
    m = rw.make(R.Max(axes=op.axes, keepdims=True), x)
    m = rw.make(E.Where(), rw.make(E.IsFinite(), m), m, rw.constant(0, dt))
    shifted = rw.make(type(op)(axes=op.axes, keepdims=op.keepdims),
                      rw.make(E.Exp(), rw.make(E.Subtract(), x, m)))
    mm = m if rw.shape(m) == rw.shape(shifted) else rw.make(Reshape(shape=rw.shape(shifted)), m)
    return rw.conform(rw.make(E.Add(), rw.make(E.Log(), shifted), mm), n)


def _keeps_axis(rw, chain, inner, axis, full) -> bool:
    """Whether ``inner`` (of a sum over ``axis``), under the reshapes and broadcasts of
    ``chain``, meets a tensor of shape ``full`` as sum(..., keepdims=True) would: each
    element divides the elements of its own row, not of another axis."""
    keep = R.reduced_shape(full, (axis,), True)
    aligned = rw.shape(inner) == keep or (not chain and axis == 0)
    for op in reversed(chain):           # innermost first
        if isinstance(op, Reshape):
            if op.shape != keep:
                return False
            aligned = True
        elif not aligned or len(op.shape) != len(full):
            return False
    return aligned


@rewrite("stabilize", E.Divide)
def stabilize_softmax(rw, n):
    """exp(x) / sum(exp(x), axis, keepdims=True) -> softmax(x, axis)"""
    e, d = rw.ins(n)
    s, chain = _strip(rw, d)
    hit = _sum_of_exp(rw, s)
    if hit is not None and hit[0] == e and _keeps_axis(rw, chain, s, hit[1], rw.shape(e)):
        return rw.conform(rw.make(Softmax(axis=hit[1]), rw.ins(e)[0]), n)


@rewrite("stabilize", E.Multiply)
def stabilize_softmax_gradient(rw, n):
    """exp(x) * bcast(g / sum(exp(x), axis)) -> bcast(g) * softmax(x, axis): the vjp of a
    naive log(sum(exp(x))), which overflows to inf / inf where softmax does not"""
    p, q = rw.ins(n)
    for e, q in ((p, q), (q, p)):
        if not rw.isa(e, E.Exp):
            continue
        d, chain = _strip(rw, q)
        if not rw.isa(d, E.Divide):
            continue
        a, s = rw.ins(d)
        hit = _sum_of_exp(rw, s)
        if hit is None or hit[0] != e or rw.shape(d) != rw.shape(s) \
                or not _keeps_axis(rw, chain, d, hit[1], rw.shape(e)):
            continue
        g = rw.conform(a, d)
        for op in reversed(chain):
            g = rw.make(op, g)
        return rw.conform(rw.make(E.Multiply(), g, rw.make(Softmax(axis=hit[1]),
                                                           rw.ins(e)[0])), n)
    return None


# -- cancelling factors ---------------------------------------------------------------------
_POSITIVE = (E.Exp, E.Sigmoid)


def _factors(rw, n):
    """(numerator factors, denominator factors, sign) of the product tree at ``n``, looking
    through *, /, and negation of the same dtype; None when it has too many factors."""
    dt = rw.dtype(n)
    num, den, sign = [], [], 1
    stack = [(n, False)]
    while stack:
        m, inv = stack.pop()
        if len(num) + len(den) + len(stack) > FACTOR_LIMIT:
            return None
        if rw.dtype(m) == dt and rw.isa(m, E.Multiply, E.Divide, E.Negative):
            ins = rw.ins(m)
            if rw.isa(m, E.Negative):
                sign = -sign
                stack.append((ins[0], inv))
            else:
                stack.append((ins[1], inv ^ rw.isa(m, E.Divide)))
                stack.append((ins[0], inv))
        else:
            (den if inv else num).append(m)
    return num, den, sign


def _positive(rw, f) -> bool:
    """Whether ``f`` is positive in exact arithmetic but may round to 0 or overflow."""
    return rw.isa(f, *_POSITIVE) or _is_softmax(rw, f) or _one_minus_sigmoid(rw, f) is not None


@rewrite("stabilize", E.Multiply, E.Divide)
def cancel_positive_factors(rw, n):
    """(g / s) * s -> g for s = exp(..), sigmoid(..), 1 - sigmoid(..) or softmax(..), and
    (g / (1 + exp(x))) * exp(x) -> g * sigmoid(x).

    Exact wherever s is finite and nonzero; where s underflowed to 0 or overflowed the
    unoptimized graph gives nan and the rewrite gives the limit. Reassociates the product.
    """
    if not is_float(rw.dtype(n)):
        return None
    got = _factors(rw, n)
    if got is None:
        return None
    num, den, sign = got
    changed = False
    for d in list(den):
        if d in num and _positive(rw, d):
            num.remove(d)
            den.remove(d)
            changed = True
            continue
        e = _one_plus(rw, d)
        if e is not None and rw.isa(e, E.Exp) and e in num:
            num[num.index(e)] = rw.make(E.Sigmoid(), rw.ins(e)[0])
            den.remove(d)
            changed = True
    if not changed:
        return None
    out = _product(rw, num, rw.dtype(n))
    if den:
        out = rw.make(E.Divide(), out, _product(rw, den, rw.dtype(n)))
    if sign < 0:
        out = rw.make(E.Negative(), out)
    return rw.conform(out, n)


def _product(rw, factors, dtype):
    if not factors:
        return rw.constant(np.ones((), dtype))
    out = factors[0]
    for f in factors[1:]:
        out = rw.make(E.Multiply(), out, f)
    return out
