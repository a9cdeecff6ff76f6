"""One printed form of a graph, shared by debugprint, error messages and tests.

A node prints as ``%id name:dtype[shape]``; a subexpression used twice is printed
in full once and referred to by its id afterwards.
"""
from __future__ import annotations

import io
import sys


def node_label(graph, nid: int) -> str:
    node = graph.node(nid)
    t = node["type"]
    name = f" {node['name']}" if node["name"] else ""
    return f"%{nid}{name}:{t}"


def format_node(graph, nid: int) -> str:
    return f"{node_label(graph, nid)} = {graph.op(nid)}"


MAX_INDENT = 32


def _pad(depth: int) -> str:
    """Indentation for ``depth``; past MAX_INDENT levels the depth is written as a number
    so that a chain of n ops prints in O(n) characters, not O(n^2)."""
    if depth <= MAX_INDENT:
        return " |" * depth
    return " |" * MAX_INDENT + f"({depth})"


def format_tree(graph, roots, titles=None) -> str:
    """Indented tree of the graph below ``roots``; iterative, any depth."""
    out = io.StringIO()
    seen = set()
    for k, root in enumerate(roots):
        if titles:
            out.write(f"{titles[k]}\n")
        stack = [(root, 0)]
        while stack:
            nid, depth = stack.pop()
            pad = _pad(depth)
            ins = graph.inputs(nid)
            if nid in seen and ins:
                out.write(f"{pad}{node_label(graph, nid)} (printed above)\n")
                continue
            seen.add(nid)
            out.write(f"{pad}{format_node(graph, nid)}\n")
            for i in reversed(ins):
                stack.append((i, depth + 1))
    return out.getvalue()


def debugprint(obj, file=None, *, optimized: bool = True) -> str:
    """Print a tensor's graph, or a compiled function's (optimized) graph, as a tree.

    Returns the text as well, so tests and notebooks can use it.

    >>> sg.debugprint(loss)
    """
    from .tensor import Tensor
    if isinstance(obj, Tensor):
        text = format_tree(obj.graph, [obj.id])
    elif isinstance(obj, (list, tuple)) and obj and all(isinstance(t, Tensor) for t in obj):
        text = format_tree(obj[0].graph, [t.id for t in obj])
    elif hasattr(obj, "describe"):
        text = obj.describe(optimized=optimized)
    else:
        raise TypeError(f"debugprint takes a Tensor, a list of Tensors or a compiled function, "
                        f"got {type(obj).__name__}")
    (file or sys.stdout).write(text)
    return text
