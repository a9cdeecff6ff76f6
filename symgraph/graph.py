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
        self._version = 0               # bumped by every edit through the methods below
        self._order = (None, [])        # (key, list) of the last topo_order

    # -- building --------------------------------------------------------------------
    def add_node(self, op, inputs, type_, *, name=None, source=None, requires=()) -> int:
        nid = self._next_id
        self._next_id += 1
        attrs = {"op": op, "type": type_, "inputs": tuple(inputs), "name": name, "source": source}
        if requires:
            attrs["requires"] = tuple(requires)
        self.insert(nid, attrs)
        return nid

    # Edits write networkx's own dicts (``_node``, ``_succ``, ``_pred``: the layout of
    # every nx.DiGraph) as nx.DiGraph.add_node/add_edge/remove_node would: a compile
    # edits the graph tens of thousands of times, and nx's methods cost several
    # microseconds per call in checks this class has already made.
    def insert(self, nid: int, attrs: dict) -> None:
        """Add node ``nid`` with ready-made attributes (e.g. copied from another graph;
        the dict is kept, not copied) and the edges that mirror its inputs; its inputs
        must already be in the graph."""
        self._version += 1
        g = self.nx
        if nid in g._node:
            g._node[nid].update(attrs)
        else:
            g._succ[nid] = {}
            g._pred[nid] = {}
            g._node[nid] = attrs
        self._link(nid)

    def set_inputs(self, nid: int, inputs) -> None:
        """Rewire node ``nid`` to new ``inputs``, keeping the edges in step."""
        self._version += 1
        succ, pred = self.nx._succ, self.nx._pred
        for i in pred[nid]:
            del succ[i][nid]
        pred[nid].clear()
        self.nx._node[nid]["inputs"] = tuple(inputs)
        self._link(nid)

    def remove_node(self, nid: int) -> None:
        """Delete node ``nid`` and its edges (its consumers must be rewired first)."""
        self._version += 1
        g = self.nx
        del g._node[nid]
        for c in g._succ.pop(nid):
            del g._pred[c][nid]
        for i in g._pred.pop(nid):
            del g._succ[i][nid]
        _clear_nx_cache(g)

    def _link(self, nid: int) -> None:
        """One edge per distinct input, listing the argument positions it feeds."""
        g = self.nx
        positions: dict = {}
        for k, i in enumerate(g._node[nid]["inputs"]):
            positions.setdefault(i, []).append(k)
        succ, mine = g._succ, g._pred[nid]
        for i, ks in positions.items():
            if i not in g._node:
                raise GraphError(f"node {nid}: input {i} is not in the graph")
            data = mine.get(i)
            if data is None:
                data = mine[i] = {}
            data["positions"] = tuple(ks)
            succ[i][nid] = data
        _clear_nx_cache(g)

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

        A depth-first walk, post-order, inputs in argument order. A compile asks for
        it a dozen times, mostly of an unchanged graph, so the last answer is kept
        until an edit through this class (or a change in the node count) voids it.
        """
        key = (self._version, len(self.nx._node), tuple(outputs))
        cached = self._order            # one read: another thread may replace it
        if cached[0] == key:
            return list(cached[1])
        order = self._walk(key[2])
        self._order = (key, order)
        return list(order)

    def _walk(self, outputs) -> list:
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


def _clear_nx_cache(g) -> None:
    """What networkx does after an edit: drop graphs converted for other backends."""
    cache = g.__dict__.get("__networkx_cache__")
    if cache:
        cache.clear()


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
