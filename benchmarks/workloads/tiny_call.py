"""f(x, y) = x*y + 1 on 10-element arrays: the fixed cost of one call.

Almost no arithmetic, so this measures dispatch: argument checks, binding dims,
allocating the output, and crossing into native code.
"""
from __future__ import annotations

import numpy as np

from common import Bench
import peers

NAME = "tiny_call"
TITLE = "f(x, y) = x*y + 1 on 10 elements (cost of one call)"
CHECK_CALLS = 1


def cases(quick: bool):
    return [{"n": 10}]


def label(case) -> str:
    return f"{case['n']} elements"


def make_data(case, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal(case["n"]).astype(np.float32),
            "y": rng.standard_normal(case["n"]).astype(np.float32)}


def build_symgraph(data) -> Bench:
    sg = peers.load_symgraph()
    with sg.Graph():
        x = sg.placeholder(shape=(None,), name="x")
        y = sg.placeholder(shape=(None,), name="y")
        f, seconds = peers.compile_symgraph([x, y], x * y + 1)
    xv, yv = data["x"], data["y"]
    return Bench(lambda: f(xv, yv), compile_seconds=seconds, compiled=f)


def build_numpy(data) -> Bench:
    x, y = data["x"], data["y"]
    return Bench(lambda: x * y + 1)


def build_torch(data) -> Bench:
    torch = peers.load_torch()
    x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])
    return Bench(lambda: x * y + 1)


def build_jax(data) -> Bench:
    jax, jnp = peers.load_jax()
    f = jax.jit(lambda x, y: x * y + 1)
    x, y = jnp.asarray(data["x"]), jnp.asarray(data["y"])
    return Bench(lambda: f(x, y).block_until_ready())


def build_pytensor(data) -> Bench:
    _, pt, _ = peers.load_pytensor()
    x = pt.vector("x", dtype="float32")
    y = pt.vector("y", dtype="float32")
    f, seconds = peers.compile_pytensor([x, y], x * y + np.float32(1))
    xv, yv = data["x"], data["y"]
    return Bench(lambda: f(xv, yv), compile_seconds=seconds, note=peers.pytensor_note())


BUILDERS = {"symgraph": build_symgraph, "numpy": build_numpy, "torch": build_torch,
            "jax": build_jax, "pytensor": build_pytensor}
