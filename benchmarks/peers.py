"""Importing the frameworks a workload is compared with, the same way in every workload.

Each helper raises :class:`common.Skip` with a note when its framework is missing, so
a runner without the `bench` extra still runs symgraph against numpy.
"""
from __future__ import annotations

import os

from common import Skip, framework_module, timed

PYTENSOR_MODE_ENV = "SG_BENCH_PYTENSOR_MODE"
DEFAULT_PYTENSOR_MODE = "CVM"   # the C backend, Theano's lineage; works without numba


def load_symgraph():
    return framework_module("symgraph")


def compile_symgraph(inputs, outputs, updates=None):
    """sg.function(mode="native") and the seconds it took; a graph with an op that has
    no native lowering raises sg.UnsupportedError, which the runner reports as such."""
    sg = load_symgraph()
    return timed(sg.function, inputs, outputs, updates=updates, mode="native")


def load_torch():
    return framework_module("torch")


def torch_note() -> str:
    n = load_torch().get_num_threads()
    return f"{n} thread{'s' if n != 1 else ''}"


def load_jax():
    """(jax, jax.numpy), on the CPU in float32."""
    jax = framework_module("jax")
    import jax.numpy as jnp
    return jax, jnp


def load_pytensor():
    """(pytensor, pytensor.tensor, mode): floatX float32, and the mode named by
    $SG_BENCH_PYTENSOR_MODE (default CVM, the C backend; NUMBA needs numba's own llvmlite)."""
    pytensor = framework_module("pytensor")
    import pytensor.tensor as pt
    pytensor.config.floatX = "float32"
    mode = os.environ.get(PYTENSOR_MODE_ENV, DEFAULT_PYTENSOR_MODE)
    if mode == "CVM" and not pytensor.config.cxx:
        raise Skip("pytensor: the CVM mode needs a C++ compiler (none configured)")
    pytensor.config.mode = mode  # inner graphs (OpFromGraph: log_softmax ...) compile with it
    return pytensor, pt, mode


def compile_pytensor(inputs, outputs, updates=None):
    pytensor, _, mode = load_pytensor()
    return timed(pytensor.function, inputs, outputs, updates=updates or [], mode=mode)


def pytensor_note() -> str:
    return f"mode {os.environ.get(PYTENSOR_MODE_ENV, DEFAULT_PYTENSOR_MODE)}"
