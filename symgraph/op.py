"""The op contract and ``apply``, the one way a node enters a graph.

An op is a small frozen value object: its parameters are keyword-only fields, and it
defines a shape/dtype rule (``infer``), its numpy reference semantics
(``reference``), and its gradient rule (``vjp``) written with public symgraph ops.
Lowering to native code lives in the compiler, keyed by op class.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from . import dims as D
from .errors import GradientError, GraphError, ShapeError, DTypeError, SymgraphError
from .graph import get_default_graph
from .tensor import Tensor
from .types import TensorType

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


_NAMES: dict = {}


@dataclass(frozen=True)
class Op:
    """Base of all ops. Subclasses are ``@dataclass(frozen=True, kw_only=True)``."""

    # Algebraic properties consulted by rewrites and fusion.
    elementwise: ClassVar[bool] = False
    commutative: ClassVar[bool] = False
    associative: ClassVar[bool] = False
    idempotent: ClassVar[bool] = False
    # False: the op is piecewise constant (argmax, comparisons, integer casts);
    # a gradient through it is zero, as in the peers.
    differentiable: ClassVar[bool] = True
    # Leaves (placeholders, shared variables) have no inputs and no reference value.
    is_leaf: ClassVar[bool] = False
    # The value lives between calls (shared variables): never folded or merged by value.
    stateful: ClassVar[bool] = False

    @property
    def name(self) -> str:
        cls = type(self)
        n = _NAMES.get(cls)
        if n is None:  # snake_case of the class name, computed once per class
            n = _NAMES[cls] = "".join("_" + c.lower() if c.isupper() else c
                                      for c in cls.__name__).lstrip("_")
        return n

    def params(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __str__(self) -> str:
        ps = ", ".join(f"{k}={_fmt_param(v)}" for k, v in self.params().items())
        return f"{self.name}{{{ps}}}" if ps else self.name

    # -- the contract ---------------------------------------------------------------
    def infer(self, *types: TensorType) -> TensorType:
        raise NotImplementedError(type(self).__name__ + ".infer")

    def requires(self, *types: TensorType) -> list:
        """Pairs of dims that must be equal at call time (symbolic broadcasting)."""
        return []

    def reference(self, *xs: np.ndarray) -> np.ndarray:
        raise NotImplementedError(type(self).__name__ + ".reference")

    def weak_dtype(self, *types: TensorType):
        """The dtype Python scalar arguments take (None: their own, float32/int64/bool).
        Elementwise ops answer the promoted dtype of their inputs, as numpy's ufuncs do."""
        return None

    def vjp(self, inputs, output, g_out):
        """One cotangent (a Tensor, or None for zero) per input."""
        raise GradientError(f"{self.name} has no gradient rule")

    def bind(self, env) -> "Op":
        """This op with every symbolic dim in its parameters replaced by its value."""
        changes = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            b = _bind_value(v, env)
            if b is not v:
                changes[f.name] = b
        return dataclasses.replace(self, **changes) if changes else self

    @property
    def is_symbolic(self) -> bool:
        return any(_has_symbol(getattr(self, f.name)) for f in dataclasses.fields(self))


def _bind_value(v, env):
    if isinstance(v, D.SymDim):
        return D.evaluate(v, env)
    if isinstance(v, tuple) and any(_has_symbol(x) for x in v):
        return tuple(_bind_value(x, env) for x in v)
    return v


def _has_symbol(v) -> bool:
    if isinstance(v, D.SymDim):
        return True
    if isinstance(v, tuple):
        return any(_has_symbol(x) for x in v)
    return False


def _fmt_param(v) -> str:
    if isinstance(v, np.dtype):
        return str(v)
    if isinstance(v, tuple):
        return "(" + ", ".join(_fmt_param(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return str(v) if isinstance(v, D.SymDim) else repr(v)


# -- source lines ---------------------------------------------------------------------
def user_source():
    """(file, line) of the innermost frame outside symgraph: where the user built the node."""
    f = sys._getframe(1)
    while f is not None:
        fn = f.f_code.co_filename
        if not fn.startswith(_PACKAGE_DIR):
            return (fn, f.f_lineno)
        f = f.f_back
    return None


def format_source(source) -> str:
    if not source:
        return "<unknown>"
    return f"{source[0]}:{source[1]}"


# -- apply -----------------------------------------------------------------------------
def _graph_of(op, args):
    """The graph of the tensor arguments (the default graph when there are none);
    a ``with Graph()`` block decides where leaves go, an op goes where its inputs are."""
    g, first = None, None
    for k, a in enumerate(args):
        ag = getattr(a, "graph", None)
        if ag is None:
            continue
        if g is None:
            g, first = ag, k
        elif ag is not g:
            from .printing import node_label
            raise GraphError(
                f"{op.name}: argument {k} ({node_label(ag, a.id)}) belongs to {ag!r} but "
                f"argument {first} ({node_label(g, args[first].id)}) belongs to {g!r}; "
                f"tensors of two graphs cannot be combined (node created at "
                f"{format_source(user_source())})")
    return g if g is not None else get_default_graph()


def apply(op: Op, *args, name: str | None = None):
    """Add ``op(*args)`` to the graph of its tensor arguments and return its Tensor.

    Python scalars and numpy arrays among ``args`` become constants. Shape and dtype
    errors name the op and the user's source line.
    """
    graph = _graph_of(op, args)
    ids = [a.id if isinstance(a, Tensor) else None for a in args]
    if None in ids:
        ids = _constant_ids(op, graph, args, ids)
    types = [graph.type(i) for i in ids]
    source = user_source()
    try:
        out_type = op.infer(*types)
        requires = op.requires(*types)
    except SymgraphError as e:
        from .printing import node_label
        shown = ", ".join(f"{k}: {node_label(graph, i)}" for k, i in enumerate(ids))
        raise type(e)(f"{e}\n  arguments: {shown}\n  (node created at "
                      f"{format_source(source)})") from None
    nid = graph.add_node(op, ids, out_type, name=name, source=source, requires=requires)
    return graph.tensor(nid)


def _constant_ids(op, graph, args, ids):
    """Node ids for ``args`` where the non-tensors become constants. Python scalars are
    made last, in the dtype ``op.weak_dtype`` says the op computes in."""
    from .ops.leaves import as_tensor, is_python_scalar, weak_constant, weak_type
    ids = [i if i is not None or is_python_scalar(a) else as_tensor(a, graph=graph).id
           for a, i in zip(args, ids)]
    types = [graph.type(i) if i is not None else weak_type(a) for a, i in zip(args, ids)]
    dtype = op.weak_dtype(*types)
    return [i if i is not None else weak_constant(a, graph, dtype).id
            for a, i in zip(args, ids)]


def apply_leaf(op: Op, type_: TensorType, *, graph=None, name=None):
    graph = graph or get_default_graph()
    nid = graph.add_node(op, (), type_, name=name, source=user_source())
    return graph.tensor(nid)
