"""Elementwise ops: one output element from the same-position elements of the
(statically broadcast) inputs. Each class is the op's whole definition."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import DTypeError
from ..op import Op, apply
from ..types import TensorType, broadcast_shapes, result_dtype, as_dtype, is_float

_FLOAT64 = np.dtype("float64")
_BOOL = np.dtype("bool")


@dataclass(frozen=True, kw_only=True)
class Elementwise(Op):
    elementwise = True
    # dtype rule: "same" (promoted inputs), "float" (ints become float64, as numpy),
    # "bool" (predicate), "numeric" (promoted, bool refused)
    kind: ClassVar[str] = "same"
    arity: ClassVar[int] = 1

    def infer(self, *types):
        if len(types) != self.arity:
            raise TypeError(f"{self.name} takes {self.arity} inputs, got {len(types)}")
        shape, _ = broadcast_shapes(self.name, [t.shape for t in types])
        return TensorType(self.out_dtype(*types), shape, all(t.weak for t in types))

    def requires(self, *types):
        return broadcast_shapes(self.name, [t.shape for t in types])[1]

    def weak_dtype(self, *types):
        return None if all(t.weak for t in types) else result_dtype(*types)

    def out_dtype(self, *types) -> np.dtype:
        dt = result_dtype(*types)
        if self.kind == "bool":
            return _BOOL
        if self.kind == "float" and not is_float(dt):
            return _FLOAT64
        if self.kind == "numeric" and dt == _BOOL:
            raise DTypeError(f"{self.name}: boolean input is not supported; cast it first")
        return dt

    def reference(self, *xs):
        # The executor casts the result to the node's dtype (weak scalars may widen it here).
        with np.errstate(all="ignore"):
            return np.asarray(self.compute(*xs))

    def compute(self, *xs):
        raise NotImplementedError


def unbroadcast(g, type_):
    """Sum ``g`` down to ``type_``'s shape: the vjp of a static broadcast."""
    from .. import api
    out_nd, in_shape = g.ndim, type_.shape
    lead = out_nd - len(in_shape)
    axes = list(range(lead))
    for k, d in enumerate(in_shape):
        if type(d) is int and d == 1 and not (type(g.shape[lead + k]) is int and g.shape[lead + k] == 1):
            axes.append(lead + k)
    if axes:
        g = api.sum(g, axis=tuple(axes), keepdims=True)
    if lead or tuple(g.shape) != tuple(in_shape):
        # also when dims differ only by name (N vs 0, or N vs M, tied by a requires pair)
        g = api.reshape(g, in_shape)
    if g.dtype != type_.dtype:
        g = api.cast(g, type_.dtype)
    return g


def _def_unary(name, compute, vjp=None, kind="float", differentiable=True, doc=""):
    cls = type(name, (Elementwise,), {
        "__doc__": doc or f"Elementwise {name.lower()}.",
        "__module__": __name__,
        "kind": kind, "arity": 1, "differentiable": differentiable,
        "compute": lambda self, x: compute(x),
    })
    if vjp is not None:
        cls.vjp = lambda self, inputs, output, g: [vjp(inputs[0], output, g)]
    return dataclass(frozen=True, kw_only=True)(cls)


def _api():
    from .. import api
    return api


def _sigmoid(x):
    out = np.empty_like(x, dtype=np.result_type(x, np.float32) if x.dtype.kind == "f" else np.float64)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _softplus(x):
    return np.logaddexp(np.zeros((), dtype=x.dtype if x.dtype.kind == "f" else np.float64), x)


a = _api
Negative = _def_unary("Negative", np.negative, lambda x, y, g: -g, kind="numeric")
Abs = _def_unary("Abs", np.abs, lambda x, y, g: g * a().sign(x), kind="numeric")
Sign = _def_unary("Sign", np.sign, kind="numeric", differentiable=False)
Exp = _def_unary("Exp", np.exp, lambda x, y, g: g * y)
Log = _def_unary("Log", np.log, lambda x, y, g: g / x)
Log1p = _def_unary("Log1p", np.log1p, lambda x, y, g: g / (x + 1.0))
Expm1 = _def_unary("Expm1", np.expm1, lambda x, y, g: g * (y + 1.0))
Sqrt = _def_unary("Sqrt", np.sqrt, lambda x, y, g: g * 0.5 / y)
Square = _def_unary("Square", np.square, lambda x, y, g: g * (x * 2.0), kind="numeric")
Reciprocal = _def_unary("Reciprocal", lambda x: 1.0 / x, lambda x, y, g: -g * a().square(y))
Tanh = _def_unary("Tanh", np.tanh, lambda x, y, g: g * (1.0 - a().square(y)))
Sigmoid = _def_unary("Sigmoid", _sigmoid, lambda x, y, g: g * (y * (1.0 - y)))
Relu = _def_unary("Relu", lambda x: np.maximum(x, 0), lambda x, y, g: a().where(x > 0, g, 0.0),
                  kind="numeric")
Softplus = _def_unary("Softplus", _softplus, lambda x, y, g: g * a().sigmoid(x))
Sin = _def_unary("Sin", np.sin, lambda x, y, g: g * a().cos(x))
Cos = _def_unary("Cos", np.cos, lambda x, y, g: -g * a().sin(x))
LogicalNot = _def_unary("LogicalNot", np.logical_not, kind="bool", differentiable=False)


@dataclass(frozen=True, kw_only=True)
class Binary(Elementwise):
    arity = 2


def _def_binary(name, compute, vjp=None, kind="same", differentiable=True, **flags):
    body = {"__doc__": f"Elementwise {name.lower()} with broadcasting.", "__module__": __name__,
            "kind": kind, "differentiable": differentiable,
            "compute": lambda self, x, y: compute(x, y), **flags}
    cls = type(name, (Binary,), body)
    if vjp is not None:
        def _vjp(self, inputs, output, g, _rule=vjp):
            x, y = inputs
            gx, gy = _rule(x, y, output, g)
            return [None if gx is None else unbroadcast(gx, x.type),
                    None if gy is None else unbroadcast(gy, y.type)]
        cls.vjp = _vjp
    return dataclass(frozen=True, kw_only=True)(cls)


def _true_divide(x, y):
    return np.true_divide(x, y)


def _power_vjp(x, y, out, g):
    api = a()
    gx = g * y * api.power(x, y - 1) if is_float(x.dtype) else None
    gy = g * out * api.log(api.where(x > 0, x, 1.0)) if is_float(y.dtype) else None
    return gx, gy


def _tie_mask(x, y, op):
    api = a()
    win = api.cast(op(x, y), output_dtype(x, y))
    tie = api.cast(api.equal(x, y), output_dtype(x, y))
    return win + tie * 0.5


def output_dtype(*ts):
    return result_dtype(*(t.type for t in ts))


def _max_vjp(x, y, out, g):
    m = _tie_mask(x, y, a().greater)
    return g * m, g * (1.0 - m)


def _min_vjp(x, y, out, g):
    m = _tie_mask(x, y, a().less)
    return g * m, g * (1.0 - m)


Add = _def_binary("Add", np.add, lambda x, y, o, g: (g, g), kind="numeric",
                  commutative=True, associative=True)
Subtract = _def_binary("Subtract", np.subtract, lambda x, y, o, g: (g, -g), kind="numeric")
Multiply = _def_binary("Multiply", np.multiply, lambda x, y, o, g: (g * y, g * x), kind="numeric",
                       commutative=True, associative=True)
Divide = _def_binary("Divide", _true_divide, lambda x, y, o, g: (g / y, -g * o / y), kind="float")
Power = _def_binary("Power", np.power, _power_vjp, kind="numeric")
Maximum = _def_binary("Maximum", np.maximum, _max_vjp, kind="numeric", commutative=True,
                      associative=True, idempotent=True)
Minimum = _def_binary("Minimum", np.minimum, _min_vjp, kind="numeric", commutative=True,
                      associative=True, idempotent=True)
Less = _def_binary("Less", np.less, kind="bool", differentiable=False)
LessEqual = _def_binary("LessEqual", np.less_equal, kind="bool", differentiable=False)
Greater = _def_binary("Greater", np.greater, kind="bool", differentiable=False)
GreaterEqual = _def_binary("GreaterEqual", np.greater_equal, kind="bool", differentiable=False)
Equal = _def_binary("Equal", np.equal, kind="bool", differentiable=False, commutative=True)
NotEqual = _def_binary("NotEqual", np.not_equal, kind="bool", differentiable=False,
                       commutative=True)
LogicalAnd = _def_binary("LogicalAnd", np.logical_and, kind="bool", differentiable=False,
                         commutative=True, associative=True, idempotent=True)
LogicalOr = _def_binary("LogicalOr", np.logical_or, kind="bool", differentiable=False,
                        commutative=True, associative=True, idempotent=True)


@dataclass(frozen=True, kw_only=True)
class Where(Elementwise):
    """``where(cond, x, y)``: x where cond is true, else y."""

    arity = 3

    def weak_dtype(self, c, x, y):
        return Elementwise.weak_dtype(self, x, y)  # the condition is not promoted with x, y

    def out_dtype(self, c, x, y):
        if c.dtype != _BOOL:
            raise DTypeError(f"where: the condition must be bool, got {c.dtype}")
        return result_dtype(x, y)

    def compute(self, c, x, y):
        return np.where(c, x, y)

    def vjp(self, inputs, output, g):
        api = a()
        c, x, y = inputs
        zero = api.zeros_like(g)
        return [None, unbroadcast(api.where(c, g, zero), x.type),
                unbroadcast(api.where(c, zero, g), y.type)]


@dataclass(frozen=True, kw_only=True)
class Clip(Elementwise):
    """``clip(x, lo, hi)`` = minimum(maximum(x, lo), hi), as numpy."""

    arity = 3
    kind = "numeric"

    def compute(self, x, lo, hi):
        return np.minimum(np.maximum(x, lo), hi)

    def vjp(self, inputs, output, g):
        api = a()
        x, lo, hi = inputs
        zero = api.zeros_like(g)
        below, above = x < lo, x > hi
        inside = api.logical_not(below | above)
        # Where lo > hi numpy returns hi: the gradient follows the value that was chosen.
        to_hi = above | (lo > hi)
        inside = inside & api.logical_not(lo > hi)
        to_lo = below & api.logical_not(lo > hi)
        return [unbroadcast(api.where(inside, g, zero), x.type),
                unbroadcast(api.where(to_lo, g, zero), lo.type),
                unbroadcast(api.where(to_hi, g, zero), hi.type)]


@dataclass(frozen=True, kw_only=True)
class Cast(Elementwise):
    dtype: np.dtype

    def out_dtype(self, x):
        return self.dtype

    def compute(self, x):
        return np.asarray(x).astype(self.dtype)

    def vjp(self, inputs, output, g):
        (x,) = inputs
        if is_float(x.dtype) and is_float(self.dtype):
            return [a().cast(g, x.dtype)]
        return [None]

    @property
    def differentiable(self):
        return is_float(self.dtype)


def cast(x, dtype):
    dt = as_dtype(dtype, what="cast")
    return apply(Cast(dtype=dt), x)


IsFinite = _def_unary("IsFinite", np.isfinite, kind="bool", differentiable=False)


@dataclass(frozen=True, kw_only=True)
class StopGradient(Elementwise):
    """Identity whose gradient is zero: the value passes, the dependence does not."""

    def compute(self, x):
        return x

    def vjp(self, inputs, output, g):
        return [None]
