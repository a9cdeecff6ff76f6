"""Op cases of convolution and pooling, forward ops and their gradient ops.

The references here are deliberately naive loops over output pixels, written apart
from symgraph's im2col references, so the two agreeing means something. The gradient
ops are registered too: the harness then checks their own vjps by finite differences,
which is grad-of-grad of conv2d and the pooling ops.
"""
import numpy as np

import symgraph as sg
from symgraph.op import apply
from symgraph.ops.conv import Conv2dGradInput, Conv2dGradWeight
from symgraph.ops.pool import AvgPool2dGrad, MaxPool2dGrad, MaxPool2dSelect
from ..opinfo import OpCase, distinct, register


# -- naive references ---------------------------------------------------------------------
def _out(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _padded(x, padding, value):
    ph, pw = padding
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * ph, w + 2 * pw), value, dtype=np.float64)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    return xp


def _window(xp, i, j, kernel, stride, dilation):
    """The (.., KH, KW) window of output pixel (i, j): a slice of the padded input."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    r, q = i * sh, j * sw
    return xp[..., r:r + dh * (kh - 1) + 1:dh, q:q + dw * (kw - 1) + 1:dw]


def _rows_cols(i, j, kernel, stride, dilation):
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    return (slice(i * sh, i * sh + dh * (kh - 1) + 1, dh),
            slice(j * sw, j * sw + dw * (kw - 1) + 1, dw))


def naive_conv2d(x, w, stride, padding, dilation):
    xp = _padded(x, padding, 0.0)
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh = _out(h, kh, stride[0], padding[0], dilation[0])
    ow = _out(wd, kw, stride[1], padding[1], dilation[1])
    out = np.zeros((n, o, oh, ow))
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                win = _window(xp[b], i, j, (kh, kw), stride, dilation)
                for f in range(o):
                    out[b, f, i, j] = np.sum(win * w[f])
    return out


def naive_conv2d_grad_input(g, w, in_hw, stride, padding, dilation):
    n, o, oh, ow = g.shape
    (h, wd), (ph, pw) = in_hw, padding
    gxp = np.zeros((n, w.shape[1], h + 2 * ph, wd + 2 * pw))
    for b in range(n):
        for f in range(o):
            for i in range(oh):
                for j in range(ow):
                    rs, cs = _rows_cols(i, j, w.shape[2:], stride, dilation)
                    gxp[b, :, rs, cs] += g[b, f, i, j] * w[f]
    return gxp[:, :, ph:ph + h, pw:pw + wd]


def naive_conv2d_grad_weight(x, g, kernel, stride, padding, dilation):
    xp = _padded(x, padding, 0.0)
    n, o, oh, ow = g.shape
    gw = np.zeros((o, x.shape[1]) + tuple(kernel))
    for b in range(n):
        for f in range(o):
            for i in range(oh):
                for j in range(ow):
                    gw[f] += g[b, f, i, j] * _window(xp[b], i, j, kernel, stride, dilation)
    return gw


def _pooled(x, kernel, stride, padding, dilation, value, reduce):
    xp = _padded(x, padding, value)
    n, c, h, w = x.shape
    oh = _out(h, kernel[0], stride[0], padding[0], dilation[0])
    ow = _out(w, kernel[1], stride[1], padding[1], dilation[1])
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = reduce(_window(xp, i, j, kernel, stride, dilation))
    return out


def naive_max_pool2d(x, kernel, stride, padding, dilation=(1, 1)):
    return _pooled(x, kernel, stride, padding, dilation, -np.inf, lambda v: v.max(axis=(2, 3)))


def naive_avg_pool2d(x, kernel, stride, padding):
    return _pooled(x, kernel, stride, padding, (1, 1), 0.0, lambda v: v.mean(axis=(2, 3)))


def _first_max(xp, b, c, i, j, kernel, stride, dilation):
    """Padded (row, col) of the first maximum of a window, scanning rows then columns."""
    best, at = -np.inf, None
    for a in range(kernel[0]):
        for e in range(kernel[1]):
            r, q = i * stride[0] + a * dilation[0], j * stride[1] + e * dilation[1]
            if at is None or xp[b, c, r, q] > best:
                best, at = xp[b, c, r, q], (r, q)
    return at


def naive_max_pool2d_grad(x, g, kernel, stride, padding, dilation=(1, 1)):
    xp = _padded(x, padding, -np.inf)
    gxp = np.zeros_like(xp)
    for b, c, i, j in np.ndindex(*g.shape):
        r, q = _first_max(xp, b, c, i, j, kernel, stride, dilation)
        gxp[b, c, r, q] += g[b, c, i, j]
    (ph, pw), (h, w) = padding, x.shape[2:]
    return gxp[:, :, ph:ph + h, pw:pw + w]


def naive_max_pool2d_select(x, hh, kernel, stride, padding, dilation=(1, 1)):
    xp, hp = _padded(x, padding, -np.inf), _padded(hh, padding, 0.0)
    out = naive_max_pool2d(x, kernel, stride, padding, dilation)
    for b, c, i, j in np.ndindex(*out.shape):
        out[b, c, i, j] = hp[(b, c) + _first_max(xp, b, c, i, j, kernel, stride, dilation)]
    return out


def naive_avg_pool2d_grad(g, in_hw, kernel, stride, padding):
    (ph, pw), (h, w) = padding, in_hw
    gxp = np.zeros(g.shape[:2] + (h + 2 * ph, w + 2 * pw))
    for i in range(g.shape[2]):
        for j in range(g.shape[3]):
            rs, cs = _rows_cols(i, j, kernel, stride, (1, 1))
            gxp[:, :, rs, cs] += g[:, :, i, j, None, None] / (kernel[0] * kernel[1])
    return gxp[:, :, ph:ph + h, pw:pw + w]


# -- conv2d cases ------------------------------------------------------------------------------
# (label, x shape, w shape, stride, padding, dilation)
CONV_GEOMETRIES = [
    ("basic", (2, 3, 6, 6), (4, 3, 3, 3), (1, 1), (0, 0), (1, 1)),
    ("stride2_pad1", (2, 3, 7, 6), (4, 3, 3, 2), (2, 2), (1, 1), (1, 1)),
    ("mixed", (1, 2, 9, 8), (3, 2, 3, 3), (2, 1), (1, 2), (2, 1)),
    ("uncovered_rows", (1, 2, 8, 7), (2, 2, 2, 3), (3, 3), (0, 0), (1, 1)),
    ("kernel1x1", (2, 5, 4, 4), (3, 5, 1, 1), (1, 1), (0, 0), (1, 1)),
    ("kernel1x1_stride2_pad1", (1, 3, 5, 5), (2, 3, 1, 1), (2, 2), (1, 1), (1, 1)),
    ("dilated", (1, 2, 7, 7), (2, 2, 2, 2), (1, 1), (0, 0), (3, 2)),
]
_TOL = dict(rtol=1e-5, atol=1e-5)


def _conv_cases(label, xs, ws, s, p, d):
    h, w = xs[2:]
    gs = (xs[0], ws[0], _out(h, ws[2], s[0], p[0], d[0]), _out(w, ws[3], s[1], p[1], d[1]))
    geo = dict(stride=s, padding=p, dilation=d)
    yield OpCase(f"conv2d_{label}", lambda x, k: sg.nn.conv2d(x, k, **geo),
                 lambda x, k: naive_conv2d(x, k, s, p, d), [(xs, ws)], **_TOL)
    yield OpCase(f"conv2d_grad_input_{label}",
                 lambda g, k: apply(Conv2dGradInput(input_shape=xs, **geo), g, k),
                 lambda g, k: naive_conv2d_grad_input(g, k, (h, w), s, p, d), [(gs, ws)], **_TOL)
    yield OpCase(f"conv2d_grad_weight_{label}",
                 lambda x, g: apply(Conv2dGradWeight(weight_shape=ws, **geo), x, g),
                 lambda x, g: naive_conv2d_grad_weight(x, g, ws[2:], s, p, d), [(xs, gs)], **_TOL)


for _geometry in CONV_GEOMETRIES:
    register(*_conv_cases(*_geometry))

register(
    OpCase("conv2d_bias", lambda x, k, b: sg.nn.conv2d(x, k, b, padding=1),
           lambda x, k, b: naive_conv2d(x, k, (1, 1), (1, 1), (1, 1)) + b[:, None, None],
           [((2, 3, 5, 5), (4, 3, 3, 3), (4,))], **_TOL),
    OpCase("conv2d_same", lambda x, k: sg.nn.conv2d(x, k, padding="same", dilation=2),
           lambda x, k: naive_conv2d(x, k, (1, 1), (2, 2), (2, 2)),
           [((1, 2, 6, 5), (3, 2, 3, 3))], **_TOL),
)


# -- pooling cases -----------------------------------------------------------------------------
# (label, x shape, kernel, stride, padding, dilation); dilation only for max pooling
POOL_GEOMETRIES = [
    ("k2", (2, 3, 6, 6), (2, 2), (2, 2), (0, 0), (1, 1)),
    ("k3_s2_p1", (2, 2, 7, 5), (3, 3), (2, 2), (1, 1), (1, 1)),
    ("overlap_mixed", (1, 2, 6, 7), (3, 2), (1, 2), (1, 1), (1, 1)),
    ("k1_s2", (1, 1, 5, 5), (1, 1), (2, 2), (0, 0), (1, 1)),
    ("dilated", (1, 2, 7, 6), (2, 3), (1, 1), (1, 1), (2, 1)),
]


def _pool_cases(label, xs, k, s, p, d):
    h, w = xs[2:]
    ys = xs[:2] + (_out(h, k[0], s[0], p[0], d[0]), _out(w, k[1], s[1], p[1], d[1]))
    geo = dict(kernel_size=k, stride=s, padding=p, dilation=d)
    yield OpCase(f"max_pool2d_{label}",
                 lambda x: sg.nn.max_pool2d(x, k, s, p, dilation=d),
                 lambda x: naive_max_pool2d(x, k, s, p, d), [(xs,)], inputs=[distinct])
    yield OpCase(f"max_pool2d_grad_{label}",
                 lambda x, g: apply(MaxPool2dGrad(**geo), x, g),
                 lambda x, g: naive_max_pool2d_grad(x, g, k, s, p, d), [(xs, ys)],
                 inputs=[distinct, None])
    yield OpCase(f"max_pool2d_select_{label}",
                 lambda x, hh: apply(MaxPool2dSelect(**geo), x, hh),
                 lambda x, hh: naive_max_pool2d_select(x, hh, k, s, p, d), [(xs, xs)],
                 inputs=[distinct, None])
    if d != (1, 1):
        return
    yield OpCase(f"avg_pool2d_{label}", lambda x: sg.nn.avg_pool2d(x, k, s, p),
                 lambda x: naive_avg_pool2d(x, k, s, p), [(xs,)], **_TOL)
    yield OpCase(f"avg_pool2d_grad_{label}",
                 lambda g: apply(AvgPool2dGrad(input_size=(h, w), **geo), g),
                 lambda g: naive_avg_pool2d_grad(g, (h, w), k, s, p), [(ys,)], **_TOL)


for _geometry in POOL_GEOMETRIES:
    register(*_pool_cases(*_geometry))
