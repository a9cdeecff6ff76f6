"""Fused: an elementwise kernel (optionally ending in a reduction) as one graph node.

The body is a small SSA list of scalar instructions over the node's inputs:
``body[j] = (op, args)`` where ``op`` is an elementwise op instance (or a ScalarConst)
and ``args`` are refs: ``k < n_inputs`` is input k, ``n_inputs + j`` is instruction j.
The last instruction is the value. Inputs broadcast statically to ``space``, the
iteration shape; with ``reduce`` set, the value is reduced over ``axes`` of it.
The code generator turns one Fused node into one loop nest; the reference evaluates
the body with each op's numpy semantics.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from symgraph.errors import ShapeError
from symgraph.op import Op
from symgraph.ops.reductions import reduced_shape
from symgraph.types import TensorType, broadcast_shapes

REDUCERS = {"sum": np.sum, "max": np.max, "min": np.min, "prod": np.prod}


@dataclass(frozen=True, kw_only=True)
class ScalarConst(Op):
    """A scalar constant inlined into a fused body."""

    value: float
    dtype: np.dtype

    def infer(self):
        return TensorType(self.dtype, ())

    def reference(self):
        return np.asarray(self.value, dtype=self.dtype)

    def short(self) -> str:
        """The value as its dtype prints it: 0.1, not 0.10000000149011612 for float32."""
        return str(np.asarray(self.value, dtype=self.dtype)[()])


@dataclass(frozen=True, kw_only=True)
class Fused(Op):
    n_inputs: int
    body: tuple            # ((op, (ref, ...)), ...)
    dtypes: tuple          # dtype of each instruction's result
    space: tuple           # the iteration shape (dims)
    reduce: str | None = None
    axes: tuple = ()
    keepdims: bool = False

    def infer(self, *types):
        space, _ = broadcast_shapes("fused", [t.shape for t in types])
        if len(space) != len(self.space) or any(
                a != b and not (type(a) is int and a == 1) for a, b in zip(space, self.space)):
            raise ShapeError(f"fused: inputs broadcast to {space}, the kernel iterates over "
                             f"{self.space}")
        dt = np.dtype(self.dtypes[-1])
        if self.reduce is None:
            return TensorType(dt, self.space)
        return TensorType(dt, reduced_shape(self.space, self.axes, self.keepdims))

    def requires(self, *types):
        return broadcast_shapes("fused", [t.shape for t in types] + [self.space])[1]

    def reference(self, *xs):
        vals = list(xs)
        with np.errstate(all="ignore"):
            for (op, args), dt in zip(self.body, self.dtypes):
                v = op.reference(*(vals[a] for a in args))
                vals.append(np.asarray(v).astype(dt, copy=False))
            out = np.broadcast_to(vals[-1], self.space)
            if self.reduce is not None:
                acc = {"dtype": np.dtype(self.dtypes[-1])} if self.reduce in ("sum", "prod") else {}
                out = REDUCERS[self.reduce](out, axis=self.axes, keepdims=self.keepdims, **acc)
        return np.array(out, order="C")  # ascontiguousarray would make a 0-d result 1-d

    def __str__(self):
        """``fused{tanh(add(i0, i1))}``; an instruction used twice is bound once
        (``t3 = ...; ``) so a body that shares values prints in linear size."""
        n = self.n_inputs
        uses = [0] * (n + len(self.body))
        for _, args in self.body:
            for a in args:
                uses[a] += 1
        names, lets = [f"i{k}" for k in range(n)], []
        for k, (op, args) in enumerate(self.body):
            text = (op.short() if isinstance(op, ScalarConst)
                    else f"{op.name}({', '.join(names[a] for a in args)})")
            if uses[n + k] > 1 and not isinstance(op, ScalarConst):
                lets.append(f"t{k} = {text}; ")
                text = f"t{k}"
            names.append(text)
        red = f"{self.reduce}[{self.axes}]" if self.reduce else ""
        return f"fused{red}{{{''.join(lets)}{names[-1]}}}"


def single(op, in_types, out_type) -> Fused:
    """The one-instruction kernel of a plain elementwise node."""
    n = len(in_types)
    return Fused(n_inputs=n, body=((op, tuple(range(n))),), dtypes=(out_type.dtype,), space=out_type.shape)
