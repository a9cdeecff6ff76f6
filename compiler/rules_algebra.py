"""Algebraic rules on elementwise ops: identities, negations, casts, comparisons, where.

Every rule here is exact in IEEE arithmetic unless its docstring says otherwise. The
ones that are only true for finite values (``x * 0 -> 0``, ``x - x -> 0``, inverted
float comparisons) fire on integers always and on floats only with
``rewrites={"finite_math": True}``: by default an inf or nan in the input still shows
in the output, as it does without rewriting. ``x + 0 -> x`` maps -0.0 to -0.0 where
IEEE gives +0.0; the two compare equal.
"""
from __future__ import annotations

import numpy as np

from symgraph.ops import elementwise as E
from symgraph.ops.leaves import Constant
from symgraph.ops.shape import BroadcastTo, Reshape
from symgraph.types import is_float

from .rewrite import rewrite
from .rules_shape import expanded_source


def _operands(rw, n):
    """(a, b) and, for a commutative op, also (b, a)."""
    a, b = rw.ins(n)
    return ((a, b), (b, a)) if rw.op(n).commutative else ((a, b),)


def _finite(rw, *nodes) -> bool:
    """Whether the values of ``nodes`` may be assumed finite (ints always are)."""
    return rw.options.finite_math or not any(is_float(rw.dtype(x)) for x in nodes)


# -- negation (canonical forms) ------------------------------------------------------------
@rewrite("canonicalize", E.Negative)
def remove_double_negation(rw, n):
    """-(-x) -> x"""
    (x,) = rw.ins(n)
    if rw.isa(x, E.Negative):
        return rw.conform(rw.ins(x)[0], n)


@rewrite("canonicalize", E.Subtract)
def canonicalize_subtract_negative(rw, n):
    """x - (-y) -> x + y"""
    x, y = rw.ins(n)
    if rw.isa(y, E.Negative):
        return rw.conform(rw.make(E.Add(), x, rw.ins(y)[0]), n)


@rewrite("canonicalize", E.Add)
def canonicalize_add_negative(rw, n):
    """x + (-y) -> x - y and (-x) + y -> y - x"""
    for a, b in _operands(rw, n):
        if rw.isa(b, E.Negative):
            return rw.conform(rw.make(E.Subtract(), a, rw.ins(b)[0]), n)


@rewrite("canonicalize", E.Multiply)
def canonicalize_multiply_by_minus_one(rw, n):
    """x * -1 -> -x"""
    for a, b in _operands(rw, n):
        if rw.has_value(b, -1) and rw.dtype(a) != np.dtype(bool):
            return rw.conform(rw.make(E.Negative(), a), n)


@rewrite("canonicalize", E.Multiply, E.Divide)
def remove_negations_in_product(rw, n):
    """(-x) * (-y) -> x * y and (-x) / (-y) -> x / y"""
    x, y = rw.ins(n)
    if rw.isa(x, E.Negative) and rw.isa(y, E.Negative):
        return rw.conform(rw.make(rw.op(n), rw.ins(x)[0], rw.ins(y)[0]), n)


# -- identities ---------------------------------------------------------------------------
@rewrite("simplify", E.Multiply)
def remove_multiply_by_one(rw, n):
    """x * 1 -> x and 1 * x -> x (also ones_like(...) and broadcast ones)"""
    for a, b in _operands(rw, n):
        if rw.has_value(b, 1):
            return rw.conform(a, n)


@rewrite("simplify", E.Add)
def remove_add_zero(rw, n):
    """x + 0 -> x and 0 + x -> x (also zeros_like(...) and broadcast zeros)"""
    for a, b in _operands(rw, n):
        if rw.has_value(b, 0):
            return rw.conform(a, n)


@rewrite("simplify", E.Subtract)
def remove_subtract_zero(rw, n):
    """x - 0 -> x and 0 - x -> -x"""
    x, y = rw.ins(n)
    if rw.has_value(y, 0):
        return rw.conform(x, n)
    if rw.has_value(x, 0) and rw.dtype(y) != np.dtype(bool):
        return rw.conform(rw.make(E.Negative(), y), n)


@rewrite("simplify", E.Divide)
def remove_divide_by_one(rw, n):
    """x / 1 -> x"""
    x, y = rw.ins(n)
    if rw.has_value(y, 1):
        return rw.conform(x, n)


@rewrite("simplify", E.Multiply)
def fold_multiply_by_zero(rw, n):
    """x * 0 -> 0 for finite x (integers; floats with finite_math, as inf * 0 is nan)"""
    for a, b in _operands(rw, n):
        if rw.has_value(b, 0) and _finite(rw, a):
            return rw.fill(0, n)


@rewrite("simplify", E.Subtract)
def fold_subtract_self(rw, n):
    """x - x -> 0 for finite x (integers; floats with finite_math, as inf - inf is nan)"""
    x, y = rw.ins(n)
    if x == y and _finite(rw, x):
        return rw.fill(0, n)


@rewrite("simplify", E.Binary)
def remove_idempotent_self(rw, n):
    """op(x, x) -> x for an idempotent op (maximum, minimum, logical and/or)"""
    x, y = rw.ins(n)
    if x == y and rw.op(n).idempotent:
        return rw.conform(x, n)


@rewrite("simplify", E.Multiply, E.Add, E.Maximum, E.Minimum)
def combine_constants(rw, n):
    """(x op c1) op c2 -> x op (c1 op c2) for an associative, commutative op.

    For + and * in floating point this reassociates: the result may differ in the last
    bit from the unoptimized graph.
    """
    op = rw.op(n)
    for m, c2 in _operands(rw, n):
        if not (_scalar_constant(rw, c2) and type(rw.op(m)) is type(op)):
            continue
        for x, c1 in _operands(rw, m):
            if _scalar_constant(rw, c1) and rw.dtype(c1) == rw.dtype(c2) == rw.dtype(n):
                v = np.asarray(op.reference(rw.op(c1).value.array, rw.op(c2).value.array))
                return rw.conform(rw.make(op, x, rw.constant(v.astype(rw.dtype(n)))), n)


def _scalar_constant(rw, n) -> bool:
    return rw.isa(n, Constant) and rw.shape(n) == ()


# -- products: negations and constants out, common factors ------------------------------
@rewrite("canonicalize", E.Multiply, E.Divide)
def move_negation_out_of_product(rw, n):
    """(-x) * y -> -(x * y), x * (-y) -> -(x * y), and the same for / (exact: rounding
    is symmetric), so that an outer + or - absorbs the negation"""
    x, y = rw.ins(n)
    nx, ny = rw.isa(x, E.Negative), rw.isa(y, E.Negative)
    if nx != ny and is_float(rw.dtype(n)) and rw.dtype(x) == rw.dtype(y) == rw.dtype(n):
        inner = rw.make(rw.op(n), rw.ins(x)[0] if nx else x, rw.ins(y)[0] if ny else y)
        return rw.conform(rw.make(E.Negative(), inner), n)


@rewrite("simplify", E.Multiply)
def move_constant_out_of_product(rw, n):
    """(c * x) * y -> c * (x * y) for a scalar constant c and a non-constant y, so that
    combine_constants meets the constants of a chain of products (gradients build
    ``(2 * t) * u * 1.5``). Reassociates: the result may differ in the last bit."""
    for m, y in _operands(rw, n):
        if (not rw.isa(m, E.Multiply) or _scalar_constant(rw, y) or rw.isa(y, Constant)
                or len(rw.consumers(m)) != 1):
            continue
        for c, x in _operands(rw, m):
            if _scalar_constant(rw, c) and not rw.isa(x, Constant) \
                    and rw.dtype(c) == rw.dtype(x) == rw.dtype(y) == rw.dtype(n):
                return rw.conform(rw.make(E.Multiply(), c, rw.make(E.Multiply(), x, y)), n)


@rewrite("specialize", E.Add, E.Subtract)
def factor_common_multiplicand(rw, n):
    """a * b + a * c -> a * (b + c) and a * b - a * c -> a * (b - c): one product less
    (one of the products must have no other use). Not bit-exact (the rounding moves),
    and never worse where a * b and a * c nearly cancel. A specialization: it runs after
    stabilization, whose rules look for the products (the softmax cross-entropy
    gradient's (g / s) * s)."""
    p, q = rw.ins(n)
    if not (rw.isa(p, E.Multiply) and rw.isa(q, E.Multiply) and is_float(rw.dtype(n))):
        return None
    if len(rw.consumers(p)) > 1 and len(rw.consumers(q)) > 1:
        return None
    for a, b in _operands(rw, p):
        for a2, c in _operands(rw, q):
            if a == a2 and rw.dtype(b) == rw.dtype(c) == rw.dtype(a) == rw.dtype(n):
                return rw.conform(rw.make(E.Multiply(), a, rw.make(rw.op(n), b, c)), n)


@rewrite("simplify", E.Subtract)
def simplify_product_with_complement(rw, n):
    """x * (1 - y) - x -> -(x * y) and x - x * (1 - y) -> x * y: exact in real
    arithmetic, and free of the cancellation of the left side (as in the gradient
    s * (1 - s) - s of e^-x * sigmoid(x))"""
    left, right = rw.ins(n)
    for prod, x, sign in ((left, right, -1), (right, left, 1)):
        if not rw.isa(prod, E.Multiply) or not is_float(rw.dtype(n)):
            continue
        for a, comp in _operands(rw, prod):
            if a != x or not rw.isa(comp, E.Subtract):
                continue
            one, y = rw.ins(comp)
            if rw.has_value(one, 1) and rw.dtype(y) == rw.dtype(x) == rw.dtype(n):
                xy = rw.make(E.Multiply(), x, y)
                return rw.conform(xy if sign > 0 else rw.make(E.Negative(), xy), n)


# -- exp and log ----------------------------------------------------------------------------
@rewrite("simplify", E.Exp)
def simplify_exp_of_log(rw, n):
    """exp(log(x)) -> where(x >= 0, x, nan): exact, including log's domain (x < 0 -> nan)"""
    (y,) = rw.ins(n)
    if not rw.isa(y, E.Log):
        return None
    (x,) = rw.ins(y)
    if not is_float(rw.dtype(x)):
        return None
    dt = rw.dtype(x)
    ok = rw.make(E.GreaterEqual(), x, rw.constant(0, dt))
    return rw.conform(rw.make(E.Where(), ok, x, rw.constant(np.nan, dt)), n)


@rewrite("simplify", E.Log)
def simplify_log_of_exp(rw, n):
    """log(exp(x)) -> x. Where exp overflows (x > 88 in float32) or underflows, the
    unoptimized graph gives +-inf and the rewrite gives x, the exact answer."""
    (y,) = rw.ins(n)
    if rw.isa(y, E.Exp) and is_float(rw.dtype(rw.ins(y)[0])):
        return rw.conform(rw.ins(y)[0], n)


# -- casts ----------------------------------------------------------------------------------
_LOSSLESS = {("float32", "float64"), ("int32", "int64"), ("int32", "float64")}


def _lossless(src, dst) -> bool:
    return src == dst or src == np.dtype(bool) or (str(src), str(dst)) in _LOSSLESS


@rewrite("simplify", E.Cast)
def remove_cast_to_same_dtype(rw, n):
    """cast(x, x.dtype) -> x"""
    (x,) = rw.ins(n)
    if rw.dtype(x) == rw.dtype(n):
        return x


@rewrite("simplify", E.Cast)
def merge_lossless_casts(rw, n):
    """cast(cast(x, wider), t) -> cast(x, t) when the first cast loses nothing"""
    (y,) = rw.ins(n)
    if rw.isa(y, E.Cast):
        (x,) = rw.ins(y)
        if _lossless(rw.dtype(x), rw.dtype(y)):
            return rw.conform(x, n)


# -- comparisons and where ----------------------------------------------------------------
_INVERSE = {E.Less: E.GreaterEqual, E.GreaterEqual: E.Less, E.Greater: E.LessEqual,
            E.LessEqual: E.Greater}
_MIRROR = {E.Less: E.Greater, E.Greater: E.Less, E.LessEqual: E.GreaterEqual,
           E.GreaterEqual: E.LessEqual, E.Equal: E.Equal, E.NotEqual: E.NotEqual}


@rewrite("simplify", E.LogicalNot)
def remove_double_logical_not(rw, n):
    """not(not(c)) -> c"""
    (y,) = rw.ins(n)
    if rw.isa(y, E.LogicalNot):
        return rw.conform(rw.ins(y)[0], n)


@rewrite("simplify", E.LogicalNot)
def invert_negated_comparison(rw, n):
    """not(a == b) -> a != b (and back); not(a < b) -> a >= b for finite a, b (with a
    nan both comparisons are false)"""
    (y,) = rw.ins(n)
    cls = type(rw.op(y))
    if cls is E.Equal or cls is E.NotEqual:
        flip = E.NotEqual if cls is E.Equal else E.Equal
        return rw.make(flip(), *rw.ins(y))
    if cls in _INVERSE and _finite(rw, *rw.ins(y)):
        return rw.make(_INVERSE[cls](), *rw.ins(y))


@rewrite("simplify", *_MIRROR)
def remove_negations_in_comparison(rw, n):
    """(-a) < (-b) -> a > b (floats; for integers -INT_MIN overflows)"""
    a, b = rw.ins(n)
    if rw.isa(a, E.Negative) and rw.isa(b, E.Negative) and is_float(rw.dtype(a)) \
            and rw.dtype(a) == rw.dtype(b):
        return rw.make(_MIRROR[type(rw.op(n))](), rw.ins(a)[0], rw.ins(b)[0])


@rewrite("simplify", E.Where)
def fold_where_constant_condition(rw, n):
    """where(True, x, y) -> x, where(False, x, y) -> y, where(c, x, x) -> x"""
    c, x, y = rw.ins(n)
    if x == y:
        return rw.conform(x, n)
    v = rw.uniform(c)
    if v is not None:
        return rw.conform(x if v else y, n)


@rewrite("simplify", E.Where)
def swap_where_negated_condition(rw, n):
    """where(not c, x, y) -> where(c, y, x)"""
    c, x, y = rw.ins(n)
    if rw.isa(c, E.LogicalNot):
        return rw.conform(rw.make(E.Where(), rw.ins(c)[0], y, x), n)


# -- broadcasts into consumers ------------------------------------------------------------
def _unexpanded(rw, i):
    """The source of a broadcast_to, or of a reshape that only prepends size-1 dims."""
    if rw.isa(i, BroadcastTo):
        return rw.ins(i)[0]
    return expanded_source(rw, i)


@rewrite("simplify", E.Elementwise)
def remove_broadcast_into_elementwise(rw, n):
    """f(broadcast_to(x, s), y) -> f(x, y) when the result keeps its shape: the
    elementwise op broadcasts by itself (a fill of a scalar becomes the scalar)."""
    op = rw.op(n)
    ins = list(rw.ins(n))
    want = rw.type(n)
    changed = False
    for k, i in enumerate(ins):
        if not rw.isa(i, BroadcastTo, Reshape):  # the common case, decided cheaply
            continue
        src = _unexpanded(rw, i)
        if src is None:
            continue
        trial = ins[:k] + [src] + ins[k + 1:]
        t = op.infer(*(rw.type(j) for j in trial))
        if t.dtype == want.dtype and t.shape == want.shape:
            ins, changed = trial, True
    return rw.make(op, *ins) if changed else None


# -- powers ---------------------------------------------------------------------------------
@rewrite("specialize", E.Power)
def specialize_power(rw, n):
    """x**2 -> square(x), x**0.5 -> sqrt(x), x**1 -> x, x**-1 -> 1/x, x**0 -> 1.

    sqrt differs from pow(x, 0.5) only at -0.0 (sqrt gives -0.0) and -inf (nan, not inf).
    """
    x, y = rw.ins(n)
    v = rw.uniform(y)
    if v is None or rw.dtype(x) != rw.dtype(n):
        return None
    if v == 0:
        return rw.fill(1, n)
    if v == 1:
        return rw.conform(x, n)
    if v == 2:
        return rw.conform(rw.make(E.Square(), x), n)
    if is_float(rw.dtype(n)) and v == 0.5:
        return rw.conform(rw.make(E.Sqrt(), x), n)
    if is_float(rw.dtype(n)) and v == -1:
        return rw.conform(rw.make(E.Reciprocal(), x), n)
    return None
