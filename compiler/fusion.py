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
    __slots__ = ("root", "space", "reduce", "members", "dups")

    def __init__(self, root, space, reduce=None):
        self.root = root
        self.space = space
        self.reduce = reduce        # the reduction op at the root, or None
        self.members = {root}
        self.dups: set = set()


class _View:
    """The unfused graph as fusion reads it: plain dict lookups (a pass over a
    10,000-node graph asks these questions a few hundred thousand times)."""

    def __init__(self, rw, order):
        self.nodes = rw.g.nx._node
        self.succ = rw.g.nx._succ
        self.roots = rw.roots
        self.index = {n: k for k, n in enumerate(order)}
        nodes = self.nodes
        self.elementwise = {n for n in order if isinstance(nodes[n]["op"], E.Elementwise)}
        self.cost_of: dict = {}

    def shape(self, n):
        return self.nodes[n]["type"].shape

    def cost(self, op) -> int:
        """0 for a TRIVIAL op, 1 for another CHEAP one, 2 for any other (kept per op
        class in ``cost_of``)."""
        got = self.cost_of[type(op)] = (0 if isinstance(op, TRIVIAL) else
                                        1 if isinstance(op, CHEAP) else 2)
        return got


def _reduction_input(v, n):
    """The elementwise input a reduction root can absorb, else None."""
    node = v.nodes[n]
    if type(node["op"]) not in REDUCERS:
        return None
    (x,) = node["inputs"]
    if (x in v.elementwise and x not in v.roots and set(v.succ[x]) == {n}
            and v.nodes[x]["type"].dtype == node["type"].dtype):
        return x
    return None


def _plan(v, order):
    """The groups, decided on the unfused graph (consumers before producers)."""
    group_of: dict = {}
    dup_of: dict = {}               # node -> groups that recompute it
    virtual: set = set()            # recomputed by every consumer, never stored
    groups = []
    nodes, succ, roots = v.nodes, v.succ, v.roots
    for r in reversed(order):
        if r in group_of:
            continue
        if r in dup_of:
            mine = dup_of[r]
            if r not in roots and all(
                    group_of.get(c) in mine or (c in virtual and dup_of[c] <= mine)
                    for c in succ[r]):
                virtual.add(r)
                continue
            for grp in dup_of.pop(r):
                grp.dups.discard(r)
        x = _reduction_input(v, r)
        if x is not None:
            grp = _Group(r, v.shape(x), reduce=nodes[r]["op"])
            start = [x]
        elif r in v.elementwise:
            grp = _Group(r, v.shape(r))
            start = list(nodes[r]["inputs"])
        else:
            continue
        group_of[r] = grp
        _grow(v, grp, start, group_of, dup_of)
        groups.append(grp)
    return groups


def _grow(v, grp, start, group_of, dup_of):
    """Absorb producers into ``grp``; recompute cheap shared ones (see DUP_DEPTH)."""
    # Highest topological index first: every consumer of a candidate is decided before it.
    # A candidate's state is (below a recomputed value, non-trivial ops recomputed above).
    nodes, succ, roots, index, ew = v.nodes, v.succ, v.roots, v.index, v.elementwise
    space, members, dups = grp.space, grp.members, grp.dups
    cost_of = v.cost_of
    state = {i: (False, 0) for i in start}
    heap = [(-index[i], i) for i in state]
    heapq.heapify(heap)
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        c = pop(heap)[1]
        if c in group_of or c not in ew or c in roots:
            continue
        node = nodes[c]
        if node["type"].shape != space:
            continue
        below, cost = state[c]
        kind = cost_of.get(type(node["op"]))
        if kind is None:
            kind = v.cost(node["op"])
        cost += kind > 0
        users = succ[c]
        if not below and all([group_of.get(d) is grp for d in users]):
            members.add(c)
            group_of[c] = grp
            st = (False, 0)
        elif kind < 2 and cost <= DUP_DEPTH and len(dups) < DUP_BUDGET and all(
                [d in ew and nodes[d]["type"].shape == space for d in users]):
            dups.add(c)
            mine = dup_of.get(c)
            if mine is None:
                dup_of[c] = {grp}
            else:
                mine.add(grp)
            st = (True, cost)
        else:
            continue
        for i in node["inputs"]:
            old = state.get(i)
            if old is None:
                state[i] = st
                push(heap, (-index[i], i))
            elif st < old:
                state[i] = st


def _needed(v, grp):
    """The group's instructions the kernel's value depends on, in no particular order."""
    nodes = v.nodes
    top = nodes[grp.root]["inputs"][0] if grp.reduce is not None else grp.root
    pool = grp.members | grp.dups
    need, stack = {top}, [top]
    while stack:
        for i in nodes[stack.pop()]["inputs"]:
            if i in pool and i not in need:
                need.add(i)
                stack.append(i)
    return need


def _body(v, instrs):
    """(kernel inputs, body, dtypes) of a group's instructions ``instrs`` (topological
    order)."""
    nodes = v.nodes
    pos, slot, consts = {}, {}, {}     # instruction -> body index, input -> its index
    inputs, body, dtypes = [], [], []
    for m in instrs:
        node = nodes[m]
        refs = []                       # body index j as j, kernel input k as -1 - k
        for i in node["inputs"]:
            j = pos.get(i)
            if j is None:
                src = nodes[i]
                if isinstance(src["op"], Constant) and src["type"].shape == ():
                    a = src["op"].value.array
                    key = (a.item(), a.dtype)
                    j = consts.get(key)
                    if j is None:
                        j = consts[key] = len(body)
                        body.append((ScalarConst(value=a.item(), dtype=a.dtype), ()))
                        dtypes.append(a.dtype)
                else:
                    k = slot.get(i)
                    if k is None:
                        k = slot[i] = len(inputs)
                        inputs.append(i)
                    j = -1 - k
            refs.append(j)
        pos[m] = len(body)
        body.append((node["op"], refs))
        dtypes.append(node["type"].dtype)
    k = len(inputs)
    final = tuple((op, tuple(j + k if j >= 0 else -1 - j for j in refs)) for op, refs in body)
    return inputs, final, tuple(np.dtype(d) for d in dtypes)


@graph_pass
def fuse_elementwise(rw):
    """Elementwise chains (and a reduction of one) -> one Fused kernel each"""
    made = 0
    order = rw.program.order()
    v = _View(rw, order)
    index = v.index
    for grp in sorted(_plan(v, order), key=lambda g: index[g.root]):
        need = _needed(v, grp)
        if grp.reduce is None and len(need) < 2:
            continue
        inputs, body, dtypes = _body(v, sorted(need, key=index.__getitem__))
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
