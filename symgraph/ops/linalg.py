"""Matrix products: the MatMul op (batched, with transpose flags) and numpy's matmul, dot
and outer built on it.

MatMul carries ``transpose_a``/``transpose_b`` so that a rewrite can fold explicit
transposes into the product and the code generator hands them to GEMM as flags,
instead of copying a transposed operand. Its vjp uses the flags the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DTypeError, ShapeError, UnsupportedError
from ..op import Op, apply
from ..types import TensorType, broadcast_shapes, fmt_shape, is_float, result_dtype
from .elementwise import unbroadcast

_BOOL = np.dtype(bool)


def _api():
    from .. import api
    return api


def _matrix_dims(t, transposed):
    """(rows, cols) of an operand's trailing matrix as the product sees it."""
    r, c = t.shape[-2], t.shape[-1]
    return (c, r) if transposed else (r, c)


@dataclass(frozen=True, kw_only=True)
class MatMul(Op):
    """``op(a) @ op(b)`` over the last two axes, where op transposes when its flag is set;
    leading (batch) axes broadcast statically (only a size-1 dim stretches)."""

    transpose_a: bool = False
    transpose_b: bool = False

    def _describe(self, a, b):
        fa = ", transposed" if self.transpose_a else ""
        fb = ", transposed" if self.transpose_b else ""
        return f"a {fmt_shape(a.shape)}{fa} and b {fmt_shape(b.shape)}{fb}"

    def _rule(self, a, b):
        for label, t in (("a", a), ("b", b)):
            if t.ndim < 2:
                raise ShapeError(f"matmul: operand {label} must have rank >= 2, got shape "
                                 f"{fmt_shape(t.shape)}")
            if t.dtype == _BOOL:
                raise DTypeError(f"matmul: operand {label} is bool; cast it to a number first")
        m, ka = _matrix_dims(a, self.transpose_a)
        kb, n = _matrix_dims(b, self.transpose_b)
        req = []
        if ka != kb:
            if type(ka) is int and type(kb) is int:
                raise ShapeError(f"matmul: contracted dims differ ({ka} vs {kb}) for "
                                 f"{self._describe(a, b)}")
            req.append((ka, kb))
        batch, breq = broadcast_shapes(
            "matmul", [a.shape[:-2], b.shape[:-2]],
            [f"batch dims of a {fmt_shape(a.shape)}", f"batch dims of b {fmt_shape(b.shape)}"])
        return batch + (m, n), req + breq

    def infer(self, a, b):
        shape, _ = self._rule(a, b)
        return TensorType(result_dtype(a, b), shape)

    def requires(self, a, b):
        return self._rule(a, b)[1]

    def reference(self, a, b):
        if self.transpose_a:
            a = np.swapaxes(a, -1, -2)
        if self.transpose_b:
            b = np.swapaxes(b, -1, -2)
        return np.matmul(a, b)

    def vjp(self, inputs, output, g):
        """With A = op(a), B = op(b): dA = g B^T and dB = A^T g; for a transposed operand
        the cotangent is transposed back, which again only flips flags."""
        a, b = inputs
        ta, tb = self.transpose_a, self.transpose_b
        ga = gb = None
        if is_float(a.dtype):
            ga = (apply(MatMul(transpose_a=tb, transpose_b=True), b, g) if ta
                  else apply(MatMul(transpose_a=False, transpose_b=not tb), g, b))
            ga = _fit(ga, a.type)
        if is_float(b.dtype):
            gb = (apply(MatMul(transpose_a=True, transpose_b=ta), g, a) if tb
                  else apply(MatMul(transpose_a=not ta, transpose_b=False), a, g))
            gb = _fit(gb, b.type)
        return [ga, gb]


def _fit(g, type_):
    """Sum over broadcast batch dims, then name the dims as the input does."""
    from .joining import match_shape
    return match_shape(unbroadcast(g, type_), type_.shape)


# -- public functions ----------------------------------------------------------------------
def _pair(a, b):
    """Both operands as tensors of one graph (an array joins its partner's graph)."""
    from ..tensor import Tensor
    api = _api()
    graph = a.graph if isinstance(a, Tensor) else getattr(b, "graph", None)
    return api.as_tensor(a, graph=graph), api.as_tensor(b, graph=graph)


def matmul(a, b):
    """numpy.matmul: 1-D operands are promoted to a row (a) or column (b) matrix and the
    added axis is removed from the result; scalars are refused.

    >>> logits = x @ w
    """
    api = _api()
    a, b = _pair(a, b)
    for label, t in (("a", a), ("b", b)):
        if t.ndim == 0:
            raise ShapeError(f"matmul: operand {label} is a scalar (shape ()); matmul needs "
                             "rank >= 1, use * to scale")
    a2 = api.reshape(a, (1,) + a.shape) if a.ndim == 1 else a
    b2 = api.reshape(b, b.shape + (1,)) if b.ndim == 1 else b
    out = apply(MatMul(), a2, b2)
    if a.ndim == 1 or b.ndim == 1:
        keep = out.shape[:-2]
        keep += (() if a.ndim == 1 else (out.shape[-2],)) + (() if b.ndim == 1 else
                                                             (out.shape[-1],))
        out = api.reshape(out, keep)
    return out


def dot(a, b):
    """numpy.dot for operands of rank <= 2 (a scalar scales, 1-D . 1-D is the inner
    product, otherwise a matrix product); higher ranks raise UnsupportedError.

    >>> y = sg.dot(w, x)
    """
    api = _api()
    a, b = _pair(a, b)
    if a.ndim > 2 or b.ndim > 2:
        raise UnsupportedError(f"dot: operands of rank > 2 are not supported (got "
                               f"{fmt_shape(a.shape)} and {fmt_shape(b.shape)}); use "
                               "sg.matmul, whose batching rules differ from numpy.dot's")
    if a.ndim == 0 or b.ndim == 0:
        for label, t in (("a", a), ("b", b)):
            if t.dtype == _BOOL:
                raise DTypeError(f"dot: operand {label} is bool; cast it to a number first")
        return a * b
    return matmul(a, b)


def outer(a, b):
    """numpy.outer: ``a`` and ``b`` are flattened; result[i, j] = a[i] * b[j].

    >>> cov = sg.outer(u, v)
    """
    api = _api()
    a, b = _pair(a, b)
    for label, t in (("a", a), ("b", b)):
        if t.dtype == _BOOL:
            raise DTypeError(f"outer: operand {label} is bool; cast it to a number first")
    return api.reshape(a, (-1, 1)) * api.reshape(b, (1, -1))
