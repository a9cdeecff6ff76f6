"""What a rule is: a node rule made by ``@rewrite``, or a whole-graph pass.

A rule is a small function ``(rw, n) -> replacement id | None`` made a ``Rule`` by the
``@rewrite(group, *op_classes)`` decorator; the pipeline (pipeline.py) says which groups
run in which phase, and the driver (rewrite.py) applies them. A rule reads and builds
the graph only through ``rw`` (the Rewriter), which is how misses.py knows what it read.
"""
from __future__ import annotations

from typing import Callable, Optional


# Plain classes rather than frozen dataclasses: every cold compile imports the rule
# modules, and generating a frozen dataclass costs about a millisecond.
class Rule:
    """A node rule: ``fn(rw, n)`` returns the id of a node computing the same value, or None.
    ``ops``: the op classes it looks at (None: every node)."""

    __slots__ = ("name", "group", "ops", "fn", "doc")

    def __init__(self, name: str, group: str, ops: Optional[tuple], fn: Callable, doc: str):
        self.name, self.group, self.ops, self.fn, self.doc = name, group, ops, fn, doc

    def __call__(self, rw, n):
        return self.fn(rw, n)

    def __repr__(self):
        return f"Rule({self.name!r}, group={self.group!r})"


class GraphPass:
    """A whole-graph pass ``fn(rw) -> number of changes`` (fusion is one)."""

    __slots__ = ("name", "fn", "doc")

    def __init__(self, name: str, fn: Callable, doc: str):
        self.name, self.fn, self.doc = name, fn, doc

    def __repr__(self):
        return f"GraphPass({self.name!r})"


def _summary(fn) -> str:
    """The docstring's first paragraph on one line (it starts with the rewrite)."""
    text = (fn.__doc__ or "").strip()
    return " ".join(text.split("\n\n")[0].split()) if text else fn.__name__


def rewrite(group: str, *ops):
    """Make ``fn(rw, n)`` a Rule of ``group`` that runs on nodes whose op is one of ``ops``.

    >>> @rewrite("simplify", Multiply)
    ... def remove_multiply_by_one(rw, n):
    ...     '''x * 1 -> x'''
    """
    def deco(fn):
        return Rule(fn.__name__, group, tuple(ops) or None, fn, _summary(fn))
    return deco


def graph_pass(fn) -> GraphPass:
    return GraphPass(fn.__name__, fn, _summary(fn))
