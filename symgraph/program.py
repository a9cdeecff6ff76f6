"""Program: what ``sg.function`` hands to the compiler and the runtime.

It is a fresh Graph holding only the nodes the outputs and updates need, plus the
ids of the inputs, outputs and updates in it. The user's graph is never modified.
"""
from __future__ import annotations

import numpy as np

from .errors import GraphError, DTypeError, ShapeError
from .graph import Graph
from .op import format_source
from .ops.leaves import Placeholder, Shared
from .types import fmt_shape


class Program:
    # A plain class: a dataclass costs about a millisecond to create at import, a
    # visible share of a warm sg.function.
    def __init__(self, graph: Graph, inputs: list, outputs: list, updates: list,
                 source_ids: dict | None = None):
        self.graph = graph
        self.inputs = inputs            # placeholder node ids, in call order
        self.outputs = outputs          # node ids, in output order
        self.updates = updates          # (shared node id, new value node id)
        self.source_ids = source_ids if source_ids is not None else {}  # id -> user graph id

    def __repr__(self):
        return (f"Program(inputs={self.inputs}, outputs={self.outputs}, "
                f"updates={self.updates}, nodes={len(self.graph)})")

    @property
    def roots(self) -> list:
        return list(self.outputs) + [v for _, v in self.updates] + [s for s, _ in self.updates]

    def order(self) -> list:
        return self.graph.topo_order(self.roots)

    def requirements(self) -> list:
        """(dim, dim, node id) triples that must hold at call time."""
        out = []
        for nid in self.order():
            for a, b in self.graph.node(nid).get("requires", ()):
                out.append((a, b, nid))
        return out

    def shared_ids(self) -> list:
        return [nid for nid in self.order() if isinstance(self.graph.op(nid), Shared)]

    def copy(self) -> "Program":
        """A deep-enough copy for rewriting: a new graph with the same ids."""
        g = Graph(self.graph.name)
        order = self.order()
        unused = set(self.inputs) - set(order)  # inputs no output needs are still arguments
        for nid in order + [i for i in self.inputs if i in unused]:
            g.insert(nid, dict(self.graph.node(nid)))
        g._next_id = self.graph._next_id
        g._symbols = set(self.graph._symbols)
        return Program(g, list(self.inputs), list(self.outputs), list(self.updates),
                       dict(self.source_ids))


def build_program(inputs, outputs, updates) -> Program:
    """Extract the needed subgraph, checking inputs and updates with clear errors."""
    from .tensor import Tensor, SharedVariable
    for k, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"function: input {k} is a {type(t).__name__}, not a Tensor "
                            "(inputs are placeholders)")
    for s, _ in updates:
        if not isinstance(s, SharedVariable):
            raise GraphError(f"function: update target {s!r} is not a shared variable")
    graphs = {t.graph for t in inputs + outputs} | {t.graph for pair in updates for t in pair}
    if len(graphs) > 1:
        raise GraphError("function: inputs, outputs and updates come from different graphs")
    if not graphs:
        raise GraphError("function: nothing to compute (no outputs and no updates)")
    src = graphs.pop()

    seen_inputs = set()
    for k, t in enumerate(inputs):
        if isinstance(t, SharedVariable):
            raise GraphError(f"function: input {k} ({t.name!r}) is a shared variable; shared "
                             "variables are implicit inputs, do not list them")
        if not isinstance(t.op, Placeholder):
            raise GraphError(f"function: input {k} ({t!r}) is not a placeholder")
        if t.id in seen_inputs:
            raise GraphError(f"function: input {k} ({t.name or t.id}) is listed twice")
        seen_inputs.add(t.id)

    targets = set()
    for s, v in updates:
        if s.id in targets:
            raise GraphError(f"function: shared variable {s.name!r} is updated twice")
        targets.add(s.id)
        if tuple(v.shape) != tuple(s.shape):
            raise ShapeError(f"function: update of {s.name!r} has shape {fmt_shape(v.shape)}, "
                             f"the variable has {fmt_shape(s.shape)}")
        if not np.can_cast(v.dtype, s.dtype, casting="same_kind"):
            raise DTypeError(f"function: update of {s.name!r} is {v.dtype}, which cannot be "
                             f"stored in the {s.dtype} variable")

    roots = [t.id for t in outputs] + [v.id for _, v in updates]
    order = src.topo_order(roots)
    for nid in order:
        if isinstance(src.op(nid), Placeholder) and nid not in seen_inputs:
            label = src.node(nid)["name"] or f"%{nid}"
            raise GraphError(f"function: the outputs depend on placeholder {label!r} "
                             f"(created at {format_source(src.node(nid)['source'])}), "
                             "which is not among the inputs")

    g = Graph(src.name)
    for nid in order + [s for s in targets if s not in set(order)]:
        g.insert(nid, dict(src.node(nid)))
    for i in inputs:
        if i.id not in g:
            g.insert(i.id, dict(src.node(i.id)))
    g._next_id = src._next_id
    g._symbols = set(src._symbols)
    prog = Program(g, [t.id for t in inputs], [t.id for t in outputs],
                   [(s.id, v.id) for s, v in updates])
    prog.source_ids = {nid: nid for nid in g.nx.nodes}
    return prog
