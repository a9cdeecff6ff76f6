"""One SGD step of a 784-512-256-10 ReLU MLP with softmax cross-entropy (integer labels)."""
from __future__ import annotations

import numpy as np

from common import Bench
import peers

NAME = "mlp_step"
TITLE = "SGD step, 784-512-256-10 ReLU MLP, softmax cross-entropy"
SIZES = (784, 512, 256, 10)
LR = 0.01
CHECK_CALLS = 2   # the second loss shows whether the first update was right


def cases(quick: bool):
    return [{"batch": 128}, {"batch": 1024}]


def label(case) -> str:
    return f"batch {case['batch']}"


def make_data(case, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        params.append((rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in))
                      .astype(np.float32))
        params.append(np.zeros(fan_out, np.float32))
    n = case["batch"]
    x = rng.standard_normal((n, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], n).astype(np.int64)
    return {"params": params, "x": x, "y": y}


def build_symgraph(data) -> Bench:
    sg = peers.load_symgraph()
    with sg.Graph():
        x = sg.placeholder(shape=("batch", SIZES[0]), name="x")
        y = sg.placeholder(shape=("batch",), dtype="int64", name="y")
        ps = [sg.shared(p, name=f"p{k}") for k, p in enumerate(data["params"])]
        w1, b1, w2, b2, w3, b3 = ps
        h = sg.relu(x @ w1 + b1)
        h = sg.relu(h @ w2 + b2)
        loss = sg.nn.cross_entropy(h @ w3 + b3, y)
        grads = sg.grad(loss, ps)
        f, seconds = peers.compile_symgraph(
            [x, y], loss, updates=[(p, p - LR * g) for p, g in zip(ps, grads)])
    xb, yb = data["x"], data["y"]
    return Bench(lambda: f(xb, yb), compile_seconds=seconds, compiled=f)


def build_numpy(data) -> Bench:
    """Forward and backward written out by hand, as from-scratch tutorials do."""
    w1, b1, w2, b2, w3, b3 = params = [p.copy() for p in data["params"]]
    x, y = data["x"], data["y"]
    n = len(y)
    rows = np.arange(n)

    def step():
        z1 = x @ w1 + b1
        h1 = np.maximum(z1, 0)
        z2 = h1 @ w2 + b2
        h2 = np.maximum(z2, 0)
        logits = h2 @ w3 + b3
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        loss = np.mean(np.log(s[:, 0]) - shifted[rows, y])
        d3 = e / s
        d3[rows, y] -= 1
        d3 /= n
        d2 = (d3 @ w3.T) * (z2 > 0)
        d1 = (d2 @ w2.T) * (z1 > 0)
        grads = [x.T @ d1, d1.sum(0), h1.T @ d2, d2.sum(0), h2.T @ d3, d3.sum(0)]
        for p, g in zip(params, grads):
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
        h = torch.relu(x @ w1 + b1)
        h = torch.relu(h @ w2 + b2)
        loss = F.cross_entropy(h @ w3 + b3, y)
        loss.backward()
        opt.step()
        return loss.detach()

    return Bench(step, note=peers.torch_note())


def build_jax(data) -> Bench:
    jax, jnp = peers.load_jax()

    def loss_fn(params, x, y):
        w1, b1, w2, b2, w3, b3 = params
        h = jax.nn.relu(x @ w1 + b1)
        h = jax.nn.relu(h @ w2 + b2)
        logp = jax.nn.log_softmax(h @ w3 + b3, axis=1)
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
    pytensor, pt, _ = peers.load_pytensor()
    from pytensor.tensor.special import log_softmax
    x = pt.matrix("x", dtype="float32")
    y = pt.vector("y", dtype="int64")
    ps = [pytensor.shared(p.copy(), name=f"p{k}") for k, p in enumerate(data["params"])]
    w1, b1, w2, b2, w3, b3 = ps
    h = pt.maximum(pt.dot(x, w1) + b1, 0)
    h = pt.maximum(pt.dot(h, w2) + b2, 0)
    logp = log_softmax(pt.dot(h, w3) + b3, axis=1)
    loss = -pt.mean(logp[pt.arange(y.shape[0]), y])
    grads = pytensor.grad(loss, ps)
    lr = np.float32(LR)
    f, seconds = peers.compile_pytensor([x, y], loss,
                                        [(p, p - lr * g) for p, g in zip(ps, grads)])
    xb, yb = data["x"], data["y"]
    return Bench(lambda: f(xb, yb), compile_seconds=seconds, note=peers.pytensor_note())


BUILDERS = {"symgraph": build_symgraph, "numpy": build_numpy, "torch": build_torch,
            "jax": build_jax, "pytensor": build_pytensor}
