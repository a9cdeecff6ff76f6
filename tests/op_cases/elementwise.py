"""Op cases of the elementwise family."""
import numpy as np

import symgraph as sg
from ..opinfo import (OpCase, register, normal, positive, unit_open, away_from_zero,
                      distinct, integers)

UNARY_SHAPES = [((3, 4),), ((0, 3),), ((1,),), ((),), ((2, 1, 3),)]
BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((0, 3), (1, 3)),
                 ((1,), ()), ((2, 1, 3), (4, 1))]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def unary(name, fn, ref, domain=normal, **kw):
    register(OpCase(name, fn, ref, UNARY_SHAPES, inputs=(domain,), **kw))


def binary(name, fn, ref, domains=(normal, normal), **kw):
    register(OpCase(name, fn, ref, BINARY_SHAPES, inputs=domains, **kw))


unary("negative", sg.negative, np.negative)
unary("abs", sg.abs, np.abs, away_from_zero)
unary("sign", sg.sign, np.sign, away_from_zero, grad_inputs=())
unary("exp", sg.exp, np.exp)
unary("log", sg.log, np.log, positive)
unary("log1p", sg.log1p, np.log1p, unit_open)
unary("expm1", sg.expm1, np.expm1)
unary("sqrt", sg.sqrt, np.sqrt, positive)
unary("square", sg.square, np.square)
unary("reciprocal", sg.reciprocal, np.reciprocal, away_from_zero)
unary("tanh", sg.tanh, np.tanh)
unary("sigmoid", sg.sigmoid, _sigmoid)
unary("relu", sg.relu, lambda x: np.maximum(x, 0), away_from_zero)
unary("softplus", sg.softplus, lambda x: np.logaddexp(0, x))
unary("sin", sg.sin, np.sin)
unary("cos", sg.cos, np.cos)
unary("cast_f64_to_f32", lambda x: sg.cast(x, "float32"), lambda x: x.astype(np.float32),
      dtypes=("float64",), grad_eps=1e-2, grad_rtol=1e-3)
unary("cast_to_int32", lambda x: x.astype("int32"), lambda x: x.astype(np.int32), grad_inputs=())

binary("add", sg.add, np.add)
binary("subtract", sg.subtract, np.subtract)
binary("multiply", sg.multiply, np.multiply)
binary("divide", sg.divide, np.divide, (normal, away_from_zero))
binary("power", sg.power, np.power, (positive, normal))
binary("maximum", sg.maximum, np.maximum, (distinct, lambda r, s, d: distinct(r, s, d) + 0.11))
binary("minimum", sg.minimum, np.minimum, (distinct, lambda r, s, d: distinct(r, s, d) + 0.11))
for _name, _fn, _ref in [("less", sg.less, np.less), ("less_equal", sg.less_equal, np.less_equal),
                         ("greater", sg.greater, np.greater),
                         ("greater_equal", sg.greater_equal, np.greater_equal),
                         ("equal", sg.equal, np.equal), ("not_equal", sg.not_equal, np.not_equal)]:
    binary(_name, _fn, _ref, (integers(0, 3), integers(0, 3)), grad_inputs=())

_bool = (integers(0, 2), integers(0, 2))
binary("logical_and", sg.logical_and, np.logical_and, _bool, input_dtypes=("bool", "bool"),
       grad_inputs=())
binary("logical_or", sg.logical_or, np.logical_or, _bool, input_dtypes=("bool", "bool"),
       grad_inputs=())
unary("logical_not", sg.logical_not, np.logical_not, integers(0, 2), input_dtypes=("bool",),
      grad_inputs=())

register(
    OpCase("where", sg.where, np.where, [((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), ()),
                                         ((0, 2), (0, 2), (1, 2))],
           inputs=(integers(0, 2), normal, normal), input_dtypes=("bool", None, None)),
    OpCase("clip", sg.clip, lambda x, lo, hi: np.clip(x, lo, hi),
           [((3, 4), (), ()), ((5,), (5,), (1,))],
           inputs=(normal, lambda r, s, d: np.full(s, -0.5, d), lambda r, s, d: np.full(s, 0.6, d))),
)
