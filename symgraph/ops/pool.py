"""2-D max and average pooling (NCHW) and their gradient ops, with PyTorch's semantics.

Max pooling pads with -inf and routes each window's gradient to its FIRST maximum in
row-major window order (PyTorch's CPU rule; a NaN counts as the maximum). Its gradient
is linear in the cotangent, so MaxPool2dGrad and MaxPool2dSelect (the gather at the
same positions) are each other's transposes and grad-of-grad works; with respect to x
both are piecewise constant, so that cotangent is zero. Average pooling counts the zero
padding in the divisor (count_include_pad=True); it is linear, and AvgPool2dGrad is its
transpose.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError, UnsupportedError
from ..op import Op, apply
from ..types import TensorType, fmt_shape
from .conv import (check_float, check_rank4, col2im, out_hw, pad_hw, pair, same_dim,
                   windows)


def _api():
    from .. import api
    return api


@dataclass(frozen=True, kw_only=True)
class _Pool(Op):
    kernel_size: tuple
    stride: tuple
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)

    def pool_out(self, x, what="x") -> tuple:
        """Check x (N, C, H, W) and return the pooled (OH, OW)."""
        check_rank4(self.name, what, x, "(N, C, H, W)")
        return out_hw(self.name, x.shape[2:], self.kernel_size, self.stride, self.padding,
                      self.dilation, shapes=f"{what}: {fmt_shape(x.shape)}, "
                      f"kernel_size: {self.kernel_size}, padding: {self.padding}")

    def check_cotangent(self, x, g, what: str) -> list:
        """g must have the pooled shape of x: static dims now, symbolic ones at call time."""
        oh, ow = self.pool_out(x)
        want = (x.shape[0], x.shape[1], oh, ow)
        check_rank4(self.name, what, g, "(N, C, OH, OW)")
        reqs: list = []
        for a, b in zip(g.shape, want):
            same_dim(a, b, reqs, f"{self.name}: {what} has shape {fmt_shape(g.shape)} but the "
                     f"pooled shape of x {fmt_shape(x.shape)} is {fmt_shape(want)}")
        return reqs

    def windows_of(self, xp):
        return windows(xp, self.kernel_size, self.stride, self.dilation, self.name)


# -- max pooling --------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class MaxPool2d(_Pool):
    """The maximum of each window of x, padded with -inf (torch max_pool2d)."""

    def infer(self, x):
        dt = check_float(self.name, x=x)
        return TensorType(dt, tuple(x.shape[:2]) + self.pool_out(x))

    def reference(self, x):
        return self.windows_of(pad_hw(x, self.padding, -np.inf)).max(axis=(4, 5))

    def vjp(self, inputs, output, g_out):
        return [apply(MaxPool2dGrad(**self.params()), inputs[0], g_out)]


def _argmax_flat(op: _Pool, x: np.ndarray):
    """Flat index into the -inf-padded x of each window's first maximum, and that shape."""
    xp = pad_hw(x, op.padding, -np.inf)
    win = op.windows_of(xp)
    n, c, oh, ow, kh, kw = win.shape
    k = win.reshape(n, c, oh, ow, kh * kw).argmax(axis=-1)  # ties: first in row-major order
    ki, kj = np.divmod(k, kw)
    (sh, sw), (dh, dw) = op.stride, op.dilation
    rows = np.arange(oh).reshape(oh, 1) * sh + ki * dh
    cols = np.arange(ow) * sw + kj * dw
    plane = np.arange(n * c).reshape(n, c, 1, 1)
    hp, wp = xp.shape[2:]
    return (plane * hp + rows) * wp + cols, xp.shape


@dataclass(frozen=True, kw_only=True)
class MaxPool2dGrad(_Pool):
    """Scatter a cotangent g (pooled shape) to the argmax of each window of x.

    Overlapping windows that share a maximum add their contributions.
    """

    def _rule(self, x, g):
        dt = check_float(self.name, x=x, g=g)
        return TensorType(dt, tuple(x.shape)), self.check_cotangent(x, g, "g")

    def infer(self, x, g):
        return self._rule(x, g)[0]

    def requires(self, x, g):
        return self._rule(x, g)[1]

    def reference(self, x, g):
        flat, pshape = _argmax_flat(self, x)
        size = int(np.prod(pshape))
        out = np.bincount(flat.reshape(-1), weights=g.reshape(-1), minlength=size)
        ph, pw = self.padding
        h, w = x.shape[2:]
        return out.reshape(pshape)[:, :, ph:ph + h, pw:pw + w].astype(x.dtype)

    def vjp(self, inputs, output, h):
        x, _ = inputs
        return [None, apply(MaxPool2dSelect(**self.params()), x, h)]


@dataclass(frozen=True, kw_only=True)
class MaxPool2dSelect(_Pool):
    """Gather h (x's shape) at the argmax of each window of x: MaxPool2dGrad transposed."""

    def _rule(self, x, h):
        dt = check_float(self.name, x=x, h=h)
        check_rank4(self.name, "h", h, "(N, C, H, W)")
        reqs: list = []
        for a, b in zip(h.shape, x.shape):
            same_dim(a, b, reqs, f"{self.name}: h {fmt_shape(h.shape)} must have the shape "
                     f"of x {fmt_shape(x.shape)}")
        return TensorType(dt, tuple(x.shape[:2]) + self.pool_out(x)), reqs

    def infer(self, x, h):
        return self._rule(x, h)[0]

    def requires(self, x, h):
        return self._rule(x, h)[1]

    def reference(self, x, h):
        flat, _ = _argmax_flat(self, x)
        return pad_hw(h, self.padding, 0.0).reshape(-1)[flat]

    def vjp(self, inputs, output, k):
        x, _ = inputs
        return [None, apply(MaxPool2dGrad(**self.params()), x, k)]


# -- average pooling ------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class AvgPool2d(_Pool):
    """The mean of each zero-padded window of x; padding counts in the divisor."""

    def infer(self, x):
        dt = check_float(self.name, x=x)
        return TensorType(dt, tuple(x.shape[:2]) + self.pool_out(x))

    def reference(self, x):
        return self.windows_of(pad_hw(x, self.padding)).mean(axis=(4, 5), dtype=x.dtype)

    def vjp(self, inputs, output, g_out):
        x = inputs[0]
        return [apply(AvgPool2dGrad(input_size=tuple(x.shape[2:]), **self.params()), g_out)]


@dataclass(frozen=True, kw_only=True)
class AvgPool2dGrad(_Pool):
    """Spread a cotangent g (N, C, OH, OW) evenly over each window of an input of
    ``input_size`` (H, W), which g alone does not determine when the stride is above 1."""

    input_size: tuple

    def _rule(self, g):
        dt = check_float(self.name, g=g)
        check_rank4(self.name, "g", g, "(N, C, OH, OW)")
        x = TensorType(dt, tuple(g.shape[:2]) + tuple(self.input_size))
        return x, self.check_cotangent(x, g, "g")

    def infer(self, g):
        return self._rule(g)[0]

    def requires(self, g):
        return self._rule(g)[1]

    def reference(self, g):
        kh, kw = self.kernel_size
        cols = np.broadcast_to((g / (kh * kw))[..., None, None], g.shape + (kh, kw))
        return col2im(cols, self.input_size, self.stride, self.padding, self.dilation, g.dtype)

    def vjp(self, inputs, output, h):
        ps = {k: v for k, v in self.params().items() if k != "input_size"}
        return [apply(AvgPool2d(**ps), h)]


# -- public functions ------------------------------------------------------------------------
def _pool_params(op: str, kernel_size, stride, padding, dilation=1) -> dict:
    kernel = pair(kernel_size, "kernel_size", op, minimum=1)
    stride = kernel if stride is None else pair(stride, "stride", op, minimum=1)
    padding = pair(padding, "padding", op, minimum=0)
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ShapeError(f"{op}: padding {padding} must be at most half the kernel size "
                         f"{kernel} (as in PyTorch), else a window could hold only padding")
    return dict(kernel_size=kernel, stride=stride, padding=padding,
                dilation=pair(dilation, "dilation", op, minimum=1))


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max over each window of NCHW ``x``, as torch.nn.functional.max_pool2d.

    ``stride`` defaults to ``kernel_size``; padding is -inf and at most half the kernel.
    The gradient goes to the first maximum of each window (row-major), as in PyTorch.
    ``ceil_mode=True`` is not supported.

    >>> y = sg.nn.max_pool2d(x, 2)            # (N, C, 32, 32) -> (N, C, 16, 16)
    """
    if ceil_mode:
        raise UnsupportedError("max_pool2d: ceil_mode=True is not supported")
    params = _pool_params("max_pool2d", kernel_size, stride, padding, dilation)
    return apply(MaxPool2d(**params), _api().as_tensor(x))


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over each window of NCHW ``x``, as torch.nn.functional.avg_pool2d.

    ``stride`` defaults to ``kernel_size``; padding is zeros and counts in the divisor
    (count_include_pad=True, PyTorch's default). Other modes are not supported.

    >>> y = sg.nn.avg_pool2d(x, 3, stride=1, padding=1)   # same spatial size
    """
    if ceil_mode or not count_include_pad or divisor_override is not None:
        raise UnsupportedError("avg_pool2d: only ceil_mode=False, count_include_pad=True and "
                               "divisor_override=None are supported")
    params = _pool_params("avg_pool2d", kernel_size, stride, padding)
    return apply(AvgPool2d(**params), _api().as_tensor(x))
