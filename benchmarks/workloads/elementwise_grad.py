"""loss = sum(tanh(x*a + b)**2 + exp(-x)*sigmoid(x)) and d loss / dx over a large vector.

Pure elementwise work plus one reduction: what fusion into single loops and vectorized
math (tanh, exp, sigmoid) are for.
"""
from __future__ import annotations

import numpy as np

from common import Bench
import peers

NAME = "elementwise_grad"
TITLE = "sum(tanh(x*a+b)**2 + exp(-x)*sigmoid(x)) and its gradient"
A, B = 1.5, -0.25
CHECK_CALLS = 1


def cases(quick: bool):
    return [{"n": 1_000_000}]


def label(case) -> str:
    return f"{case['n']:,} elements"


def make_data(case, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal(case["n"]).astype(np.float32)}


def build_symgraph(data) -> Bench:
    sg = peers.load_symgraph()
    with sg.Graph():
        x = sg.placeholder(shape=(None,), name="x")
        loss = sg.sum(sg.tanh(x * A + B) ** 2 + sg.exp(-x) * sg.sigmoid(x))
        (gx,) = sg.grad(loss, [x])
        f, seconds = peers.compile_symgraph([x], [loss, gx])
    xv = data["x"]
    return Bench(lambda: f(xv), compile_seconds=seconds, compiled=f)


def build_numpy(data) -> Bench:
    x = data["x"]
    a, b = np.float32(A), np.float32(B)

    def step():
        t = np.tanh(x * a + b)
        e = np.exp(-x)
        s = 1 / (1 + e)
        loss = np.sum(t * t + e * s)
        # d/dx tanh(u)^2 = 2 t (1 - t^2) a;  d/dx e*s = -e*s + e*s*(1-s) = -e*s*s
        gx = 2 * t * (1 - t * t) * a - e * s * s
        return loss, gx

    return Bench(step)


def build_torch(data) -> Bench:
    torch = peers.load_torch()
    x = torch.from_numpy(data["x"]).requires_grad_(True)

    def step():
        loss = torch.sum(torch.tanh(x * A + B) ** 2 + torch.exp(-x) * torch.sigmoid(x))
        (gx,) = torch.autograd.grad(loss, x)
        return loss.detach(), gx

    return Bench(step, note=peers.torch_note())


def build_jax(data) -> Bench:
    jax, jnp = peers.load_jax()

    def loss_fn(x):
        return jnp.sum(jnp.tanh(x * A + B) ** 2 + jnp.exp(-x) * jax.nn.sigmoid(x))

    f = jax.jit(jax.value_and_grad(loss_fn))
    x = jnp.asarray(data["x"])
    return Bench(lambda: jax.block_until_ready(f(x)))


def build_pytensor(data) -> Bench:
    pytensor, pt, _ = peers.load_pytensor()
    x = pt.vector("x", dtype="float32")
    loss = pt.sum(pt.tanh(x * np.float32(A) + np.float32(B)) ** 2
                  + pt.exp(-x) * pt.sigmoid(x))
    f, seconds = peers.compile_pytensor([x], [loss, pytensor.grad(loss, x)])
    xv = data["x"]
    return Bench(lambda: f(xv), compile_seconds=seconds, note=peers.pytensor_note())


BUILDERS = {"symgraph": build_symgraph, "numpy": build_numpy, "torch": build_torch,
            "jax": build_jax, "pytensor": build_pytensor}
