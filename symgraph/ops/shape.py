"""Ops that change shape without changing values: reshape, transpose, broadcast_to."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import dims as D
from ..errors import ShapeError
from ..op import Op, apply
from ..types import TensorType, fmt_shape, normalize_shape, normalize_axes


def _api():
    from .. import api
    return api


@dataclass(frozen=True, kw_only=True)
class Reshape(Op):
    """Row-major reshape to ``shape`` (no -1 here: resolved when the node is built)."""

    shape: tuple

    def infer(self, x):
        a, b = D.product(x.shape), D.product(self.shape)
        if type(a) is int and type(b) is int and a != b:
            raise ShapeError(f"reshape: cannot reshape {fmt_shape(x.shape)} ({a} elements) "
                             f"into {fmt_shape(self.shape)} ({b} elements)")
        return TensorType(x.dtype, self.shape, x.weak)

    def requires(self, x):
        a, b = D.product(x.shape), D.product(self.shape)
        return [] if a == b else [(a, b)]

    def reference(self, x):
        return np.reshape(x, self.shape)

    def vjp(self, inputs, output, g):
        return [_api().reshape(g, inputs[0].shape)]


@dataclass(frozen=True, kw_only=True)
class Transpose(Op):
    axes: tuple

    def infer(self, x):
        if sorted(self.axes) != list(range(x.ndim)):
            raise ShapeError(f"transpose: axes {self.axes} are not a permutation of "
                             f"range({x.ndim})")
        return TensorType(x.dtype, tuple(x.shape[a] for a in self.axes), x.weak)

    def reference(self, x):
        return np.transpose(x, self.axes)

    def vjp(self, inputs, output, g):
        return [_api().transpose(g, tuple(int(i) for i in np.argsort(self.axes)))]


@dataclass(frozen=True, kw_only=True)
class BroadcastTo(Op):
    """Numpy's broadcast_to with the static rule: only size-1 dims stretch."""

    shape: tuple

    def _check(self, x):
        lead = len(self.shape) - x.ndim
        if lead < 0:
            raise ShapeError(f"broadcast_to: cannot broadcast {fmt_shape(x.shape)} to the "
                             f"lower-rank shape {fmt_shape(self.shape)}")
        req = []
        for k, d in enumerate(x.shape):
            t = self.shape[lead + k]
            if d == t or (type(d) is int and d == 1):
                continue
            if type(d) is int and type(t) is int:
                raise ShapeError(f"broadcast_to: cannot broadcast {fmt_shape(x.shape)} to "
                                 f"{fmt_shape(self.shape)} (axis {lead + k}: {d} vs {t})")
            req.append((d, t))
        return req

    def infer(self, x):
        self._check(x)
        return TensorType(x.dtype, self.shape, x.weak)

    def requires(self, x):
        return self._check(x)

    def reference(self, x):
        return np.broadcast_to(x, self.shape)

    def vjp(self, inputs, output, g):
        from .elementwise import unbroadcast
        return [unbroadcast(g, inputs[0].type)]


# -- public functions ----------------------------------------------------------------------
def resolve_reshape(in_shape, shape) -> tuple:
    """Replace one -1 in ``shape`` by the size that keeps the element count."""
    shape = normalize_shape(shape)
    holes = [i for i, d in enumerate(shape) if type(d) is int and d == -1]
    if len(holes) > 1:
        raise ShapeError(f"reshape: only one -1 is allowed in {fmt_shape(shape)}")
    for d in shape:
        if type(d) is int and d < -1:
            raise ShapeError(f"reshape: negative size in {fmt_shape(shape)}")
    if not holes:
        return shape
    known = D.product(d for i, d in enumerate(shape) if i != holes[0])
    total = D.product(in_shape)
    if type(known) is int and known == 0:
        raise ShapeError(f"reshape: cannot infer -1 in {fmt_shape(shape)} with a zero-size dim")
    if type(known) is int and type(total) is int and total % known:
        raise ShapeError(f"reshape: cannot reshape {fmt_shape(in_shape)} ({total} elements) "
                         f"into {fmt_shape(shape)}")
    filled = list(shape)
    filled[holes[0]] = D.floordiv(total, known)
    return tuple(filled)


def reshape(x, shape):
    x = _api().as_tensor(x)
    new = resolve_reshape(x.shape, shape)
    if new == tuple(x.shape):
        return x
    return apply(Reshape(shape=new), x)


def transpose(x, axes=None):
    x = _api().as_tensor(x)
    axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(int(a) % max(x.ndim, 1) for a in axes)
    if axes == tuple(range(x.ndim)):
        return x
    return apply(Transpose(axes=axes), x)


def broadcast_to(x, shape):
    x = _api().as_tensor(x)
    shape = normalize_shape(shape)
    if tuple(x.shape) == shape:
        return x
    return apply(BroadcastTo(shape=shape), x)


def expand_dims(x, axis):
    x = _api().as_tensor(x)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    nd = x.ndim + len(axes)
    axes = normalize_axes("expand_dims", axes, nd)
    it = iter(x.shape)
    return reshape(x, tuple(1 if i in axes else next(it) for i in range(nd)))


def squeeze(x, axis=None):
    x = _api().as_tensor(x)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.shape) if type(d) is int and d == 1)
    else:
        axes = normalize_axes("squeeze", axis, x.ndim)
        for a in axes:
            if not (type(x.shape[a]) is int and x.shape[a] == 1):
                raise ShapeError(f"squeeze: axis {a} has size {x.shape[a]}, not 1")
    return reshape(x, tuple(d for i, d in enumerate(x.shape) if i not in axes))


def zeros_like(x, dtype=None):
    api = _api()
    x = api.as_tensor(x)
    return broadcast_to(api.constant(np.zeros((), dtype or x.dtype), graph=x.graph), x.shape)


def ones_like(x, dtype=None):
    api = _api()
    x = api.as_tensor(x)
    return broadcast_to(api.constant(np.ones((), dtype or x.dtype), graph=x.graph), x.shape)


def zeros(shape, dtype="float32", *, graph=None):
    api = _api()
    return broadcast_to(api.constant(np.zeros((), dtype), graph=graph), shape)


def ones(shape, dtype="float32", *, graph=None):
    api = _api()
    return broadcast_to(api.constant(np.ones((), dtype), graph=graph), shape)
