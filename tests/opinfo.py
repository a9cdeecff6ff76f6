"""The op table: one entry per op (like PyTorch's OpInfo), shared by every harness.

An OpCase says how to build the op from placeholders, what numpy computes for it,
which input shapes to try and how to draw inputs. test_ops.py runs each case in the
reference executor against numpy and its gradient against finite differences;
the native compiler's tests run the same table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

FLOATS = ("float32", "float64")


def normal(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def positive(rng, shape, dtype):
    return rng.uniform(0.2, 2.0, shape).astype(dtype)


def unit_open(rng, shape, dtype):
    return rng.uniform(-0.9, 0.9, shape).astype(dtype)


def away_from_zero(rng, shape, dtype):
    x = rng.uniform(0.3, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    return x.astype(dtype)


def distinct(rng, shape, dtype):
    """Values with no ties, so max/min/sort-like gradients are well defined."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) * 0.37 - n * 0.15).astype(dtype)


def integers(low, high):
    def draw(rng, shape, dtype):
        return rng.integers(low, high, shape).astype(dtype)
    return draw


@dataclass
class OpCase:
    """``build(*tensors)`` makes the graph, ``ref(*arrays)`` is numpy's answer.

    ``shapes`` is a list of input-shape tuples (one shape per input). ``inputs``
    gives a drawing function per input (default ``normal``). ``dtypes`` gives, per
    test dtype, the dtype of each input (None: the test dtype). ``grad_inputs`` are
    the positions checked by finite differences (empty: no gradient test).
    """

    name: str
    build: Callable
    ref: Callable
    shapes: Sequence[tuple]
    inputs: Sequence[Callable] = ()
    input_dtypes: Sequence[Optional[str]] = ()
    dtypes: Sequence[str] = FLOATS
    grad_inputs: Optional[Sequence[int]] = None
    rtol: float = 1e-5
    atol: float = 1e-6
    grad_rtol: float = 1e-4
    grad_atol: float = 1e-6
    grad_eps: float = 1e-6
    tags: set = field(default_factory=set)

    def arity(self) -> int:
        return len(self.shapes[0])

    def draw(self, rng, shape_set, dtype):
        out = []
        for k, shape in enumerate(shape_set):
            gen = self.inputs[k] if k < len(self.inputs) and self.inputs[k] else normal
            dt = self.input_dtypes[k] if k < len(self.input_dtypes) and self.input_dtypes[k] else dtype
            out.append(np.asarray(gen(rng, shape, dt)).astype(dt))
        return out

    def grad_positions(self, arrays) -> list:
        if self.grad_inputs is not None:
            return list(self.grad_inputs)
        return [k for k, a in enumerate(arrays) if a.dtype.kind == "f"]

    def __str__(self):
        return self.name


CASES: list = []


def register(*cases: OpCase) -> None:
    for c in cases:
        if any(c.name == other.name for other in CASES):
            raise ValueError(f"duplicate op case {c.name}")
        CASES.append(c)


def all_cases() -> list:
    from . import op_cases  # noqa: F401  (registers every family)
    return list(CASES)
