"""Tensor types: a dtype and a shape of static or symbolic dims.

Broadcasting is decided statically, as in PyTensor: a dim broadcasts only when its
static size is 1. Two dims that are not known to be equal must agree at call time;
that requirement is returned to the caller as a pair of dims for the runtime to check.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from . import dims as D
from .errors import ShapeError, DTypeError

SUPPORTED_DTYPES = tuple(np.dtype(t) for t in ("float32", "float64", "int32", "int64", "bool"))
FLOAT_DTYPES = (np.dtype("float32"), np.dtype("float64"))
DEFAULT_FLOAT = np.dtype("float32")
DEFAULT_INT = np.dtype("int64")


def as_dtype(dtype, *, what: str = "dtype") -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise DTypeError(f"{what}: {dtype!r} is not a dtype") from None
    if dt not in SUPPORTED_DTYPES:
        names = ", ".join(str(t) for t in SUPPORTED_DTYPES)
        raise DTypeError(f"{what}: dtype {dt} is not supported (supported: {names})")
    return dt


def is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


def is_int(dtype) -> bool:
    return np.dtype(dtype).kind in "iu"


@dataclass(frozen=True)
class TensorType:
    """``weak`` marks a type that came from a Python scalar: it adapts to the
    dtype of the tensors it meets (NumPy 2 / JAX weak typing)."""

    dtype: np.dtype
    shape: tuple
    weak: bool = False

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return all(type(d) is int for d in self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"

    def with_dtype(self, dtype) -> "TensorType":
        return TensorType(np.dtype(dtype), self.shape)

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, tuple(shape), self.weak)


def result_dtype(*types: TensorType) -> np.dtype:
    """NumPy 2 promotion with weak Python scalars; all-weak floats default to float32."""
    if types and all(not t.weak and t.dtype == types[0].dtype for t in types):
        return types[0].dtype
    return _promote(tuple((t.dtype, t.weak) for t in types))


@functools.lru_cache(maxsize=None)
def _promote(key) -> np.dtype:
    """result_dtype over (dtype, weak) pairs: a tiny domain, and np.result_type is slow."""
    strong = [dt for dt, weak in key if not weak]
    weak = [dt for dt, w in key if w]
    if not strong:
        kinds = {d.kind for d in weak}
        if "f" in kinds:
            return DEFAULT_FLOAT
        if kinds & {"i", "u"}:
            return DEFAULT_INT
        return np.dtype(bool)
    sample = {"f": 0.0, "i": 0, "u": 0, "b": False}
    dt = np.result_type(*strong, *(sample[d.kind] for d in weak))
    if dt not in SUPPORTED_DTYPES:  # e.g. int32 + float weak -> float64 is fine; uint never appears
        dt = np.dtype("float64") if dt.kind == "f" else DEFAULT_INT
    return dt


def broadcast_shapes(op: str, shapes, names=None):
    """Static broadcasting. Returns ``(shape, requires)``; ``requires`` lists pairs of
    dims that must be equal at call time. Raises ShapeError for a static mismatch."""
    ranked = [s for s in shapes if s] or [()]  # scalars never change the result
    if all(s == ranked[0] for s in ranked[1:]):
        return tuple(ranked[0]), []  # the common case, and the cost of every graph build
    names = names or [f"argument {i}" for i in range(len(shapes))]
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    requires = []
    for axis in range(ndim):
        chosen = 1
        chosen_from = None
        for s, name in zip(shapes, names):
            k = axis - (ndim - len(s))
            if k < 0:
                continue
            d = s[k]
            if type(d) is int and d == 1:
                continue
            if type(chosen) is int and chosen == 1:
                chosen, chosen_from = d, name
                continue
            if d == chosen:
                continue
            if type(d) is int and type(chosen) is int:
                shown = ", ".join(f"{n}: {fmt_shape(x)}" for x, n in zip(shapes, names))
                raise ShapeError(f"{op}: shapes do not broadcast ({shown}); "
                                 f"axis {axis - ndim} has sizes {chosen} and {d}")
            requires.append((chosen, d))
            if type(d) is int:  # a static size is the better description of the result
                chosen = d
        out.append(chosen)
    return tuple(out), requires


def fmt_shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def normalize_shape(shape) -> tuple:
    if isinstance(shape, (int, np.integer)) or isinstance(shape, D.SymDim):
        shape = (shape,)
    return tuple(D.normalize(d) for d in shape)


def normalize_axes(op: str, axis, ndim: int):
    """``axis`` as a sorted tuple of non-negative ints; None means all axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (int(axis),)
    out = []
    for a in axis:
        a = int(a)
        if not -ndim <= a < ndim:
            raise ShapeError(f"{op}: axis {a} is out of range for a tensor of rank {ndim}")
        a %= ndim if ndim else 1
        if a in out:
            raise ShapeError(f"{op}: axis {a} is repeated")
        out.append(a)
    return tuple(sorted(out))
