"""Horizontal fusion: sibling loop kernels that read the same inputs run as ONE loop.

The graph keeps one output per node; grouping happens at the schedule level. Two
kernels (Fused nodes, plain elementwise ops or reductions: everything lowered as a
Fused loop nest) join a group when they iterate over the same space, read at least
one common input and neither depends on the other. The code generator then emits
one loop nest that computes every member's value per element (with common
subexpressions computed once) and writes every member's output, so e.g. a loss and
its gradient over the same vector read it once and recompute tanh/exp once.

The memory plan treats a group as one step (all outputs live together, inputs die
after it), and the schedule is the program order with each group contracted to one
node; a group that would close a cycle through other groups is dissolved.
"""
from __future__ import annotations

from symgraph.ops import elementwise as E
from symgraph.ops import reductions as R
from symgraph.ops import shape as S
from symgraph.program import gc_paused

from .fused import Fused

REDUCE_KIND = {R.Sum: "sum", R.Prod: "prod", R.Max: "max", R.Min: "min"}
MAX_MEMBERS = 8      # a loop body with more outputs than this spills registers anyway


def as_fused(graph, nid):
    """The Fused loop that computes node ``nid`` (fused, elementwise, broadcast or
    reduction), or None when the node is lowered some other way."""
    op = graph.op(nid)
    if isinstance(op, Fused):
        return op
    t = graph.type(nid)
    if isinstance(op, E.Elementwise):
        n = len(graph.inputs(nid))
        return Fused(n_inputs=n, body=((op, tuple(range(n))),), dtypes=(t.dtype,),
                     space=t.shape)
    if isinstance(op, S.BroadcastTo):
        return Fused(n_inputs=1, body=(), dtypes=(), space=t.shape)
    kind = REDUCE_KIND.get(type(op))
    if kind is not None:
        (x,) = graph.inputs(nid)
        return Fused(n_inputs=1, body=(), dtypes=(), space=graph.type(x).shape,
                     reduce=kind, axes=op.axes, keepdims=op.keepdims)
    return None


def _joinable(graph, nid):
    f = as_fused(graph, nid)
    if f is None or not (f.body or f.reduce):
        return None             # a kernel that only copies (broadcast_to) gains nothing
    return f


@gc_paused()
def sibling_groups(program, order=None) -> dict:
    """nid -> tuple of the nids of its group (schedule order), for groups of two or more."""
    g = program.graph
    nodes = g.nx._node
    order = order or program.order()
    index = {n: k for k, n in enumerate(order)}
    groups: list = []                 # [members], members in schedule order
    readers: dict = {}                # (space, input) -> groups that read the input
    for nid in order:
        f = _joinable(g, nid)
        if f is None:
            continue
        ins = list(dict.fromkeys(nodes[nid]["inputs"]))
        space = tuple(f.space)
        home = None
        for i in ins:
            for grp in readers.get((space, i), ()):
                if len(grp) < MAX_MEMBERS and not _depends(nodes, nid, grp, index):
                    home = grp
                    break
            if home is not None:
                break
        if home is None:
            home = []
            groups.append(home)
        home.append(nid)
        for i in ins:
            lst = readers.setdefault((space, i), [])
            if home not in lst:
                lst.append(home)
    out = {}
    for grp in groups:
        if len(grp) > 1:
            t = tuple(grp)
            for m in t:
                out[m] = t
    return out


def _depends(nodes, nid, members, index) -> bool:
    """Whether ``nid`` reads (transitively) the value of any of ``members`` (at most
    MAX_MEMBERS), which all come earlier in the schedule, the first one first: a
    backward search bounded by the first member."""
    stack = list(nodes[nid]["inputs"])
    for i in stack:                 # a direct read is the common case: look there first
        if i in members:
            return True
    floor = index[members[0]]
    seen = set()
    while stack:
        i = stack.pop()
        if i in members:
            return True
        if i in seen or index.get(i, -1) < floor:
            continue
        seen.add(i)
        stack.extend(nodes[i]["inputs"])
    return False


def grouped_order(program, groups: dict, order=None):
    """(schedule, groups): the program order with each group's members adjacent, at the
    place of its last member's inputs; groups that would form a cycle are dissolved."""
    g = program.graph
    order = order or program.order()
    index = {n: k for k, n in enumerate(order)}
    groups = dict(groups)
    while True:
        sched, bad = _contract(g, order, index, groups)
        if bad is None:
            return sched, groups
        for m in groups[bad]:
            groups.pop(m, None)


def _contract(g, order, index, groups):
    """Kahn's algorithm over the contracted graph, ties broken by program order."""
    import heapq
    unit = {n: groups.get(n, (n,))[0] for n in order}
    members = {}
    for n in order:
        members.setdefault(unit[n], []).append(n)
    need = {u: 0 for u in members}
    users: dict = {}
    for u, ms in members.items():
        deps = {unit[i] for m in ms for i in g.inputs(m) if i in unit} - {u}
        need[u] = len(deps)
        for d in deps:
            users.setdefault(d, []).append(u)
    heap = [(index[u], u) for u, k in need.items() if k == 0]
    heapq.heapify(heap)
    sched = []
    while heap:
        _, u = heapq.heappop(heap)
        sched.extend(members[u])
        for v in users.get(u, ()):
            need[v] -= 1
            if need[v] == 0:
                heapq.heappush(heap, (index[v], v))
    if len(sched) == len(order):
        return sched, None
    stuck = [u for u, k in need.items() if k > 0 and u in groups]
    return None, min(stuck, key=index.__getitem__)
