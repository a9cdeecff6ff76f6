"""Leaves of a graph: placeholders, constants, shared variables, and runtime dim values."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .. import dims as D
from ..errors import DTypeError, InputError, ShapeError
from ..op import Op, apply_leaf
from ..types import TensorType, as_dtype, normalize_shape, fmt_shape


@dataclass(frozen=True, kw_only=True)
class Placeholder(Op):
    """An input of a compiled function. Never merged with another placeholder."""

    is_leaf = True

    def infer(self):
        raise TypeError("a placeholder has no inputs")


class ConstValue:
    """A read-only array that hashes by content, so constant ops are value objects."""

    __slots__ = ("array", "_hash")

    def __init__(self, array: np.ndarray):
        a = np.array(array, copy=True, order="C")
        a.flags.writeable = False
        self.array = a
        self._hash = None

    def __hash__(self):
        if self._hash is None:
            digest = hashlib.blake2b(self.array.tobytes(), digest_size=8).digest()
            self._hash = hash((self.array.dtype.str, self.array.shape, digest))
        return self._hash

    def __eq__(self, other):
        if not isinstance(other, ConstValue):
            return NotImplemented
        a, b = self.array, other.array
        return (a is b) or (a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes())

    def __repr__(self):
        a = self.array
        if a.size <= 6:
            return np.array2string(a, separator=", ").replace("\n", "")
        return f"array<{a.dtype}{list(a.shape)}>"


@dataclass(frozen=True, kw_only=True)
class Constant(Op):
    value: ConstValue

    def infer(self):
        return TensorType(self.value.array.dtype, self.value.array.shape)

    def reference(self):
        return self.value.array

    def vjp(self, inputs, output, g_out):
        return []


class SharedStorage:
    """The runtime home of a shared variable's value; dtype and shape are fixed."""

    __slots__ = ("value", "dtype", "shape", "name", "__weakref__")

    def __init__(self, value: np.ndarray, name):
        self.value = value
        self.dtype = value.dtype
        self.shape = value.shape
        self.name = name

    def set(self, value, *, borrow=False):
        arr = np.asarray(value)
        if arr.shape != self.shape:
            raise ShapeError(f"shared variable {self.name!r}: new value has shape {arr.shape}, "
                             f"expected {self.shape} (the compiled code is specialized to it)")
        if not np.can_cast(arr.dtype, self.dtype, casting="same_kind"):
            raise DTypeError(f"shared variable {self.name!r}: cannot store {arr.dtype} data "
                             f"into a {self.dtype} variable")
        if borrow and arr.dtype == self.dtype and arr.flags.c_contiguous and arr.flags.writeable:
            self.value = arr
        else:
            # np.array, not np.ascontiguousarray: the latter turns a 0-d value into 1-d
            self.value = np.array(arr, dtype=self.dtype, order="C", copy=True)

    def __repr__(self):
        return f"SharedStorage({self.name!r}, {self.dtype}{list(self.shape)})"


@dataclass(frozen=True, kw_only=True, eq=False)
class Shared(Op):
    """A shared variable; hashes by identity of its storage."""

    storage: SharedStorage
    is_leaf = True
    stateful = True

    def __eq__(self, other):
        return isinstance(other, Shared) and other.storage is self.storage

    def __hash__(self):
        return id(self.storage)

    def __str__(self):
        return "shared"


@dataclass(frozen=True, kw_only=True)
class DimValue(Op):
    """The runtime value of a (possibly symbolic) dim as a scalar, e.g. a mean's count."""

    dim: object
    dtype: np.dtype

    def infer(self):
        return TensorType(self.dtype, ())

    def reference(self):
        return np.asarray(self.dim, dtype=self.dtype)

    def vjp(self, inputs, output, g_out):
        return []


# -- constructors --------------------------------------------------------------------------
def placeholder(shape=(), dtype="float32", name=None, *, graph=None):
    """A symbolic input. In ``shape``, ``None`` is a fresh symbolic dim and a string
    names one (the same name means the same size).

    >>> x = sg.placeholder(shape=(None, 784), dtype="float32", name="x")
    """
    from ..graph import get_default_graph
    graph = graph or get_default_graph()
    dt = as_dtype(dtype, what=f"placeholder {name or ''}".strip())
    if isinstance(shape, (int, str)) or shape is None:
        shape = (shape,)
    dims = []
    label = name or f"p{graph._next_id}"
    for axis, d in enumerate(shape):
        if d is None:
            dims.append(D.SymDim.symbol(graph.fresh_symbol(f"{label}.{axis}")))
        elif isinstance(d, str):
            graph.note_symbol(d)
            dims.append(D.SymDim.symbol(d))
        elif isinstance(d, D.SymDim):
            if D.as_symbol(d) is None:
                raise ShapeError(f"placeholder {label}: dim {axis} is the derived dim {d}; "
                                 "a placeholder dim must be an int, None, or a named symbol")
            dims.append(d)
        else:
            d = D.normalize(d)
            if d < 0:
                raise ShapeError(f"placeholder {label}: dim {axis} is negative ({d})")
            dims.append(d)
    return apply_leaf(Placeholder(), TensorType(dt, tuple(dims)), graph=graph, name=name)


def _as_array(value, dtype=None):
    """Python data defaults to float32 / int64; numpy data keeps its dtype."""
    if isinstance(value, (np.ndarray, np.generic)):
        arr = np.asarray(value)
    else:
        arr = np.asarray(value)
        if dtype is None and arr.dtype == np.float64:
            arr = arr.astype(np.float32)
    if dtype is not None:
        arr = arr.astype(as_dtype(dtype))
    elif arr.dtype.kind == "u" or arr.dtype in (np.dtype("int8"), np.dtype("int16")):
        arr = arr.astype(np.int64)
    elif arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    as_dtype(arr.dtype, what="constant")
    return arr


def constant(value, dtype=None, name=None, *, graph=None):
    """A constant tensor; its value is part of the graph."""
    arr = _as_array(value, dtype)
    op = Constant(value=ConstValue(arr))
    return apply_leaf(op, op.infer(), graph=graph, name=name)


def is_python_scalar(value) -> bool:
    """A Python bool, int or float (numpy scalars subclass float but are strong)."""
    return isinstance(value, (bool, int, float)) and not isinstance(value, np.generic)


def _weak_array(value) -> np.ndarray:
    if isinstance(value, bool):
        return np.asarray(value)
    if isinstance(value, int):
        return np.asarray(value, dtype=np.int64)
    arr = np.asarray(value, dtype=np.float32)
    if np.isfinite(value) and float(arr) != value:  # keep precision; float64 still weak
        arr = np.asarray(value, dtype=np.float64)
    return arr


def weak_type(value) -> TensorType:
    """The type of a Python scalar before it meets a tensor."""
    return TensorType(_weak_array(value).dtype, (), weak=True)


def weak_constant(value, graph, dtype=None):
    """A Python scalar: its dtype adapts to the tensors it meets (NumPy 2 weak scalars).

    ``dtype`` is the dtype the consuming op computes in; the value is stored in it, so
    ``float32 * 0.1`` multiplies by float32(0.1) as numpy does, and an int that does not
    fit raises OverflowError as numpy does.
    """
    arr = _weak_array(value) if dtype is None else np.asarray(value, dtype=dtype)
    op = Constant(value=ConstValue(arr))
    return apply_leaf(op, TensorType(arr.dtype, (), weak=True), graph=graph)


def as_tensor(value, *, graph=None):
    from ..tensor import Tensor
    if isinstance(value, Tensor):
        return value
    if is_python_scalar(value):
        return weak_constant(value, graph)
    if isinstance(value, D.SymDim):
        return dim_value(value, graph=graph)
    try:
        return constant(value, graph=graph)
    except (TypeError, ValueError) as e:
        raise TypeError(f"cannot use {type(value).__name__} {value!r} as a tensor: {e}") from None


def shared(value, name=None, *, dtype=None, graph=None):
    """Trainable state: a value kept between calls, changed by ``updates``.

    >>> w = sg.shared(np.zeros((784, 10), np.float32), name="w")
    """
    arr = np.array(_as_array(value, dtype), order="C", copy=True)
    storage = SharedStorage(arr, name)
    return apply_leaf(Shared(storage=storage), TensorType(arr.dtype, arr.shape),
                      graph=graph, name=name)


def dim_value(dim, dtype="int64", *, graph=None):
    dt = as_dtype(dtype)
    if type(dim) is int:
        return constant(np.asarray(dim, dtype=dt), graph=graph)
    return apply_leaf(DimValue(dim=dim, dtype=dt), TensorType(dt, ()), graph=graph)
