"""The rewrite driver: a worklist that applies rules (rule.py) to a Program's graph.

The pipeline (pipeline.py) says which rule groups run in which phase. Replacing a node
rewires its consumers and the program's outputs, gives the nodes a rule created the
replaced node's source line, and deletes what became dead. Equal subexpressions are merged
by hash-consing, so a rule that builds a node which already exists gets the existing one.
Each node is revisited only when something it reads changed, which keeps a run
near-linear in the size of the graph (no whole-graph rescans per firing), and a rule
that found nothing at a node is skipped there until what it read changes (misses.py).
"""
from __future__ import annotations

import warnings
from collections import deque

import numpy as np

from symgraph.errors import SymgraphError
from symgraph.ops.elementwise import Cast
from symgraph.ops.leaves import Constant, ConstValue, Placeholder, Shared
from symgraph.ops.shape import BroadcastTo, Reshape, Transpose
from symgraph.printing import format_node
from symgraph.types import TensorType

from .misses import Misses
from .report import PhaseStats, RewriteReport  # noqa: F401  (re-exported)
from .rule import GraphPass, Rule, graph_pass, rewrite  # noqa: F401  (re-exported)

MERGE = "merge_common_subexpressions"
_VIEWS = (BroadcastTo, Reshape, Transpose)
DEAD = "remove_dead_nodes"


class RewriteError(SymgraphError):
    """A rule broke an invariant (changed a type, looped): a bug in the rule, named."""


class RewriteWarning(UserWarning):
    """A rule raised and was skipped (with ``verify`` on, the error is raised instead)."""


class _Key:
    """A hash-consing key ``(op, inputs, weak)`` that hashes once: the hash of a Fused
    op walks its whole body, and a key is looked up, stored and deleted."""

    __slots__ = ("parts", "hash")

    def __init__(self, parts: tuple):
        self.parts = parts
        self.hash = hash(parts)

    def __hash__(self):
        return self.hash

    def __eq__(self, other):
        return self.parts == other.parts


# -- the driver ----------------------------------------------------------------------------
def _rule_index(rules):
    """op class -> the rules that look at it (in pipeline order), resolved through the MRO."""
    cache: dict = {}

    def lookup(cls):
        got = cache.get(cls)
        if got is None:
            got = cache[cls] = [r for r in rules if r.ops is None or issubclass(cls, r.ops)]
        return got
    return lookup


class Rewriter:
    """Edits a Program's graph in place; rules read and build nodes through it."""

    # False tries every rule at every visit: the plain algorithm, which the tests
    # compare remembered misses against.
    remember_misses = True

    def __init__(self, program, options, report: RewriteReport):
        self.program = program
        self.g = program.graph
        self.options = options
        self.report = report
        self.merge = MERGE not in options.exclude
        self.table: dict = {}           # hash-consing key -> node id
        self.key_of: dict = {}
        self._uniform: dict = {}
        self._site = None               # the node being rewritten: new nodes get its source
        self._created: list = []
        self._queue: deque = deque()
        self._queued: set = set()
        self._nodes = self.g.nx._node   # networkx keeps these two dicts for the graph's life
        self._succ = self.g.nx._succ
        self.misses = Misses()
        self._changed = self.misses.changed     # every edit a rule could see goes through it
        self._reads: set = set()        # nodes read (inputs, consumers, root) since cleared
        self._builds = 0                # make/constant calls: a rule that builds is retried
        self.roots: dict = {}
        for n in program.roots:
            self.roots[n] = self.roots.get(n, 0) + 1

    # -- reading -------------------------------------------------------------------------
    # A node id's op and type never change; its inputs, consumers and root status do,
    # so the accessors of those note the node (see misses.py).
    def op(self, n):
        return self._nodes[n]["op"]

    def ins(self, n) -> tuple:
        self._reads.add(n)
        return self._nodes[n]["inputs"]

    def type(self, n) -> TensorType:
        return self._nodes[n]["type"]

    def dtype(self, n) -> np.dtype:
        return self._nodes[n]["type"].dtype

    def shape(self, n) -> tuple:
        return self._nodes[n]["type"].shape

    def consumers(self, n):
        self._reads.add(n)
        return self._succ[n]

    def is_root(self, n) -> bool:
        self._reads.add(n)
        return n in self.roots

    def isa(self, n, *classes) -> bool:
        return isinstance(self._nodes[n]["op"], classes)

    def uniform(self, n):
        """The one value every element of ``n`` has when ``n`` is a constant (possibly
        broadcast, reshaped or transposed); else None."""
        nodes = self._nodes
        op = nodes[n]["op"]
        while isinstance(op, _VIEWS):
            self._reads.add(n)
            n = nodes[n]["inputs"][0]
            op = nodes[n]["op"]
        if not isinstance(op, Constant):
            return None
        key = id(op.value)
        if key not in self._uniform:
            a = op.value.array
            v = None
            if a.size and (a.size == 1 or bool(np.all(a == a.flat[0]))):
                v = a.flat[0]
            self._uniform[key] = (v, op.value)  # keep the ConstValue alive with its id
        return self._uniform[key][0]

    def has_value(self, n, v) -> bool:
        u = self.uniform(n)
        return u is not None and u == v

    # -- building ------------------------------------------------------------------------
    def make(self, op, *ins, name=None) -> int:
        """The node ``op(*ins)``: an equal existing node, or a new one (type inferred)."""
        self._builds += 1
        types = [self.type(i) for i in ins]
        t = op.infer(*types)
        key = self._key_for(op, ins, t)
        hit = self.table.get(key) if self.merge else None
        if hit is not None and hit in self.g:
            return hit
        req = tuple(p for p in op.requires(*types) if p[0] != p[1])
        nid = self.g.add_node(op, ins, t, name=name, source=self._site_source(), requires=req)
        self._changed(ins)
        if key is not None:
            self.table[key] = nid
            self.key_of[nid] = key
        self._created.append(nid)
        self.push(nid)
        return nid

    def constant(self, value, dtype=None, *, weak=False) -> int:
        self._builds += 1
        arr = np.asarray(value, dtype=dtype)
        op = Constant(value=ConstValue(arr))
        t = TensorType(arr.dtype, arr.shape, weak)
        key = _Key((op, (), weak))
        hit = self.table.get(key) if self.merge else None
        if hit is not None and hit in self.g:
            return hit
        nid = self.g.add_node(op, (), t, source=self._site_source())
        self.table[key] = nid
        self.key_of[nid] = key
        self._created.append(nid)
        self.push(nid)
        return nid

    def fill(self, value, like) -> int:
        """``value`` broadcast to the type of node ``like``."""
        c = self.constant(value, self.dtype(like))
        shape = self.shape(like)
        return c if shape == () else self.make(BroadcastTo(shape=shape), c)

    def conform(self, x, like) -> int:
        """``x`` cast and broadcast to the dtype and shape of node ``like``."""
        want = self.type(like)
        if self.dtype(x) != want.dtype:
            x = self.make(Cast(dtype=want.dtype), x)
        if self.shape(x) != want.shape:
            x = self.make(BroadcastTo(shape=want.shape), x)
        return x

    def _site_source(self):
        site = self.g.nx._node.get(self._site)
        return site["source"] if site is not None else None

    @staticmethod
    def _key_for(op, ins, t):
        if op.is_leaf:
            return None
        if op.commutative and len(ins) == 2 and ins[0] > ins[1]:
            ins = (ins[1], ins[0])
        return _Key((op, tuple(ins), t.weak))

    # -- editing -------------------------------------------------------------------------
    def push(self, n) -> None:
        if n not in self._queued:
            self._queued.add(n)
            self._queue.append(n)

    def replace(self, n, r, why: str) -> None:
        """Every use of ``n`` (consumers, outputs, updates) now uses ``r``."""
        tn, tr = self.type(n), self.type(r)
        if tn.dtype != tr.dtype or tn.shape != tr.shape:
            raise RewriteError(f"rule {why} replaced {format_node(self.g, n)} by "
                               f"{format_node(self.g, r)}: the type changed")
        node, rnode = self.g.node(n), self.g.node(r)
        if r in self._created and not rnode["name"]:
            rnode["name"] = node["name"]
        self._add_requires(r, node.get("requires", ()))
        for c in list(self.consumers(n)):
            self._rewire(c, n, r)
        if n in self.roots:
            p = self.program
            p.outputs = [r if o == n else o for o in p.outputs]
            p.updates = [(s, r if v == n else v) for s, v in p.updates]
            self.roots[r] = self.roots.get(r, 0) + self.roots.pop(n)
            self._changed((n, r))
        self._kill(n, into=r)
        self.push(r)

    def _rewire(self, c, old, new) -> None:
        before = self._nodes[c]["inputs"]
        self.g.set_inputs(c, tuple(new if i == old else i for i in before))
        self._changed((c, new, *before))  # set_inputs re-adds every edge of c
        self._forget(c)
        self.push(c)

    def _add_requires(self, r, pairs) -> None:
        """Call-time size checks of removed nodes move to their replacement."""
        pairs = [p for p in pairs if p[0] != p[1]]
        if not pairs:
            return
        node = self.g.node(r)
        have = list(node.get("requires", ()))
        for p in pairs:
            if p not in have and (p[1], p[0]) not in have:
                have.append(p)
        node["requires"] = tuple(have)

    def _kill(self, n, into) -> None:
        """Delete ``n`` and whatever only it used, unless still needed."""
        nodes, succ, roots = self._nodes, self._succ, self.roots
        stack = [n]
        while stack:
            m = stack.pop()
            node = nodes.get(m)
            if (node is None or succ[m] or m in roots
                    or isinstance(node["op"], (Placeholder, Shared))):
                continue
            if into is not None and m != into and "requires" in node:
                self._add_requires(into, node["requires"])
            self._forget(m)
            ins = set(node["inputs"])
            self.g.remove_node(m)
            self._changed((m, *ins))
            if m != n:
                self.report.fired[DEAD] += 1
            stack.extend(ins)

    def _forget(self, m) -> None:
        """Drop ``m``'s hash-consing entry (its inputs change or it dies)."""
        key = self.key_of.pop(m, None)
        # with merging on, the table maps a node's key to it (see _visit_merge)
        if key is not None and (self.merge or self.table.get(key) == m):
            del self.table[key]

    # -- running -------------------------------------------------------------------------
    def _visit_merge(self, n) -> bool:
        key = self.key_of.get(n)
        # Already the representative (a rewire drops the key). With merging on, a node
        # keeps a key exactly while the table maps the key to it: no lookup needed.
        if key is not None and (self.merge or self.table.get(key) == n):
            return False
        key = self._key_for(self.op(n), self.ins(n), self.type(n))
        if key is None:
            return False
        hit = self.table.get(key)
        if self.merge and hit is not None and hit != n and hit in self.g:
            self.replace(n, hit, MERGE)
            self.report.fired[MERGE] += 1
            return True
        self.table[key] = n
        self.key_of[n] = key
        return False

    def run(self, rules) -> int:
        """Apply ``rules`` until none fires; returns the number of firings."""
        lookup = _rule_index([r for r in rules if r.name not in self.options.exclude])
        for n in self.program.order():
            self.push(n)
        fired, limit = 0, 50 * len(self.g) + 10_000
        queue, queued, nodes, succ = self._queue, self._queued, self._nodes, self._succ
        while queue:
            n = queue.popleft()
            queued.discard(n)
            if n not in nodes:
                continue
            if self._visit_merge(n):
                fired += 1
                continue
            if not succ[n] and n not in self.roots:
                self._kill(n, None)
                continue
            rule, r = self._first_match(n, lookup(type(nodes[n]["op"])))
            if rule is not None:
                self.replace(n, r, rule.name)
                self.report.fired[rule.name] += 1
                fired += 1
            if fired > limit:
                top = self.report.fired.most_common(3)
                raise RewriteError(f"rewriting does not converge after {fired} firings; "
                                   f"most frequent rules: {top}")
        return fired

    def _first_match(self, n, rules):
        """(the first of ``rules`` that rewrites ``n``, the replacement) or (None, None).
        Rules that missed at ``n`` before are skipped while what they read is unchanged."""
        if not rules:
            return None, None
        got = self.misses.lookup(n) if self.remember_misses else None
        if got is None:
            seen, quiet = set(), set()
        else:
            seen, quiet = got
            if quiet.issuperset(rules):
                return None, None
        tick = self.misses.tick
        self._reads = seen                  # the accessors add to it
        for rule in rules:
            if rule in quiet:
                continue
            builds = self._builds
            r, clean = self._try(rule, n)
            if r is not None:
                self.misses.forget(n)
                self._reads = set()
                return rule, r
            if clean and builds == self._builds:
                quiet.add(rule)
        self.misses.keep(n, tick, seen, quiet)
        self._reads = set()                 # reads outside rules are nobody's
        return None, None

    def _try(self, rule, n):
        """(replacement or None, whether the rule ran without raising)."""
        self._site = n
        created = self._created
        if created:
            created.clear()
        clean = True
        try:
            r = rule.fn(self, n)
        except Exception as e:  # a bug in the rule: skip it rather than fail the compile
            if self.options.verify:
                raise
            warnings.warn(f"rewrite {rule.name} failed on {format_node(self.g, n)} and was "
                          f"skipped: {type(e).__name__}: {e}", RewriteWarning, stacklevel=3)
            r, clean = None, False
        if r is None or r == n:
            for m in reversed(created):  # nodes built for nothing
                self._kill(m, None)
            return None, clean
        return r, clean

    def sweep(self) -> None:
        """Delete every node the outputs, updates and inputs do not need."""
        live = set(self.program.order()) | set(self.program.inputs)
        for n in [m for m in self.g.nx.nodes if m not in live]:
            self._forget(n)
            self.g.remove_node(n)
            self.report.fired[DEAD] += 1
