"""Tensor: the user's handle on one graph node, with numpy-named operators and methods."""
from __future__ import annotations

import numpy as np


class Tensor:
    """A symbolic array: node ``id`` of ``graph``. It has no value until compiled and called."""

    __slots__ = ("graph", "id", "__weakref__")
    __array_priority__ = 1000  # numpy defers to our reflected operators
    __array_ufunc__ = None     # ... and refuses np.exp(t): sg.exp(t) is the symbolic one
    __hash__ = object.__hash__  # one handle per node (Graph.tensor), so identity is node identity

    def __init__(self, graph, nid: int):
        self.graph = graph
        self.id = nid

    # -- metadata --------------------------------------------------------------------
    @property
    def type(self):
        return self.graph.type(self.id)

    @property
    def dtype(self) -> np.dtype:
        return self.type.dtype

    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def ndim(self) -> int:
        return len(self.type.shape)

    @property
    def name(self):
        return self.graph.node(self.id)["name"]

    @property
    def op(self):
        return self.graph.op(self.id)

    @property
    def inputs(self) -> list:
        return [self.graph.tensor(i) for i in self.graph.inputs(self.id)]

    def __repr__(self) -> str:
        from .printing import node_label
        return f"<Tensor {node_label(self.graph, self.id)}>"

    def __bool__(self):
        raise TypeError("the truth value of a symbolic Tensor is unknown until the graph runs; "
                        "use sg.where(...) for a data-dependent choice")

    def __len__(self):
        d = self.shape[0] if self.shape else None
        if type(d) is int:
            return d
        raise TypeError("len() of a Tensor needs a static first dim; use .shape[0]")

    def __array__(self, *args, **kwargs):
        raise TypeError("a symbolic Tensor has no value until the graph runs; use sg.* "
                        "functions on it, and call a compiled function to get arrays")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} does not take symbolic Tensors; use the "
                        f"symgraph function (e.g. sg.{func.__name__}) instead")

    def __iter__(self):
        raise TypeError("a symbolic Tensor is not iterable; index it explicitly")

    def __index__(self):
        raise TypeError("a symbolic Tensor cannot be used as a Python int")

    def __float__(self):
        raise TypeError("a symbolic Tensor has no value until the graph runs")

    __int__ = __float__

    # -- arithmetic ------------------------------------------------------------------
    def __add__(self, o): return _ops().add(self, o)
    def __radd__(self, o): return _ops().add(o, self)
    def __sub__(self, o): return _ops().subtract(self, o)
    def __rsub__(self, o): return _ops().subtract(o, self)
    def __mul__(self, o): return _ops().multiply(self, o)
    def __rmul__(self, o): return _ops().multiply(o, self)
    def __truediv__(self, o): return _ops().divide(self, o)
    def __rtruediv__(self, o): return _ops().divide(o, self)
    def __pow__(self, o): return _ops().power(self, o)
    def __rpow__(self, o): return _ops().power(o, self)
    def __matmul__(self, o): return _ops().matmul(self, o)
    def __rmatmul__(self, o): return _ops().matmul(o, self)
    def __neg__(self): return _ops().negative(self)
    def __pos__(self): return self
    def __abs__(self): return _ops().abs(self)
    def __invert__(self): return _ops().logical_not(self)
    def __and__(self, o): return _ops().logical_and(self, o)
    def __rand__(self, o): return _ops().logical_and(o, self)
    def __or__(self, o): return _ops().logical_or(self, o)
    def __ror__(self, o): return _ops().logical_or(o, self)
    def __lt__(self, o): return _ops().less(self, o)
    def __le__(self, o): return _ops().less_equal(self, o)
    def __gt__(self, o): return _ops().greater(self, o)
    def __ge__(self, o): return _ops().greater_equal(self, o)
    def __eq__(self, o): return _ops().equal(self, o)
    def __ne__(self, o): return _ops().not_equal(self, o)
    def __getitem__(self, key): return _ops().getitem(self, key)

    # -- numpy-named methods ---------------------------------------------------------
    @property
    def T(self): return _ops().transpose(self)

    def sum(self, axis=None, keepdims=False): return _ops().sum(self, axis=axis, keepdims=keepdims)
    def mean(self, axis=None, keepdims=False): return _ops().mean(self, axis=axis, keepdims=keepdims)
    def max(self, axis=None, keepdims=False): return _ops().max(self, axis=axis, keepdims=keepdims)
    def min(self, axis=None, keepdims=False): return _ops().min(self, axis=axis, keepdims=keepdims)
    def prod(self, axis=None, keepdims=False): return _ops().prod(self, axis=axis, keepdims=keepdims)
    def var(self, axis=None, keepdims=False, ddof=0):
        return _ops().var(self, axis=axis, keepdims=keepdims, ddof=ddof)
    def std(self, axis=None, keepdims=False, ddof=0):
        return _ops().std(self, axis=axis, keepdims=keepdims, ddof=ddof)
    def argmax(self, axis=None, keepdims=False): return _ops().argmax(self, axis=axis, keepdims=keepdims)
    def argmin(self, axis=None, keepdims=False): return _ops().argmin(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return _ops().reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = axes[0]
        return _ops().transpose(self, axes or None)

    def astype(self, dtype): return _ops().cast(self, dtype)
    def flatten(self): return _ops().reshape(self, (-1,))
    def squeeze(self, axis=None): return _ops().squeeze(self, axis=axis)
    def dot(self, o): return _ops().dot(self, o)
    def clip(self, lo, hi): return _ops().clip(self, lo, hi)
    def exp(self): return _ops().exp(self)
    def log(self): return _ops().log(self)
    def tanh(self): return _ops().tanh(self)
    def sqrt(self): return _ops().sqrt(self)
    def square(self): return _ops().square(self)
    def sigmoid(self): return _ops().sigmoid(self)
    def relu(self): return _ops().relu(self)


def _ops():
    from . import api
    return api


class SharedVariable(Tensor):
    """A graph leaf whose value lives between calls and which ``updates`` change in place."""

    __slots__ = ()

    @property
    def storage(self):
        return self.op.storage

    def get_value(self, borrow: bool = False) -> np.ndarray:
        v = self.storage.value
        return v if borrow else v.copy()

    def set_value(self, value, borrow: bool = False) -> None:
        self.storage.set(value, borrow=borrow)


def handle_class(op):
    return SharedVariable if op.stateful else Tensor
