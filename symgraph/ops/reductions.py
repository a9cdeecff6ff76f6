"""Reductions over any set of axes, with ``keepdims``.

Sum, prod, max, min, argmax and argmin are ops; mean, var, std and logsumexp are
compositions of them, so their gradients come for free and rewrites see through them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import dims as D
from ..errors import DTypeError, ShapeError
from ..op import Op, apply
from ..types import TensorType, normalize_axes, is_float

_BOOL = np.dtype(bool)


def _api():
    from .. import api
    return api


@dataclass(frozen=True, kw_only=True)
class Reduce(Op):
    axes: tuple
    keepdims: bool = False

    def infer(self, x):
        for a in self.axes:
            if not 0 <= a < x.ndim:
                raise ShapeError(f"{self.name}: axis {a} out of range for rank {x.ndim}")
        return TensorType(self.out_dtype(x.dtype), reduced_shape(x.shape, self.axes, self.keepdims))

    def out_dtype(self, dt):
        return dt

    def keep(self, g, x_type):
        """``g`` (the reduced shape) reshaped with the reduced axes kept as size 1."""
        if self.keepdims:
            return g
        return _api().reshape(g, reduced_shape(x_type.shape, self.axes, True))


def reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


@dataclass(frozen=True, kw_only=True)
class Sum(Reduce):
    def out_dtype(self, dt):
        return np.dtype("int64") if dt == _BOOL or dt == np.dtype("int32") else dt

    def reference(self, x):
        return np.sum(x, axis=self.axes, keepdims=self.keepdims, dtype=self.out_dtype(x.dtype))

    def vjp(self, inputs, output, g):
        (x,) = inputs
        if not is_float(x.dtype):
            return [None]
        return [_api().broadcast_to(self.keep(g, x.type), x.shape)]


@dataclass(frozen=True, kw_only=True)
class Prod(Reduce):
    def out_dtype(self, dt):
        return np.dtype("int64") if dt == _BOOL or dt == np.dtype("int32") else dt

    def reference(self, x):
        return np.prod(x, axis=self.axes, keepdims=self.keepdims, dtype=self.out_dtype(x.dtype))

    def vjp(self, inputs, output, g):
        """Exact with zeros: the product of the others is prod(nonzeros) when x is the only zero."""
        api = _api()
        (x,) = inputs
        if not is_float(x.dtype):
            return [None]
        is_zero = api.equal(x, 0.0)
        nonzero_prod = api.prod(api.where(is_zero, 1.0, x), axis=self.axes, keepdims=True)
        zeros = api.sum(api.cast(is_zero, "int32"), axis=self.axes, keepdims=True)
        others = api.where(api.equal(zeros, 0), nonzero_prod / api.where(is_zero, 1.0, x),
                           api.where(api.logical_and(api.equal(zeros, 1), is_zero),
                                     nonzero_prod, 0.0))
        return [api.broadcast_to(self.keep(g, x.type), x.shape) * others]


@dataclass(frozen=True, kw_only=True)
class Max(Reduce):
    idempotent = True

    def reference(self, x):
        return np.max(x, axis=self.axes, keepdims=self.keepdims)

    def vjp(self, inputs, output, g):
        """Ties share the gradient evenly (as JAX and PyTorch's amax do)."""
        api = _api()
        (x,) = inputs
        if not is_float(x.dtype):
            return [None]
        hit = api.cast(api.equal(x, self.keep(output, x.type)), x.dtype)
        share = hit / api.sum(hit, axis=self.axes, keepdims=True)
        return [api.broadcast_to(self.keep(g, x.type), x.shape) * share]


@dataclass(frozen=True, kw_only=True)
class Min(Max):
    def reference(self, x):
        return np.min(x, axis=self.axes, keepdims=self.keepdims)


@dataclass(frozen=True, kw_only=True)
class Argmax(Op):
    """Index of the first maximum along ``axis`` (None: of the flattened tensor)."""

    axis: object = None
    keepdims: bool = False
    differentiable = False

    def infer(self, x):
        if x.dtype == _BOOL:
            raise DTypeError(f"{self.name}: boolean input is not supported")
        if self.axis is None:
            shape = (1,) * x.ndim if self.keepdims else ()
        else:
            shape = reduced_shape(x.shape, (self.axis,), self.keepdims)
        return TensorType(np.dtype("int64"), shape)

    def reference(self, x):
        return np.argmax(x, axis=self.axis, keepdims=self.keepdims).astype(np.int64)

    def vjp(self, inputs, output, g):
        return [None]


@dataclass(frozen=True, kw_only=True)
class Argmin(Argmax):
    def reference(self, x):
        return np.argmin(x, axis=self.axis, keepdims=self.keepdims).astype(np.int64)


# -- public functions ----------------------------------------------------------------------
def _reduce(cls, x, axis, keepdims):
    x = _api().as_tensor(x)
    axes = normalize_axes(cls.__name__.lower(), axis, x.ndim)
    return apply(cls(axes=axes, keepdims=bool(keepdims)), x)


def sum(x, axis=None, keepdims=False):
    return _reduce(Sum, x, axis, keepdims)


def prod(x, axis=None, keepdims=False):
    return _reduce(Prod, x, axis, keepdims)


def max(x, axis=None, keepdims=False):
    return _reduce(Max, x, axis, keepdims)


def min(x, axis=None, keepdims=False):
    return _reduce(Min, x, axis, keepdims)


def _arg(cls, x, axis, keepdims):
    x = _api().as_tensor(x)
    if axis is not None:
        axis = normalize_axes(cls.__name__.lower(), axis, x.ndim)
        if len(axis) != 1:
            raise ShapeError(f"{cls.__name__.lower()}: axis must be one int or None")
        axis = axis[0]
    return apply(cls(axis=axis, keepdims=bool(keepdims)), x)


def argmax(x, axis=None, keepdims=False):
    return _arg(Argmax, x, axis, keepdims)


def argmin(x, axis=None, keepdims=False):
    return _arg(Argmin, x, axis, keepdims)


def count(x, axis=None):
    """The number of elements reduced over ``axis`` (a static or symbolic dim)."""
    axes = normalize_axes("count", axis, x.ndim)
    return D.product(x.shape[a] for a in axes)


def mean(x, axis=None, keepdims=False):
    api = _api()
    x = api.as_tensor(x)
    if not is_float(x.dtype):
        x = api.cast(x, "float64")
    n = count(x, axis)
    total = sum(x, axis, keepdims)
    if type(n) is int:
        return total * (1.0 / n) if n else total / api.cast(n, x.dtype)
    return total / api.dim_value(n, x.dtype)


def var(x, axis=None, keepdims=False, ddof=0):
    api = _api()
    x = api.as_tensor(x)
    if not is_float(x.dtype):
        x = api.cast(x, "float64")
    centered = x - mean(x, axis, keepdims=True)
    n = D.sub(count(x, axis), ddof)
    ssq = sum(api.square(centered), axis, keepdims)
    if type(n) is int:
        return ssq * (1.0 / n) if n > 0 else ssq / api.cast(np.float64(n), x.dtype)
    return ssq / api.dim_value(n, x.dtype)


def std(x, axis=None, keepdims=False, ddof=0):
    return _api().sqrt(var(x, axis, keepdims, ddof))


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) computed with the max subtracted, so it never overflows."""
    api = _api()
    x = api.as_tensor(x)
    if count(x, axis) == 0:  # log(0), as numpy and scipy answer for an empty reduction
        return sum(x, axis, keepdims) + float("-inf")
    m = api.stop_gradient(max(x, axis, keepdims=True))
    m_safe = api.where(api.isfinite(m), m, 0.0)
    out = api.log(sum(api.exp(x - m_safe), axis, keepdims=True)) + m_safe
    if not keepdims:
        out = api.squeeze(out, axis=normalize_axes("logsumexp", axis, x.ndim))
    return out
