"""2-D convolution (NCHW, groups=1) and its two gradient ops.

Conv2d is linear in each argument, so its gradients are the transposed maps
(Conv2dGradInput, Conv2dGradWeight), and their gradients are again Conv2d or the
other grad op: the three close under differentiation and grad-of-grad works.
The window geometry helpers here are shared with the pooling ops (``pool.py``).
References are im2col: a strided window view, then one tensordot (a GEMM).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import dims as D
from ..errors import DTypeError, ShapeError, UnsupportedError
from ..op import Op, apply
from ..types import FLOAT_DTYPES, TensorType, fmt_shape

_sliding = np.lib.stride_tricks.sliding_window_view


def _api():
    from .. import api
    return api


# -- window geometry (shared with pool.py) ------------------------------------------------
def pair(value, what: str, op: str, *, minimum: int) -> tuple:
    """An int or a pair of ints as a pair of Python ints, each at least ``minimum``."""
    items = (value, value) if isinstance(value, (int, np.integer)) else value
    try:
        items = tuple(items)
    except TypeError:
        raise TypeError(f"{op}: {what} must be an int or a pair of ints, got {value!r}") from None
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                              for v in items):
        raise TypeError(f"{op}: {what} must be an int or a pair of ints, got {value!r}")
    items = tuple(int(v) for v in items)
    if any(v < minimum for v in items):
        bound = "positive" if minimum == 1 else f"at least {minimum}"
        raise ShapeError(f"{op}: {what} must be {bound}, got {value!r}")
    return items


def out_size(size, k, s: int, p: int, d: int):
    """Output length of a window sweep: (size + 2p - d*(k-1) - 1) // s + 1, symbolic or not."""
    span = D.add(D.mul(d, D.sub(k, 1)), 1)
    return D.add(D.floordiv(D.sub(D.add(size, 2 * p), span), s), 1)


def out_hw(op: str, in_hw, kernel, stride, padding, dilation, *, shapes: str) -> tuple:
    """The output (H, W) of a window op; a static window that does not fit is an error.

    ``shapes`` describes the arguments for the message. Symbolic sizes are checked
    when the function runs (see ``windows``).
    """
    out = []
    for axis, (n, k, s, p, d) in enumerate(zip(in_hw, kernel, stride, padding, dilation)):
        if type(n) is int and type(k) is int and n + 2 * p < d * (k - 1) + 1:
            raise ShapeError(
                f"{op}: the kernel does not fit the padded input along "
                f"{'HW'[axis]}: input size {n} + 2*padding {p} = {n + 2 * p} is smaller "
                f"than the kernel span {d * (k - 1) + 1} (kernel {k}, dilation {d}), so the "
                f"output would have no pixels; {shapes}")
        out.append(out_size(n, k, s, p, d))
    return tuple(out)


def same_dim(a, b, requires: list, message: str) -> None:
    """Static dims must be equal now; symbolic ones become a call-time requirement."""
    if a == b:
        return
    if type(a) is int and type(b) is int:
        raise ShapeError(message)
    requires.append((a, b))


def check_float(op: str, **types) -> np.dtype:
    """All arguments float32 or float64, and the same dtype (as PyTorch asks)."""
    for what, t in types.items():
        if t.dtype not in FLOAT_DTYPES:
            raise DTypeError(f"{op}: {what} must be float32 or float64, got {t.dtype}")
    dts = {t.dtype for t in types.values()}
    if len(dts) > 1:
        shown = ", ".join(f"{what}: {t.dtype}" for what, t in types.items())
        raise DTypeError(f"{op}: arguments must have the same dtype ({shown}); cast one")
    return dts.pop()


def check_rank4(op: str, what: str, t, layout: str) -> None:
    if t.ndim != 4:
        raise ShapeError(f"{op}: {what} must be 4-D {layout}, got shape {fmt_shape(t.shape)}")


def pad_hw(x: np.ndarray, padding, value=0.0) -> np.ndarray:
    ph, pw = padding
    if not ph and not pw:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def windows(xp: np.ndarray, kernel, stride, dilation, op: str) -> np.ndarray:
    """A read-only view (N, C, OH, OW, KH, KW) of the windows of a padded NCHW array."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    if xp.shape[2] < span[0] or xp.shape[3] < span[1]:  # symbolic sizes land here
        raise ShapeError(f"{op}: the kernel span {span} does not fit the padded input "
                         f"{xp.shape[2:]}, so the output would have no pixels")
    view = _sliding(xp, span, axis=(2, 3))
    return view[:, :, ::sh, ::sw, ::dh, ::dw]


def col2im(cols: np.ndarray, in_hw, stride, padding, dilation, dtype) -> np.ndarray:
    """Sum window columns (N, C, OH, OW, KH, KW) back onto the input they came from.

    One vectorized add per kernel position: the transpose of ``windows``.
    """
    n, c, oh, ow, kh, kw = cols.shape
    (h, w), (sh, sw), (ph, pw), (dh, dw) = in_hw, stride, padding, dilation
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype)
    for i in range(kh):
        for j in range(kw):
            r, q = i * dh, j * dw
            out[:, :, r:r + sh * (oh - 1) + 1:sh, q:q + sw * (ow - 1) + 1:sw] += cols[..., i, j]
    return out[:, :, ph:ph + h, pw:pw + w]


# -- ops -------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class _ConvGeometry(Op):
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)

    def geometry(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation)

    def conv_out(self, in_hw, kernel, shapes: str) -> tuple:
        return out_hw(self.name, in_hw, kernel, self.stride, self.padding, self.dilation,
                      shapes=shapes)


@dataclass(frozen=True, kw_only=True)
class Conv2d(_ConvGeometry):
    """Cross-correlation of x (N, C, H, W) with w (O, C, KH, KW), as torch.nn.functional.conv2d."""

    def _rule(self, x, w):
        dt = check_float(self.name, x=x, w=w)
        check_rank4(self.name, "x", x, "(N, C, H, W)")
        check_rank4(self.name, "w", w, "(O, C, KH, KW)")
        shapes = f"x: {fmt_shape(x.shape)}, w: {fmt_shape(w.shape)}"
        reqs: list = []
        same_dim(x.shape[1], w.shape[1], reqs,
                 f"{self.name}: x has {x.shape[1]} channels but w expects {w.shape[1]} "
                 f"(x: {fmt_shape(x.shape)} is (N, C, H, W), w: {fmt_shape(w.shape)} is "
                 f"(O, C, KH, KW))")
        oh, ow = self.conv_out(x.shape[2:], w.shape[2:], shapes)
        return TensorType(dt, (x.shape[0], w.shape[0], oh, ow)), reqs

    def infer(self, x, w):
        return self._rule(x, w)[0]

    def requires(self, x, w):
        return self._rule(x, w)[1]

    def reference(self, x, w):
        win = windows(pad_hw(x, self.padding), w.shape[2:], self.stride, self.dilation, self.name)
        out = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))  # N, OH, OW, O
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))

    def vjp(self, inputs, output, g_out):
        x, w = inputs
        g_x = apply(Conv2dGradInput(input_shape=tuple(x.shape), **self.geometry()), g_out, w)
        g_w = apply(Conv2dGradWeight(weight_shape=tuple(w.shape), **self.geometry()), x, g_out)
        return [g_x, g_w]


@dataclass(frozen=True, kw_only=True)
class Conv2dGradInput(_ConvGeometry):
    """d conv2d / d x applied to a cotangent g (N, O, OH, OW), with w (O, C, KH, KW).

    ``input_shape`` is x's shape: with a stride above 1 several input sizes give the
    same output size, and with symbolic dims the result must have x's very dims.
    """

    input_shape: tuple

    def _rule(self, g, w):
        dt = check_float(self.name, g=g, w=w)
        check_rank4(self.name, "g", g, "(N, O, OH, OW)")
        check_rank4(self.name, "w", w, "(O, C, KH, KW)")
        if len(self.input_shape) != 4:
            raise ShapeError(f"{self.name}: input_shape must be (N, C, H, W), got "
                             f"{fmt_shape(self.input_shape)}")
        n, c, h, wd = self.input_shape
        shapes = (f"g: {fmt_shape(g.shape)}, w: {fmt_shape(w.shape)}, "
                  f"input_shape: {fmt_shape(self.input_shape)}")
        reqs: list = []
        same_dim(g.shape[0], n, reqs, f"{self.name}: g and the input have different batch "
                 f"sizes ({shapes})")
        same_dim(g.shape[1], w.shape[0], reqs,
                 f"{self.name}: g has {g.shape[1]} channels but w has {w.shape[0]} "
                 f"output channels ({shapes})")
        same_dim(w.shape[1], c, reqs, f"{self.name}: w expects {w.shape[1]} input channels, "
                 f"the input has {c} ({shapes})")
        oh, ow = self.conv_out((h, wd), w.shape[2:], shapes)
        for got, want in zip(g.shape[2:], (oh, ow)):
            same_dim(got, want, reqs, f"{self.name}: g's spatial size {fmt_shape(g.shape[2:])}"
                     f" is not the conv2d output size {fmt_shape((oh, ow))} ({shapes})")
        return TensorType(dt, tuple(self.input_shape)), reqs

    def infer(self, g, w):
        return self._rule(g, w)[0]

    def requires(self, g, w):
        return self._rule(g, w)[1]

    def reference(self, g, w):
        cols = np.tensordot(g, w, axes=([1], [0]))  # N, OH, OW, C, KH, KW
        cols = cols.transpose(0, 3, 1, 2, 4, 5)
        return col2im(cols, self.input_shape[2:], self.stride, self.padding, self.dilation,
                      np.result_type(g, w))

    def vjp(self, inputs, output, h):
        g, w = inputs
        g_g = apply(Conv2d(**self.geometry()), h, w)
        g_w = apply(Conv2dGradWeight(weight_shape=tuple(w.shape), **self.geometry()), h, g)
        return [g_g, g_w]


@dataclass(frozen=True, kw_only=True)
class Conv2dGradWeight(_ConvGeometry):
    """d conv2d / d w applied to a cotangent g (N, O, OH, OW), with x (N, C, H, W).

    ``weight_shape`` is w's shape: g and x do not determine the kernel size.
    """

    weight_shape: tuple

    def _rule(self, x, g):
        dt = check_float(self.name, x=x, g=g)
        check_rank4(self.name, "x", x, "(N, C, H, W)")
        check_rank4(self.name, "g", g, "(N, O, OH, OW)")
        if len(self.weight_shape) != 4:
            raise ShapeError(f"{self.name}: weight_shape must be (O, C, KH, KW), got "
                             f"{fmt_shape(self.weight_shape)}")
        o, c, kh, kw = self.weight_shape
        shapes = (f"x: {fmt_shape(x.shape)}, g: {fmt_shape(g.shape)}, "
                  f"weight_shape: {fmt_shape(self.weight_shape)}")
        reqs: list = []
        same_dim(x.shape[0], g.shape[0], reqs,
                 f"{self.name}: x and g have different batch sizes ({shapes})")
        same_dim(x.shape[1], c, reqs, f"{self.name}: x has {x.shape[1]} channels, the weight "
                 f"expects {c} ({shapes})")
        same_dim(g.shape[1], o, reqs, f"{self.name}: g has {g.shape[1]} channels, the weight "
                 f"has {o} output channels ({shapes})")
        oh, ow = self.conv_out(x.shape[2:], (kh, kw), shapes)
        for got, want in zip(g.shape[2:], (oh, ow)):
            same_dim(got, want, reqs, f"{self.name}: g's spatial size {fmt_shape(g.shape[2:])}"
                     f" is not the conv2d output size {fmt_shape((oh, ow))} ({shapes})")
        return TensorType(dt, tuple(self.weight_shape)), reqs

    def infer(self, x, g):
        return self._rule(x, g)[0]

    def requires(self, x, g):
        return self._rule(x, g)[1]

    def reference(self, x, g):
        win = windows(pad_hw(x, self.padding), self.weight_shape[2:], self.stride,
                      self.dilation, self.name)
        return np.tensordot(g, win, axes=([0, 2, 3], [0, 2, 3]))  # O, C, KH, KW

    def vjp(self, inputs, output, k):
        x, g = inputs
        g_x = apply(Conv2dGradInput(input_shape=tuple(x.shape), **self.geometry()), g, k)
        g_g = apply(Conv2d(**self.geometry()), x, k)
        return [g_x, g_g]


# -- public function -------------------------------------------------------------------------
def _conv_padding(padding, kernel, stride, dilation):
    """PyTorch's padding forms: an int, a pair, "valid" (none) or "same" (stride 1 only)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0)
        if padding != "same":
            raise ShapeError(f"conv2d: padding must be an int, a pair, 'valid' or 'same', "
                             f"got {padding!r}")
        if stride != (1, 1):
            raise ShapeError(f"conv2d: padding='same' needs stride 1, got stride {stride}")
        if any(type(k) is not int for k in kernel):
            raise UnsupportedError("conv2d: padding='same' needs a static kernel size")
        total = tuple(d * (k - 1) for k, d in zip(kernel, dilation))
        if any(t % 2 for t in total):
            raise UnsupportedError(f"conv2d: padding='same' with kernel {fmt_shape(kernel)} and "
                                   f"dilation {dilation} needs asymmetric padding, which is not "
                                   "supported; pad explicitly")
        return tuple(t // 2 for t in total)
    return pair(padding, "padding", "conv2d", minimum=0)


def conv2d(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) of NCHW ``x`` with ``w`` (O, C, KH, KW).

    Arguments follow torch.nn.functional.conv2d: ``stride``, ``padding`` and
    ``dilation`` are an int or an (H, W) pair; ``padding`` may also be "valid" or
    "same". ``bias`` (O,) is added per output channel. Only ``groups=1`` is supported.

    >>> y = sg.nn.conv2d(x, w, b, stride=2, padding=1)   # x (N, 3, 32, 32), w (16, 3, 3, 3)
    """
    api = _api()
    if groups != 1:
        raise UnsupportedError(f"conv2d: groups={groups} is not supported (only groups=1)")
    x, w = api.as_tensor(x), api.as_tensor(w)
    stride = pair(stride, "stride", "conv2d", minimum=1)
    dilation = pair(dilation, "dilation", "conv2d", minimum=1)
    kernel = tuple(w.shape[2:]) if w.ndim == 4 else (1, 1)
    padding = _conv_padding(padding, kernel, stride, dilation)
    y = apply(Conv2d(stride=stride, padding=padding, dilation=dilation), x, w)
    if bias is None:
        return y
    bias = api.as_tensor(bias)
    check_float("conv2d", x=x.type, bias=bias.type)
    if bias.ndim != 1:
        raise ShapeError(f"conv2d: bias must be 1-D (O,), got shape {fmt_shape(bias.shape)}")
    reqs: list = []
    same_dim(bias.shape[0], w.shape[0], reqs,
             f"conv2d: bias has {bias.shape[0]} entries but w has {w.shape[0]} output "
             f"channels (bias: {fmt_shape(bias.shape)}, w: {fmt_shape(w.shape)})")
    return y + api.reshape(bias, (bias.shape[0], 1, 1))
