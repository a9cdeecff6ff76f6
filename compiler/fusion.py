"""Fusion: group elementwise chains, and the reduction that consumes one, into Fused kernels.

Groups grow from a root (an elementwise node whose value must be stored, or a reduction)
towards its inputs. A producer joins when it iterates over the same space and all its
consumers are in the group; then its value never reaches memory. A producer also read
outside the group is stored, and read by the kernels that need it, unless it is cheaper
to recompute than to store and reload (CHEAP: arithmetic, compares, casts and the
vectorized exp/log/tanh/sigmoid family) and every consumer is an elementwise node of its
shape: then each consuming kernel recomputes it and it is never stored. GEMMs, reshapes,
transposes and broadcasts are not elementwise, so nothing fuses across them.
"""
from __future__ import annotations

import heapq

import numpy as np

from symgraph.errors import SymgraphError
from symgraph.ops import elementwise as E
from symgraph.ops import reductions as R
from symgraph.ops.leaves import Constant

from .fused import Fused, ScalarConst
from .rewrite import graph_pass

# Recomputing these in every kernel that needs them beats storing and re-reading
# them: the code generator's vector math (compiler/vecmath.py) costs a few
# nanoseconds per element at most, a round trip through memory costs more.
TRIVIAL = (E.Add, E.Subtract, E.Multiply, E.Negative, E.Cast, E.Abs, E.Maximum, E.Minimum,
           E.Less, E.LessEqual, E.Greater, E.GreaterEqual, E.Equal, E.NotEqual, E.Where,
           E.Square, E.Relu, E.LogicalNot, E.LogicalAnd, E.LogicalOr, E.Sign, E.Clip)
CHEAP = TRIVIAL + (E.Exp, E.Tanh, E.Sigmoid, E.Log, E.Log1p, E.Expm1, E.Softplus, E.Sqrt,
                   E.Reciprocal, E.Divide)
DUP_DEPTH = 3     # at most this many non-trivial ops deep below a recomputed value ...
DUP_BUDGET = 32   # ... and at most this many recomputed instructions per kernel
REDUCERS = {R.Sum: "sum", R.Prod: "prod", R.Max: "max", R.Min: "min"}


class _Group:
    def __init__(self, root, space, reduce=None):
        self.root = root
        self.space = space
        self.reduce = reduce        # the reduction op at the root, or None
        self.members = {root}
        self.dups: set = set()


def _elementwise(rw, n) -> bool:
    return isinstance(rw.op(n), E.Elementwise)


def _reduction_input(rw, n):
    """The elementwise input a reduction root can absorb, else None."""
    if type(rw.op(n)) not in REDUCERS:
        return None
    (x,) = rw.ins(n)
    if (_elementwise(rw, x) and not rw.is_root(x) and set(rw.consumers(x)) == {n}
            and rw.dtype(x) == rw.dtype(n)):
        return x
    return None


def _plan(rw, index):
    """The groups, decided on the unfused graph (consumers before producers)."""
    order = sorted(index, key=index.__getitem__)
    group_of: dict = {}
    dup_of: dict = {}               # node -> groups that recompute it
    virtual: set = set()            # recomputed by every consumer, never stored
    groups = []
    for r in reversed(order):
        if r in group_of:
            continue
        if r in dup_of:
            mine = dup_of[r]
            if not rw.is_root(r) and all(
                    group_of.get(c) in mine or (c in virtual and dup_of[c] <= mine)
                    for c in rw.consumers(r)):
                virtual.add(r)
                continue
            for grp in dup_of.pop(r):
                grp.dups.discard(r)
        x = _reduction_input(rw, r)
        if x is not None:
            grp = _Group(r, rw.shape(x), reduce=rw.op(r))
            start = [x]
        elif _elementwise(rw, r):
            grp = _Group(r, rw.shape(r))
            start = list(rw.ins(r))
        else:
            continue
        group_of[r] = grp
        _grow(rw, grp, start, index, group_of, dup_of)
        groups.append(grp)
    return groups


def _grow(rw, grp, start, index, group_of, dup_of):
    """Absorb producers into ``grp``; recompute cheap shared ones (see DUP_DEPTH)."""
    # Highest topological index first: every consumer of a candidate is decided before it.
    # A candidate's state is (below a recomputed value, non-trivial ops recomputed above).
    state = {i: (False, 0) for i in start}
    heap = [(-index[i], i) for i in state]
    heapq.heapify(heap)

    def push(i, st):
        if i not in state:
            state[i] = st
            heapq.heappush(heap, (-index[i], i))
        else:
            state[i] = min(state[i], st)

    while heap:
        _, c = heapq.heappop(heap)
        if c in group_of or not _elementwise(rw, c) or rw.shape(c) != grp.space \
                or rw.is_root(c):
            continue
        below, cost = state[c]
        op = rw.op(c)
        cost += not isinstance(op, TRIVIAL)
        if not below and all(group_of.get(d) is grp for d in rw.consumers(c)):
            grp.members.add(c)
            group_of[c] = grp
            for i in rw.ins(c):
                push(i, (False, 0))
        elif isinstance(op, CHEAP) and cost <= DUP_DEPTH and len(grp.dups) < DUP_BUDGET and all(
                _elementwise(rw, d) and rw.shape(d) == grp.space for d in rw.consumers(c)):
            grp.dups.add(c)
            dup_of.setdefault(c, set()).add(grp)
            for i in rw.ins(c):
                push(i, (True, cost))


def _needed(rw, grp):
    """The group's instructions the kernel's value depends on, in no particular order."""
    top = rw.ins(grp.root)[0] if grp.reduce is not None else grp.root
    pool = grp.members | grp.dups
    need, stack = {top}, [top]
    while stack:
        for i in rw.ins(stack.pop()):
            if i in pool and i not in need:
                need.add(i)
                stack.append(i)
    return need


def _body(rw, grp, index):
    """(kernel inputs, body, dtypes) of a group; instructions in topological order."""
    instrs = sorted(_needed(rw, grp), key=index.__getitem__)
    pos, inputs, body, dtypes, consts = {}, [], [], [], {}

    def ref(i):
        if i in pos:
            return ("body", pos[i])
        if rw.isa(i, Constant) and rw.shape(i) == ():
            v = rw.op(i).value.array
            key = (v.item(), v.dtype)
            if key not in consts:
                consts[key] = len(body)
                body.append((ScalarConst(value=v.item(), dtype=v.dtype), ()))
                dtypes.append(v.dtype)
            return ("body", consts[key])
        if i not in inputs:
            inputs.append(i)
        return ("in", inputs.index(i))

    for m in instrs:
        args = tuple(ref(i) for i in rw.ins(m))
        pos[m] = len(body)
        body.append((rw.op(m), args))
        dtypes.append(rw.dtype(m))
    k = len(inputs)
    final = tuple((op, tuple(j if kind == "in" else k + j for kind, j in args))
                  for op, args in body)
    return inputs, final, tuple(np.dtype(d) for d in dtypes)


@graph_pass
def fuse_elementwise(rw):
    """Elementwise chains (and a reduction of one) -> one Fused kernel each"""
    made = 0
    index = {n: k for k, n in enumerate(rw.program.order())}
    groups = _plan(rw, index)
    for grp in sorted(groups, key=lambda g: index[g.root]):
        if grp.reduce is None and len(_needed(rw, grp)) < 2:
            continue
        inputs, body, dtypes = _body(rw, grp, index)
        red = grp.reduce
        op = Fused(n_inputs=len(inputs), body=body, dtypes=dtypes, space=grp.space,
                   reduce=REDUCERS[type(red)] if red is not None else None,
                   axes=red.axes if red is not None else (),
                   keepdims=red.keepdims if red is not None else False)
        rw._site = grp.root
        try:
            f = rw.make(op, *inputs)
        except SymgraphError:
            continue                # e.g. two symbolic dims that must agree: leave unfused
        rw.replace(grp.root, f, "fuse_elementwise")
        made += 1
    return made


def kernel_counts(program) -> dict:
    """How many loops the optimized program runs: fused kernels, unfused elementwise
    ops and reductions, and matrix products."""
    from symgraph.ops.conv import Conv2d, Conv2dGradInput, Conv2dGradWeight
    from symgraph.ops.linalg import MatMul
    g = program.graph
    fused = elementwise = reductions = gemm = 0
    for n in program.order():
        op = g.op(n)
        if isinstance(op, Fused):
            fused += 1
        elif isinstance(op, E.Elementwise):
            elementwise += 1
        elif type(op) in REDUCERS:
            reductions += 1
        elif isinstance(op, (MatMul, Conv2d, Conv2dGradInput, Conv2dGradWeight)):
            gemm += 1
    return {"fused": fused, "elementwise": elementwise, "reductions": reductions,
            "loops": fused + elementwise + reductions, "gemm": gemm}
