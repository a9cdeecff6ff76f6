"""Ops that assemble a tensor from pieces: constant padding, concatenate and stack.

Their gradients are slices of the cotangent (see indexing.Slice), so padding and
concatenating and their derivatives all lower to strided copies.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from .. import dims as D
from ..errors import ShapeError, UnsupportedError
from ..op import Op, apply
from ..types import TensorType, fmt_shape, result_dtype
from .indexing import Slice


def _api():
    from .. import api
    return api


def match_shape(g, shape):
    """``g`` as ``shape`` when the two differ only by dims that must agree at call time
    (e.g. two symbols tied by a ``requires`` pair), so vjps return the input's own type."""
    if tuple(g.shape) == tuple(shape):
        return g
    return _api().reshape(g, shape)


@dataclass(frozen=True, kw_only=True)
class Pad(Op):
    """numpy.pad in constant mode: ``widths`` holds one (before, after) pair per axis."""

    widths: tuple
    value: object = 0

    def infer(self, x):
        if len(self.widths) != x.ndim:
            raise ShapeError(f"pad: {len(self.widths)} (before, after) pairs for a tensor of "
                             f"shape {fmt_shape(x.shape)}")
        return TensorType(x.dtype, tuple(D.add(d, b + a) for d, (b, a) in
                                         zip(x.shape, self.widths)), x.weak)

    def reference(self, x):
        return np.pad(x, self.widths, mode="constant", constant_values=self.value)

    def vjp(self, inputs, output, g):
        key = tuple((b, -a if a else None, 1) for b, a in self.widths)
        return [match_shape(apply(Slice(key=key), g), inputs[0].shape)]


def pad(x, pad_width, constant_values=0):
    """Pad ``x`` with ``constant_values`` (a scalar); ``pad_width`` takes numpy's forms:
    ``n``, ``(n,)``, ``(before, after)`` or one ``(before, after)`` pair per axis.

    >>> y = sg.pad(x, ((0, 0), (1, 2)))
    """
    api = _api()
    x = api.as_tensor(x)
    pw = np.asarray(pad_width)
    if pw.dtype.kind not in "iu" and not (pw.size == 0 and pw.dtype.kind == "f"):
        raise ShapeError(f"pad: pad_width must hold integers, got {pad_width!r}")
    try:
        pw = np.broadcast_to(pw.astype(np.int64), (x.ndim, 2))
    except ValueError:
        raise ShapeError(f"pad: pad_width {pad_width!r} does not fit a tensor of shape "
                         f"{fmt_shape(x.shape)} (give n, (before, after) or one pair per "
                         "axis)") from None
    if (pw < 0).any():
        raise ShapeError(f"pad: pad_width {pad_width!r} has negative values")
    value = np.asarray(constant_values)
    if value.ndim:
        raise UnsupportedError("pad: constant_values must be one scalar (per-axis values are "
                               "not supported)")
    widths = tuple((int(b), int(a)) for b, a in pw)
    if not any(b or a for b, a in widths):
        return x
    return apply(Pad(widths=widths, value=value.item()), x)


@dataclass(frozen=True, kw_only=True)
class Concatenate(Op):
    """numpy.concatenate: the inputs agree on every dim but ``axis`` (statically, or by a
    ``requires`` pair checked at call time); dtypes promote as numpy does."""

    axis: int

    def _rule(self, types):
        if not types:
            raise ShapeError("concatenate: need at least one tensor")
        first = types[0]
        if first.ndim == 0:
            raise ShapeError("concatenate: zero-dimensional tensors cannot be concatenated")
        if not 0 <= self.axis < first.ndim:
            raise ShapeError(f"concatenate: axis {self.axis} is out of range for rank "
                             f"{first.ndim}")
        shape, req = list(first.shape), []
        for k, t in enumerate(types[1:], 1):
            if t.ndim != first.ndim:
                raise ShapeError(f"concatenate: argument {k} has shape {fmt_shape(t.shape)} "
                                 f"but argument 0 has {fmt_shape(first.shape)}; all must "
                                 "have the same rank")
            for a, (have, d) in enumerate(zip(shape, t.shape)):
                if a == self.axis or have == d:
                    continue
                if type(have) is int and type(d) is int:
                    raise ShapeError(f"concatenate: argument {k} has shape {fmt_shape(t.shape)}"
                                     f" and argument 0 has {fmt_shape(first.shape)}; they "
                                     f"differ at axis {a}, which is not the axis {self.axis}")
                req.append((have, d))
                if type(d) is int:
                    shape[a] = d
        shape[self.axis] = 0
        for t in types:
            shape[self.axis] = D.add(shape[self.axis], t.shape[self.axis])
        return tuple(shape), req

    def infer(self, *types):
        shape, _ = self._rule(types)
        return TensorType(result_dtype(*types), shape)

    def requires(self, *types):
        return self._rule(types)[1]

    def reference(self, *xs):
        return np.concatenate(xs, axis=self.axis)

    def vjp(self, inputs, output, g):
        grads, offset = [], 0
        whole = (None, None, 1)
        for x in inputs:
            stop = D.add(offset, x.shape[self.axis])
            key = tuple((offset, stop, 1) if a == self.axis else whole for a in range(g.ndim))
            grads.append(match_shape(apply(Slice(key=key), g), x.shape))
            offset = stop
        return grads


def _axis(op, axis, ndim):
    a = operator.index(axis)
    if not -ndim <= a < ndim:
        raise ShapeError(f"{op}: axis {a} is out of range for rank {ndim}")
    return a % ndim


def concatenate(tensors, axis=0):
    """Join tensors along an existing ``axis`` (numpy.concatenate).

    >>> h = sg.concatenate([a, b], axis=1)
    """
    api = _api()
    ts = [api.as_tensor(t) for t in tensors]
    if not ts:
        raise ShapeError("concatenate: need at least one tensor")
    if ts[0].ndim == 0:
        raise ShapeError("concatenate: zero-dimensional tensors cannot be concatenated")
    if len(ts) == 1:
        return ts[0]
    return apply(Concatenate(axis=_axis("concatenate", axis, ts[0].ndim)), *ts)


def stack(tensors, axis=0):
    """Join same-shaped tensors along a new ``axis`` (numpy.stack).

    >>> pair = sg.stack([a, b], axis=-1)
    """
    api = _api()
    ts = [api.as_tensor(t) for t in tensors]
    if not ts:
        raise ShapeError("stack: need at least one tensor")
    first = ts[0]
    for k, t in enumerate(ts[1:], 1):
        if t.ndim != first.ndim or any(type(a) is int and type(b) is int and a != b
                                       for a, b in zip(t.shape, first.shape)):
            raise ShapeError(f"stack: all tensors must have the same shape; argument {k} has "
                             f"{fmt_shape(t.shape)}, argument 0 has {fmt_shape(first.shape)}")
    a = _axis("stack", axis, first.ndim + 1)
    parts = [api.expand_dims(t, a) for t in ts]
    if len(parts) == 1:
        return parts[0]
    return apply(Concatenate(axis=a), *parts)
