"""Elementwise math in LLVM IR (baseline: LLVM intrinsics; to be replaced by
branch-free polynomial versions that vectorize without libm calls)."""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from .irutil import value_type


def _c(dt, v):
    return ir.Constant(value_type(dt), float(v))


def _call(b, name, dt, *args):
    fn = b.module.declare_intrinsic(name, [value_type(dt)])
    return b.call(fn, list(args))


def exp(b, x, dt):
    return _call(b, "llvm.exp", dt, x)


def log(b, x, dt):
    return _call(b, "llvm.log", dt, x)


def log1p(b, x, dt):
    # log1p(x) = log(u) * x / (u - 1) with u = 1 + x (exact-correction trick)
    one = _c(dt, 1.0)
    u = b.fadd(one, x)
    lu = log(b, u, dt)
    corr = b.fdiv(b.fmul(lu, x), b.fsub(u, one))
    return b.select(b.fcmp_ordered("==", u, one), x, b.select(b.fcmp_ordered("==", u, _c(dt, np.inf)), lu, corr))


def expm1(b, x, dt):
    one = _c(dt, 1.0)
    u = exp(b, x, dt)
    um1 = b.fsub(u, one)
    lu = log(b, u, dt)
    corr = b.fmul(um1, b.fdiv(x, lu))
    small = b.fcmp_ordered("==", u, one)
    big = b.fcmp_ordered("==", um1, _c(dt, np.inf))
    return b.select(small, x, b.select(big, u, b.select(b.fcmp_ordered("==", u, _c(dt, 0)), _c(dt, -1), corr)))


def tanh(b, x, dt):
    return _call(b, "llvm.tanh", dt, x)


def sigmoid(b, x, dt):
    one = _c(dt, 1.0)
    return b.fdiv(one, b.fadd(one, exp(b, b.fneg(x), dt)))


def softplus(b, x, dt):
    zero = _c(dt, 0.0)
    ax = _call(b, "llvm.fabs", dt, x)
    return b.fadd(_call(b, "llvm.maxnum", dt, x, zero) if False else b.select(b.fcmp_ordered(">", x, zero), x, zero),
                  log1p(b, exp(b, b.fneg(ax), dt), dt))


def sin(b, x, dt):
    return _call(b, "llvm.sin", dt, x)


def cos(b, x, dt):
    return _call(b, "llvm.cos", dt, x)


def pow(b, x, y, dt):
    fn = b.module.declare_intrinsic("llvm.pow", [value_type(dt)])
    return b.call(fn, [x, y])
