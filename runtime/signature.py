"""Call-time argument checking, shared by every execution mode.

A Signature is built once per compiled function from plain data (dtypes, dims,
names, required dim equalities), so artifacts loaded without a graph can use it.
``bind`` turns user arguments into C-contiguous arrays of the declared dtypes and
the values of the symbolic dims, or raises InputError saying which argument is wrong.
"""
from __future__ import annotations

import numpy as np

from symgraph import dims as D
from symgraph.errors import InputError


class _Value:
    """An immutable record compared by its fields. (Not a frozen dataclass: creating
    one costs about a millisecond at import, a visible share of a warm sg.function.)"""

    __slots__ = ()

    def __init__(self, *values):
        for name, value in zip(self.__slots__, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable (cannot set {name!r})")

    def _fields(self):
        return tuple(getattr(self, n) for n in self.__slots__)

    def __eq__(self, other):
        return type(other) is type(self) and self._fields() == other._fields()

    def __hash__(self):
        return hash(self._fields())

    def __repr__(self):
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({inner})"


class ArgSpec(_Value):
    __slots__ = ("name", "dtype", "shape")  # shape: ints and symbol names (str)

    def describe(self) -> str:
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"


class Requirement(_Value):
    # left, right: Dims; where: the op and source line that imposed it
    __slots__ = ("left", "right", "where")


class Signature:
    def __init__(self, args, requirements=()):
        self.args = tuple(args)
        self.requirements = tuple(requirements)
        self.symbols = tuple(sorted({d for a in self.args for d in a.shape if isinstance(d, str)}))

    def bind(self, values):
        if len(values) != len(self.args):
            names = ", ".join(a.name for a in self.args)
            raise InputError(f"expected {len(self.args)} arguments ({names}), got {len(values)}")
        env: dict = {}
        origin: dict = {}
        arrays = []
        for k, (spec, value) in enumerate(zip(self.args, values)):
            arrays.append(self._check_one(k, spec, value, env, origin))
        for req in self.requirements:
            a, b = D.evaluate(req.left, env), D.evaluate(req.right, env)
            if a != b:
                raise InputError(f"sizes must agree: {req.left} = {a} but {req.right} = {b} "
                                 f"(required by {req.where}); arguments: {self._shapes(arrays)}")
        return arrays, env

    def _shapes(self, arrays) -> str:
        return ", ".join(f"{s.name}{tuple(a.shape)}" for s, a in zip(self.args, arrays))

    @staticmethod
    def _check_one(k, spec, value, env, origin):
        label = f"argument {k} ({spec.name})"
        arr = value if isinstance(value, np.ndarray) else _as_array(label, value)
        if arr.dtype != spec.dtype:
            if arr.dtype.kind not in "biuf":
                raise InputError(f"{label}: expected {spec.dtype} data, got {arr.dtype}")
            if not np.can_cast(arr.dtype, spec.dtype, casting="same_kind"):
                raise InputError(f"{label}: expected {spec.dtype}, got {arr.dtype}, which does "
                                 f"not convert to it under same_kind casting")
            arr = arr.astype(spec.dtype)
        if arr.ndim != len(spec.shape):
            raise InputError(f"{label}: expected rank {len(spec.shape)} "
                             f"({spec.describe()}), got shape {arr.shape}")
        for axis, (want, got) in enumerate(zip(spec.shape, arr.shape)):
            if isinstance(want, str):
                seen = env.get(want)
                if seen is None:
                    env[want] = got
                    origin[want] = (label, axis)
                elif seen != got:
                    o_label, o_axis = origin[want]
                    raise InputError(f"{label}: dim {axis} is {got}, but dim {want!r} was set "
                                     f"to {seen} by {o_label} dim {o_axis}; they must agree")
            elif want != got:
                raise InputError(f"{label}: dim {axis} must be {want} ({spec.describe()}), "
                                 f"got shape {arr.shape}")
        if not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)
        return arr


def _as_array(label, value):
    """An argument as an array; what numpy cannot convert is an InputError naming it."""
    from symgraph.tensor import Tensor
    if isinstance(value, Tensor):
        raise InputError(f"{label}: got the symbolic tensor {value!r}; a compiled function "
                         "takes arrays (numbers), not tensors")
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as e:
        raise InputError(f"{label}: cannot be converted to an array ({e})") from None


def signature_of(program) -> Signature:
    """The Signature of a Program's inputs and dim requirements."""
    from symgraph.op import format_source
    g = program.graph
    args = []
    for nid in program.inputs:
        node = g.node(nid)
        shape = tuple(d if type(d) is int else D.as_symbol(d) for d in node["type"].shape)
        args.append(ArgSpec(node["name"] or f"%{nid}", node["type"].dtype, shape))
    reqs = [Requirement(a, b, f"{g.op(nid).name} at {format_source(g.node(nid)['source'])}")
            for a, b, nid in program.requirements()]
    return Signature(args, reqs)
