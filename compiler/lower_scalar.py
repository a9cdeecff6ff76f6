"""Scalar lowering of elementwise ops: one emitter per op class, keyed by class.

An emitter takes the builder, the op, its argument registers (already converted to
the dtype the op computes in) and that dtype, and returns the result register.
Transcendental functions are calls to the module's out-of-line vecmath functions
(vecmath_lib: the loop vectorizer maps them to their vector variants).

Inside ``vector_lanes(n)`` registers are <n x T> vectors (vector_kernels.py): the same
emitters then build lane-wise IR, constants are splats, and math calls go straight to
the vector variants.
"""
from __future__ import annotations

import contextlib
import contextvars

import numpy as np
from llvmlite import ir

from symgraph.errors import UnsupportedError
from symgraph.ops import elementwise as E
from symgraph.types import result_dtype, TensorType
from . import vecmath_lib
from .fused import ScalarConst
from .irutil import I1, value_type, call_intrinsic

EMITTERS: dict = {}


def emits(*classes):
    def deco(fn):
        for c in classes:
            EMITTERS[c] = fn
        return fn
    return deco


_LANES = contextvars.ContextVar("symgraph_vector_lanes", default=0)


@contextlib.contextmanager
def vector_lanes(lanes: int):
    """Emit on <lanes x T> registers in this block (0: scalars)."""
    token = _LANES.set(lanes)
    try:
        yield
    finally:
        _LANES.reset(token)


def reg_type(dtype) -> ir.Type:
    """The register type of ``dtype``: a scalar, or a vector inside vector_lanes."""
    t = value_type(dtype)
    n = _LANES.get()
    return ir.VectorType(t, n) if n else t


def is_bool_reg(v) -> bool:
    t = v.type
    return (t.element if isinstance(t, ir.VectorType) else t) == I1


def is_float_dt(dt) -> bool:
    return np.dtype(dt).kind == "f"


def constant(dtype, value) -> ir.Constant:
    dt = np.dtype(dtype)
    n = _LANES.get()
    if n:
        return splat(ir.VectorType(value_type(dt), n), _scalar_constant(dt, value))
    return _scalar_constant(dt, value)


def _scalar_constant(dt, value) -> ir.Constant:
    t = value_type(dt)
    if dt == np.bool_:
        return ir.Constant(t, int(bool(value)))
    if dt.kind == "f":
        return ir.Constant(t, float(value))
    return ir.Constant(t, int(value))


_SPLATS: dict = {}


class _Splat(ir.FormattedConstant):
    def __init__(self, typ, text: str):
        # not through Constant.__init__: a vector type would wrap the text lane by lane
        self.type = typ
        self.constant = text


def splat(vty, scalar: ir.Constant) -> ir.Constant:
    """The vector constant with every lane ``scalar``, written ``splat (T v)``: llvmlite
    would spell out (and format) every lane, a good part of printing a vector kernel.
    ``scalar`` may already be a splat (``constant`` inside vector_lanes)."""
    if isinstance(scalar.type, ir.VectorType):
        return scalar
    text = f"splat ({scalar.type} {scalar.get_reference()})"
    key = (str(vty), text)
    c = _SPLATS.get(key)
    if c is None:
        c = _SPLATS[key] = _Splat(vty, text)
    return c


def convert(b, v, src, dst):
    """numpy's astype for one register."""
    if src is dst:
        return v
    src, dst = np.dtype(src), np.dtype(dst)
    if src == dst:
        return v
    st, dt = reg_type(src), reg_type(dst)
    if dst == np.bool_:
        if src.kind == "f":
            return b.fcmp_unordered("!=", v, constant(src, 0.0))
        return b.icmp_signed("!=", v, constant(src, 0))
    if src == np.bool_:
        return b.uitofp(v, dt) if dst.kind == "f" else b.zext(v, dt)
    if src.kind == "f" and dst.kind == "f":
        return b.fpext(v, dt) if src.itemsize < dst.itemsize else b.fptrunc(v, dt)
    if src.kind == "f":  # float -> int saturates (numpy leaves it undefined; never UB here)
        return call_intrinsic(b, "llvm.fptosi.sat", [v], overload=[dt, st], ret=dt)
    if dst.kind == "f":
        return b.sitofp(v, dt)
    return b.sext(v, dt) if src.itemsize < dst.itemsize else b.trunc(v, dt)


def compute_dtype(op, in_dtypes, out_dtype):
    """The dtype an op computes in: its result, or for predicates the promoted inputs."""
    if isinstance(op, (E.Less, E.LessEqual, E.Greater, E.GreaterEqual, E.Equal, E.NotEqual)):
        return result_dtype(*(TensorType(np.dtype(d), ()) for d in in_dtypes))
    if isinstance(op, (E.LogicalAnd, E.LogicalOr, E.LogicalNot)):
        return np.dtype(bool)
    if isinstance(op, (E.IsFinite, E.Cast)):
        return np.dtype(in_dtypes[0])
    return np.dtype(out_dtype)


# (op class, argument dtypes..., result dtype) -> compute_dtype's answer
_COMPUTE_DTYPES: dict = {}


def emit_op(b, op, args, in_dtypes, out_dtype):
    """Lower one scalar op application, converting arguments and the result as numpy would."""
    if isinstance(op, ScalarConst):
        return constant(op.dtype, op.value)
    key = (type(op), *in_dtypes, out_dtype)
    cdt = _COMPUTE_DTYPES.get(key)
    if cdt is None:
        cdt = _COMPUTE_DTYPES[key] = compute_dtype(op, in_dtypes, out_dtype)
    if isinstance(op, E.Where):
        conv = [convert(b, args[0], in_dtypes[0], np.bool_)] + [
            convert(b, a, d, cdt) for a, d in zip(args[1:], in_dtypes[1:])]
    else:
        conv = [convert(b, a, d, cdt) for a, d in zip(args, in_dtypes)]
    emitter = EMITTERS.get(type(op))
    if emitter is None:
        raise UnsupportedError(f"no native lowering for elementwise op {op.name}")
    res = emitter(b, op, conv, cdt)
    res_dt = np.dtype(bool) if is_bool_reg(res) else (out_dtype if isinstance(op, E.Cast) else cdt)
    if isinstance(op, E.Cast):
        return convert(b, res, cdt, out_dtype)
    return convert(b, res, res_dt, out_dtype)


def _arith(float_op, int_op):
    def emit(b, op, args, dt):
        fn = getattr(b, float_op if is_float_dt(dt) else int_op)
        return fn(*args)
    return emit


EMITTERS[E.Add] = _arith("fadd", "add")
EMITTERS[E.Subtract] = _arith("fsub", "sub")
EMITTERS[E.Multiply] = _arith("fmul", "mul")


@emits(E.Divide)
def _divide(b, op, args, dt):
    return b.fdiv(*args)


@emits(E.Negative)
def _neg(b, op, args, dt):
    return b.fneg(args[0]) if is_float_dt(dt) else b.neg(args[0])


def _intrinsic(b, name, dt, args):
    return call_intrinsic(b, name, list(args))


@emits(E.Abs)
def _abs(b, op, args, dt):
    if is_float_dt(dt):
        return _intrinsic(b, "llvm.fabs", dt, args)
    x = args[0]
    return b.select(b.icmp_signed("<", x, ir.Constant(x.type, 0)), b.neg(x), x)


@emits(E.Sign)
def _sign(b, op, args, dt):
    x = args[0]
    one, zero = constant(dt, 1), constant(dt, 0)
    if is_float_dt(dt):
        pos, neg = b.fcmp_ordered(">", x, zero), b.fcmp_ordered("<", x, zero)
        return b.select(pos, one, b.select(neg, constant(dt, -1), x))
    pos, neg = b.icmp_signed(">", x, zero), b.icmp_signed("<", x, zero)
    return b.select(pos, one, b.select(neg, constant(dt, -1), zero))


@emits(E.Square)
def _square(b, op, args, dt):
    return b.fmul(args[0], args[0]) if is_float_dt(dt) else b.mul(args[0], args[0])


@emits(E.Reciprocal)
def _recip(b, op, args, dt):
    return b.fdiv(constant(dt, 1.0), args[0])


@emits(E.Sqrt)
def _sqrt(b, op, args, dt):
    return _intrinsic(b, "llvm.sqrt", dt, args)


def _minmax(float_name, int_pred):
    def emit(b, op, args, dt):
        x, y = args
        if is_float_dt(dt):  # NaN-propagating, as numpy's maximum/minimum
            return _intrinsic(b, float_name, dt, args)
        if np.dtype(dt) == np.bool_:
            return b.or_(x, y) if int_pred == ">" else b.and_(x, y)
        return b.select(b.icmp_signed(int_pred, x, y), x, y)
    return emit


EMITTERS[E.Maximum] = _minmax("llvm.maximum", ">")
EMITTERS[E.Minimum] = _minmax("llvm.minimum", "<")


@emits(E.Relu)
def _relu(b, op, args, dt):
    return EMITTERS[E.Maximum](b, op, [args[0], constant(dt, 0)], dt)


def _compare(pred):
    def emit(b, op, args, dt):
        if is_float_dt(dt):
            if pred == "!=":
                return b.fcmp_unordered(pred, *args)
            return b.fcmp_ordered(pred, *args)
        if np.dtype(dt) == np.bool_:
            return b.icmp_unsigned(pred, *args)
        return b.icmp_signed(pred, *args)
    return emit


EMITTERS[E.Less] = _compare("<")
EMITTERS[E.LessEqual] = _compare("<=")
EMITTERS[E.Greater] = _compare(">")
EMITTERS[E.GreaterEqual] = _compare(">=")
EMITTERS[E.Equal] = _compare("==")
EMITTERS[E.NotEqual] = _compare("!=")


@emits(E.LogicalAnd)
def _and(b, op, args, dt):
    return b.and_(*args)


@emits(E.LogicalOr)
def _or(b, op, args, dt):
    return b.or_(*args)


@emits(E.LogicalNot)
def _not(b, op, args, dt):
    return b.xor(args[0], constant(np.bool_, 1))


@emits(E.IsFinite)
def _isfinite(b, op, args, dt):
    if not is_float_dt(dt):
        return constant(np.bool_, 1)
    a = _intrinsic(b, "llvm.fabs", dt, args)
    return b.fcmp_ordered("<", a, constant(dt, np.inf))


@emits(E.Where)
def _where(b, op, args, dt):
    return b.select(*args)


@emits(E.Clip)
def _clip(b, op, args, dt):
    x, lo, hi = args
    mx = EMITTERS[E.Maximum](b, op, [x, lo], dt)
    return EMITTERS[E.Minimum](b, op, [mx, hi], dt)


@emits(E.Cast, E.StopGradient)
def _identity(b, op, args, dt):
    return args[0]


@emits(E.Power)
def _power(b, op, args, dt):
    if is_float_dt(dt):
        return vecmath_lib.call(b, "pow", args, dt)
    return _int_power(b, args[0], args[1])


def _int_power(b, base, exp):
    """Exponentiation by squaring; a negative exponent gives 0 (numpy raises instead)."""
    t = base.type
    pre = b.block
    loop = b.append_basic_block("ipow.loop")
    done = b.append_basic_block("ipow.done")
    b.branch(loop)
    b.position_at_end(loop)
    acc = b.phi(t)
    bb = b.phi(t)
    e = b.phi(t)
    acc.add_incoming(ir.Constant(t, 1), pre)
    bb.add_incoming(base, pre)
    e.add_incoming(exp, pre)
    odd = b.trunc(e, I1)
    acc2 = b.select(odd, b.mul(acc, bb), acc)
    e2 = b.ashr(e, ir.Constant(t, 1))
    bb2 = b.mul(bb, bb)
    acc.add_incoming(acc2, loop)
    bb.add_incoming(bb2, loop)
    e.add_incoming(e2, loop)
    b.cbranch(b.icmp_signed(">", e2, ir.Constant(t, 0)), loop, done)
    b.position_at_end(done)
    result = b.phi(t)
    result.add_incoming(acc2, loop)
    neg = b.icmp_signed("<", exp, ir.Constant(t, 0))
    zero_exp = b.icmp_signed("==", exp, ir.Constant(t, 0))
    out = b.select(zero_exp, ir.Constant(t, 1), result)
    return b.select(neg, ir.Constant(t, 0), out)


def _unary_math(fn_name):
    def emit(b, op, args, dt):
        return vecmath_lib.call(b, fn_name, args[:1], dt)
    return emit


for _cls, _fn in ((E.Exp, "exp"), (E.Log, "log"), (E.Log1p, "log1p"), (E.Expm1, "expm1"),
                  (E.Tanh, "tanh"), (E.Sigmoid, "sigmoid"), (E.Softplus, "softplus"),
                  (E.Sin, "sin"), (E.Cos, "cos")):
    EMITTERS[_cls] = _unary_math(_fn)
