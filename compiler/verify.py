"""The graph verifier: after every rewrite phase (in tests and debug mode) it re-derives
each node's type with ``op.infer`` and checks edges, argument order and acyclicity.

A rule that builds a node by hand, rewires the wrong argument or changes a dtype is
caught at the phase that did it, with the node, its op and the types in the message.
Turn it on with ``rewrites={"verify": True}`` or the environment variable SYMGRAPH_VERIFY=1.
"""
from __future__ import annotations

from symgraph.errors import GraphError, SymgraphError
from symgraph.ops.leaves import Placeholder, Shared
from symgraph.printing import format_node


class VerifyError(GraphError):
    pass


def verify(program, when: str = "") -> None:
    """Raise VerifyError naming the first node whose stored facts disagree with its op."""
    g = program.graph
    where = f" ({when})" if when else ""
    try:
        order = program.order()           # raises on a cycle
    except GraphError as e:
        raise VerifyError(f"verify{where}: {e}") from None
    for nid in list(program.inputs) + [s for s, _ in program.updates]:
        if nid not in g:
            raise VerifyError(f"verify{where}: input or shared variable %{nid} is missing")
    for nid in order:
        _check_node(g, nid, where)


def _check_node(g, nid, where):
    node = g.node(nid)
    op, ins = node["op"], node["inputs"]
    label = f"verify{where}: node {format_node(g, nid)}"
    for i in ins:
        if i not in g:
            raise VerifyError(f"{label} reads %{i}, which is not in the graph")
    preds = g.nx._pred[nid]
    if set(preds) != set(ins):
        raise VerifyError(f"{label}: its edges come from {sorted(preds)} but its inputs are "
                          f"{list(ins)} (edges must mirror the argument list)")
    for i, edge in preds.items():
        want = tuple(k for k, j in enumerate(ins) if j == i)
        if edge.get("positions") != want:
            raise VerifyError(f"{label}: the edge from %{i} says argument positions "
                              f"{edge.get('positions')}, the inputs say {want}")
    if isinstance(op, (Placeholder, Shared)):
        if ins:
            raise VerifyError(f"{label}: a leaf has inputs {list(ins)}")
        return
    types = [g.type(i) for i in ins]
    shown = ", ".join(str(t) for t in types)
    try:
        want = op.infer(*types)
        required = op.requires(*types)
    except (SymgraphError, TypeError, ValueError) as e:
        raise VerifyError(f"{label}: {op.name} refuses its inputs ({shown}) in this "
                          f"order: {e}") from None
    have = node["type"]
    if want.dtype != have.dtype or tuple(want.shape) != tuple(have.shape):
        raise VerifyError(f"{label}: stored type {have}, but {op.name}({shown}) is {want}")
    stored = {frozenset(p) for p in node.get("requires", ())}
    for p in required:
        if p[0] != p[1] and frozenset(p) not in stored:
            raise VerifyError(f"{label}: the call-time check {p[0]} == {p[1]} is missing")
