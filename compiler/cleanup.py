"""Cleanup rules: constant folding and canonical constants.

Dead-code removal and the merge of identical subexpressions (hash-consing, with the
operands of commutative ops sorted) are done by the driver itself (rewrite.py) and are
reported as ``remove_dead_nodes`` and ``merge_common_subexpressions``.
"""
from __future__ import annotations

import numpy as np

from symgraph.ops.elementwise import Elementwise, StopGradient
from symgraph.ops.leaves import Constant
from symgraph.ops.shape import BroadcastTo
from symgraph.types import result_dtype

from .rewrite import rewrite

# Never fold into a constant larger than this many elements ...
FOLD_LIMIT = 1 << 20
# ... nor one larger than its largest input, unless it is this small: a broadcast
# (or an outer product of two vectors) is cheap to compute and costly to store.
FOLD_SMALL = 16


@rewrite("cleanup")
def fold_constants(rw, n):
    """op(constants...) -> constant, computed with the op's reference semantics.

    Not folded: ops with symbolic parameters, broadcasts, results that fail to compute
    (the error is left for run time), and results much larger than the inputs (see
    FOLD_SMALL). A result whose elements are all equal stays a broadcast scalar.
    """
    ins = rw.ins(n)
    if not ins:
        return None
    for i in ins:               # a loop, not all(...): this rule sees every node
        if not rw.isa(i, Constant):
            return None
    op = rw.op(n)
    if op.is_symbolic or isinstance(op, BroadcastTo):
        return None
    t = rw.type(n)
    if not t.is_static:
        return None
    size = int(np.prod(t.shape))
    biggest = max(int(np.prod(rw.shape(i))) for i in ins)
    if size > FOLD_LIMIT or (size > biggest and size > FOLD_SMALL):
        return None
    try:
        with np.errstate(all="ignore"):
            value = np.asarray(op.reference(*(rw.op(i).value.array for i in ins)))
    except (ValueError, ArithmeticError, IndexError, TypeError):
        return None
    if value.shape != t.shape:
        return None
    value = value.astype(t.dtype)
    if value.size > 1 and np.all(value == value.flat[0]):  # keep a fill a broadcast scalar
        return rw.make(BroadcastTo(shape=t.shape), rw.constant(value.flat[0], weak=t.weak))
    return rw.constant(value, weak=t.weak)


@rewrite("canonicalize", Elementwise)
def canonicalize_weak_constants(rw, n):
    """x + 2.0 (a weak Python scalar) -> x + float32(2.0): constants get the op's dtype.

    This is the dtype weak typing computes in, so values only change by the rounding of
    the constant to that dtype (the reference executor would otherwise compute in the
    scalar's own precision and round the result). Integer constants must fit exactly.
    """
    ins = rw.ins(n)
    types = [rw.type(i) for i in ins]
    weak = [t.weak for t in types]
    if not any(weak) or all(weak) or not any(w and rw.isa(i, Constant)
                                             for i, w in zip(ins, weak)):
        return None
    dt = result_dtype(*types)
    new = []
    for i, t in zip(ins, types):
        if t.weak and rw.isa(i, Constant):
            v = rw.op(i).value.array
            cast = v.astype(dt)
            if dt.kind in "iub" and not np.array_equal(cast.astype(v.dtype), v):
                return None
            i = rw.constant(cast)
        new.append(i)
    op = rw.op(n)
    want = rw.type(n)
    got = op.infer(*(rw.type(i) for i in new))
    if (got.dtype, got.shape) != (want.dtype, want.shape):
        return None
    return rw.make(op, *new)


@rewrite("canonicalize", StopGradient)
def remove_stop_gradient(rw, n):
    """stop_gradient(x) -> x: gradients are built before compiling, so it is the identity."""
    return rw.ins(n)[0]
