"""The public functions of symgraph in one namespace (numpy names, Theano where numpy has none).

Ops and tensors call back into this module, so every public function is defined once.
"""
from __future__ import annotations

from .op import apply
from .ops import elementwise as _ew
from .ops.leaves import placeholder, constant, shared, as_tensor, dim_value
from .ops.elementwise import cast
from .ops.reductions import (sum, prod, max, min, argmax, argmin, mean, var, std,
                             logsumexp)
from .ops.shape import (reshape, transpose, broadcast_to, expand_dims, squeeze,
                        zeros_like, ones_like, zeros, ones)
from .ops.indexing import getitem, take, one_hot
from .ops.joining import pad, concatenate, stack
from .ops.linalg import matmul, dot, outer


def _unary(cls):
    def f(x):
        return apply(cls(), x)
    f.__name__ = cls.__name__.lower()
    f.__doc__ = cls.__doc__
    return f


def _binary(cls):
    def f(x, y):
        return apply(cls(), x, y)
    f.__name__ = cls.__name__.lower()
    f.__doc__ = cls.__doc__
    return f


negative = _unary(_ew.Negative)
abs = _unary(_ew.Abs)
sign = _unary(_ew.Sign)
exp = _unary(_ew.Exp)
log = _unary(_ew.Log)
log1p = _unary(_ew.Log1p)
expm1 = _unary(_ew.Expm1)
sqrt = _unary(_ew.Sqrt)
square = _unary(_ew.Square)
reciprocal = _unary(_ew.Reciprocal)
tanh = _unary(_ew.Tanh)
sigmoid = _unary(_ew.Sigmoid)
relu = _unary(_ew.Relu)
softplus = _unary(_ew.Softplus)
sin = _unary(_ew.Sin)
cos = _unary(_ew.Cos)
logical_not = _unary(_ew.LogicalNot)
isfinite = _unary(_ew.IsFinite)
stop_gradient = _unary(_ew.StopGradient)

add = _binary(_ew.Add)
subtract = _binary(_ew.Subtract)
multiply = _binary(_ew.Multiply)
divide = _binary(_ew.Divide)
power = _binary(_ew.Power)
maximum = _binary(_ew.Maximum)
minimum = _binary(_ew.Minimum)
less = _binary(_ew.Less)
less_equal = _binary(_ew.LessEqual)
greater = _binary(_ew.Greater)
greater_equal = _binary(_ew.GreaterEqual)
equal = _binary(_ew.Equal)
not_equal = _binary(_ew.NotEqual)
logical_and = _binary(_ew.LogicalAnd)
logical_or = _binary(_ew.LogicalOr)


def where(condition, x, y):
    """``x`` where ``condition`` is true, else ``y`` (broadcast together)."""
    return apply(_ew.Where(), condition, x, y)


def clip(x, lo, hi):
    """Limit ``x`` to ``[lo, hi]`` as numpy.clip does."""
    return apply(_ew.Clip(), x, lo, hi)


from .nn import softmax, log_softmax  # noqa: E402  (numpy-style names at top level too)

__all__ = [n for n, v in list(globals().items())
           if not n.startswith("_") and callable(v) and n != "apply"]
