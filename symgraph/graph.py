"""The graph: a networkx DiGraph whose nodes are op applications with one output.

Each node's attribute dict holds ``op``, ``type`` (a TensorType), ``inputs`` (the
ordered tuple of input node ids; an id may repeat, as in ``x * x``), ``name``,
``source`` (the user's file and line that created it) and, when broadcasting or
matching left sizes that must agree at call time, ``requires``. Edges mirror the
inputs so networkx algorithms (ancestors, drawing, topological sort) work as is;
an edge's ``positions`` attribute lists the argument positions it feeds, so ``x * x``
is one edge with ``positions=(0, 1)`` and the argument order is visible in networkx too.
"""
from __future__ import annotations

import itertools
import threading

import networkx as nx

from .errors import GraphError
from .tensor import handle_class

_graph_ids = itertools.count()


class Graph:
    """A symbolic computation graph. ``with sg.Graph() as g:`` makes it the default."""

    def __init__(self, name: str | None = None):
        self.nx = nx.DiGraph()
        self.name = name
        self.uid = next(_graph_ids)
        self._next_id = 0
        self._handles: dict = {}
        self._symbols: set = set()

    # -- building --------------------------------------------------------------------
    def add_node(self, op, inputs, type_, *, name=None, source=None, requires=()) -> int:
        nid = self._next_id
        self._next_id += 1
        attrs = {"op": op, "type": type_, "inputs": tuple(inputs), "name": name, "source": source}
        if requires:
            attrs["requires"] = tuple(requires)
        self.insert(nid, attrs)
        return nid

    def insert(self, nid: int, attrs: dict) -> None:
        """Add node ``nid`` with ready-made attributes (e.g. copied from another graph)
        and the edges that mirror its inputs; its inputs must already be in the graph."""
        self.nx.add_node(nid, **attrs)
        self._link(nid)

    def set_inputs(self, nid: int, inputs) -> None:
        """Rewire node ``nid`` to new ``inputs``, keeping the edges in step."""
        for i in list(self.nx.pred[nid]):
            self.nx.remove_edge(i, nid)
        self.nx._node[nid]["inputs"] = tuple(inputs)
        self._link(nid)

    def _link(self, nid: int) -> None:
        """One edge per distinct input, listing the argument positions it feeds."""
        positions: dict = {}
        for k, i in enumerate(self.nx._node[nid]["inputs"]):
            positions.setdefault(i, []).append(k)
        for i, ks in positions.items():
            if i not in self.nx._node:
                raise GraphError(f"node {nid}: input {i} is not in the graph")
            self.nx.add_edge(i, nid, positions=tuple(ks))

    def fresh_symbol(self, hint: str) -> str:
        """A symbol name unused in this graph, for a ``None`` dim."""
        name, k = hint, 1
        while name in self._symbols:
            k += 1
            name = f"{hint}#{k}"
        self._symbols.add(name)
        return name

    def note_symbol(self, name: str) -> None:
        self._symbols.add(name)

    # -- reading ---------------------------------------------------------------------
    def node(self, nid: int) -> dict:
        return self.nx._node[nid]

    def op(self, nid: int):
        return self.nx._node[nid]["op"]

    def type(self, nid: int):
        return self.nx._node[nid]["type"]

    def inputs(self, nid: int) -> tuple:
        return self.nx._node[nid]["inputs"]

    def consumers(self, nid: int):
        return self.nx._succ[nid]

    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    def __contains__(self, nid) -> bool:
        return nid in self.nx._node

    def tensor(self, nid: int):
        """The handle of node ``nid`` (one handle per node, so it can key dicts)."""
        h = self._handles.get(nid)
        if h is None:
            h = handle_class(self.op(nid))(self, nid)
            self._handles[nid] = h
        return h

    def topo_order(self, outputs) -> list:
        """Ancestors of ``outputs`` (ids), inputs before consumers; iterative, O(V + E).

        A depth-first walk, post-order, inputs in argument order. It runs several times
        per compile (every rewrite phase starts from it), so the inner loop is kept to
        a set lookup per edge.
        """
        nodes = self.nx._node
        order, done, active = [], set(), set()
        for root in outputs:
            if root in done:
                continue
            active.add(root)
            stack = [(root, iter(nodes[root]["inputs"]))]
            while stack:
                nid, pending = stack[-1]
                for child in pending:
                    if child in done:
                        continue
                    if child in active:
                        raise GraphError(f"the graph has a cycle through node {child}")
                    active.add(child)
                    stack.append((child, iter(nodes[child]["inputs"])))
                    break
                else:
                    stack.pop()
                    active.discard(nid)
                    done.add(nid)
                    order.append(nid)
        return order

    # -- default graph -----------------------------------------------------------------
    def __enter__(self) -> "Graph":
        _stack().append(self)
        return self

    def __exit__(self, *exc) -> None:
        _stack().pop()

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"<symgraph.Graph{label} with {len(self)} nodes>"


_local = threading.local()


def _stack() -> list:
    s = getattr(_local, "stack", None)
    if s is None:
        s = _local.stack = []
    return s


_default = None


def get_default_graph() -> Graph:
    """The innermost ``with Graph()`` of this thread, else the process-wide default."""
    global _default
    s = _stack()
    if s:
        return s[-1]
    if _default is None:
        _default = Graph("default")
    return _default


def reset_default_graph() -> Graph:
    """Start a fresh process-wide default graph (the old one stays valid for its tensors)."""
    global _default
    _default = Graph("default")
    return _default
