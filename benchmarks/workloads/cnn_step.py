"""One SGD step of a small CNN on 28x28x1 images (NCHW), softmax cross-entropy.

conv3x3(16, padding 1) - relu - maxpool2 - conv3x3(32, padding 1) - relu - maxpool2 - dense(10)
"""
from __future__ import annotations

import numpy as np

from common import Bench
import peers

NAME = "cnn_step"
TITLE = "SGD step, conv3x3(16)-relu-pool-conv3x3(32)-relu-pool-dense(10), 28x28x1"
LR = 0.01
CHECK_CALLS = 2
FLAT = 32 * 7 * 7


def cases(quick: bool):
    return [{"batch": 64}]


def label(case) -> str:
    return f"batch {case['batch']}"


def make_data(case, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)

    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    params = [he((16, 1, 3, 3), 9), np.zeros(16, np.float32),
              he((32, 16, 3, 3), 144), np.zeros(32, np.float32),
              he((FLAT, 10), FLAT) * np.float32(0.1), np.zeros(10, np.float32)]
    n = case["batch"]
    return {"params": params,
            "x": rng.standard_normal((n, 1, 28, 28)).astype(np.float32),
            "y": rng.integers(0, 10, n).astype(np.int64)}


def build_symgraph(data) -> Bench:
    sg = peers.load_symgraph()
    with sg.Graph():
        x = sg.placeholder(shape=("batch", 1, 28, 28), name="x")
        y = sg.placeholder(shape=("batch",), dtype="int64", name="y")
        ps = [sg.shared(p, name=f"p{k}") for k, p in enumerate(data["params"])]
        w1, b1, w2, b2, w3, b3 = ps
        h = sg.nn.max_pool2d(sg.relu(sg.nn.conv2d(x, w1, b1, padding=1)), 2)
        h = sg.nn.max_pool2d(sg.relu(sg.nn.conv2d(h, w2, b2, padding=1)), 2)
        logits = sg.reshape(h, (h.shape[0], FLAT)) @ w3 + b3
        loss = sg.nn.cross_entropy(logits, y)
        grads = sg.grad(loss, ps)
        f, seconds = peers.compile_symgraph(
            [x, y], loss, updates=[(p, p - LR * g) for p, g in zip(ps, grads)])
    xb, yb = data["x"], data["y"]
    return Bench(lambda: f(xb, yb), compile_seconds=seconds, compiled=f)


# -- numpy, by hand: im2col convolution, reshape pooling -----------------------------------
def _im2col(x, k=3, pad=1):
    """(N, C, H, W) -> (N*H*W, C*k*k) patches of a stride-1 'same' convolution."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * w, c * k * k)


def _col2im(dcols, shape, k=3, pad=1):
    """The adjoint of _im2col: scatter-add patch gradients back onto the image."""
    n, c, h, w = shape
    d = dcols.reshape(n, h, w, c, k, k)
    dxp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dcols.dtype)
    for i in range(k):
        for j in range(k):
            dxp[:, :, i:i + h, j:j + w] += d[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dxp[:, :, pad:pad + h, pad:pad + w]


def _conv(x, w, b):
    n, _, h, wd = x.shape
    cols = _im2col(x)
    out = cols @ w.reshape(w.shape[0], -1).T + b
    return out.reshape(n, h, wd, -1).transpose(0, 3, 1, 2), cols


def _conv_back(dout, cols, w, x_shape, need_dx=True):
    d2 = dout.transpose(0, 2, 3, 1).reshape(-1, w.shape[0])
    gw = (d2.T @ cols).reshape(w.shape)
    dx = _col2im(d2 @ w.reshape(w.shape[0], -1), x_shape) if need_dx else None
    return dx, gw, d2.sum(0)


def _pool(x):
    n, c, h, w = x.shape
    xr = x.reshape(n, c, h // 2, 2, w // 2, 2)
    return xr.max(axis=(3, 5)), xr


def _pool_back(dout, xr, out):
    mask = xr == out[:, :, :, None, :, None]
    return (mask * dout[:, :, :, None, :, None]).reshape(
        xr.shape[0], xr.shape[1], xr.shape[2] * 2, xr.shape[4] * 2)


def build_numpy(data) -> Bench:
    w1, b1, w2, b2, w3, b3 = params = [p.copy() for p in data["params"]]
    x, y = data["x"], data["y"]
    n = len(y)
    rows = np.arange(n)

    def step():
        z1, cols1 = _conv(x, w1, b1)
        p1, r1 = _pool(np.maximum(z1, 0))
        z2, cols2 = _conv(p1, w2, b2)
        p2, r2 = _pool(np.maximum(z2, 0))
        flat = p2.reshape(n, -1)
        logits = flat @ w3 + b3
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        loss = np.mean(np.log(s[:, 0]) - shifted[rows, y])
        d = e / s
        d[rows, y] -= 1
        d /= n
        g3, gb3 = flat.T @ d, d.sum(0)
        dz2 = _pool_back((d @ w3.T).reshape(p2.shape), r2, p2) * (z2 > 0)
        dp1, g2, gb2 = _conv_back(dz2, cols2, w2, p1.shape)
        dz1 = _pool_back(dp1, r1, p1) * (z1 > 0)
        _, g1, gb1 = _conv_back(dz1, cols1, w1, x.shape, need_dx=False)
        for p, g in zip(params, [g1, gb1, g2, gb2, g3, gb3]):
            p -= LR * g
        return loss

    return Bench(step)


def build_torch(data) -> Bench:
    torch = peers.load_torch()
    F = torch.nn.functional
    ps = [torch.tensor(p, requires_grad=True) for p in data["params"]]
    w1, b1, w2, b2, w3, b3 = ps
    opt = torch.optim.SGD(ps, lr=LR)
    x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])

    def step():
        opt.zero_grad(set_to_none=True)
        h = F.max_pool2d(torch.relu(F.conv2d(x, w1, b1, padding=1)), 2)
        h = F.max_pool2d(torch.relu(F.conv2d(h, w2, b2, padding=1)), 2)
        loss = F.cross_entropy(h.reshape(h.shape[0], FLAT) @ w3 + b3, y)
        loss.backward()
        opt.step()
        return loss.detach()

    return Bench(step, note=peers.torch_note())


def build_jax(data) -> Bench:
    jax, jnp = peers.load_jax()
    lax = jax.lax

    def conv(x, w, b):
        y = lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return y + b[None, :, None, None]

    def pool(x):
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def loss_fn(params, x, y):
        w1, b1, w2, b2, w3, b3 = params
        h = pool(jax.nn.relu(conv(x, w1, b1)))
        h = pool(jax.nn.relu(conv(h, w2, b2)))
        logp = jax.nn.log_softmax(h.reshape(h.shape[0], FLAT) @ w3 + b3, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    @jax.jit
    def update(params, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        return [p - LR * g for p, g in zip(params, grads)], loss

    state = [[jnp.asarray(p) for p in data["params"]]]
    x, y = jnp.asarray(data["x"]), jnp.asarray(data["y"].astype(np.int32))

    def step():
        state[0], loss = jax.block_until_ready(update(state[0], x, y))
        return loss

    return Bench(step)


def build_pytensor(data) -> Bench:
    """PyTensor 3 has no batched NCHW conv2d: the convolution is written as nine shifted
    slices and a tensordot (im2col inside the graph), pooling as reshape + max."""
    pytensor, pt, _ = peers.load_pytensor()
    from pytensor.tensor.special import log_softmax
    from pytensor.tensor.pad import pad

    def conv(x, w, b, hw):
        xp = pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        patches = pt.stack([xp[:, :, i:i + hw, j:j + hw] for i in range(3) for j in range(3)],
                           axis=2)                                   # (N, C, 9, H, W)
        w9 = w.reshape((w.shape[0], w.shape[1], 9))
        out = pt.tensordot(patches, w9, axes=[[1, 2], [1, 2]])       # (N, H, W, O)
        return out.dimshuffle(0, 3, 1, 2) + b.dimshuffle("x", 0, "x", "x")

    def pool(x, c, hw):
        return x.reshape((-1, c, hw // 2, 2, hw // 2, 2)).max(axis=(3, 5))

    x = pt.tensor4("x", dtype="float32")
    y = pt.vector("y", dtype="int64")
    ps = [pytensor.shared(p.copy(), name=f"p{k}") for k, p in enumerate(data["params"])]
    w1, b1, w2, b2, w3, b3 = ps
    h = pool(pt.maximum(conv(x, w1, b1, 28), 0), 16, 28)
    h = pool(pt.maximum(conv(h, w2, b2, 14), 0), 32, 14)
    logp = log_softmax(pt.dot(h.reshape((-1, FLAT)), w3) + b3, axis=1)
    loss = -pt.mean(logp[pt.arange(y.shape[0]), y])
    grads = pytensor.grad(loss, ps)
    lr = np.float32(LR)
    f, seconds = peers.compile_pytensor([x, y], loss,
                                        [(p, p - lr * g) for p, g in zip(ps, grads)])
    xb, yb = data["x"], data["y"]
    return Bench(lambda: f(xb, yb), compile_seconds=seconds,
                 note=f"{peers.pytensor_note()}; conv as shifted slices + tensordot")


BUILDERS = {"symgraph": build_symgraph, "numpy": build_numpy, "torch": build_torch,
            "jax": build_jax, "pytensor": build_pytensor}
