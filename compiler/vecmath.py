"""Elementwise transcendental functions as branch-free, call-free LLVM IR.

Each function takes the builder, a float/double register and its numpy dtype, and
returns a register of the same type. The IR uses only instructions with vector forms
(fma, rint/floor/trunc, fabs, minnum/maxnum, copysign, select, bitcasts, integer
shifts), so LLVM's loop vectorizer turns a loop over any of them into SIMD code with
no libm calls (llvm.exp & co. scalarize into one libm call per lane). Special values
follow numpy: NaN propagates, +-0 and +-inf give numpy's results, subnormal inputs
and outputs are handled exactly (no flush to zero).

Techniques: Cody-Waite reduction by ln2 with FMA and a minimax polynomial for exp;
an exponent/significand split with an atanh series for log; exact-error corrections
for log1p and expm1; double-double arithmetic for pow's log in float64 (float32 pow
is evaluated in float64). Coefficients and their fits: vecmath_coeffs.

Measured maximum error (tests/vecmath_harness.py), in ULPs of the result, against
numpy float64 (for float32: the float64 result, so 0.5 is correct rounding), on
random samples over the ranges given plus all special values:

============  =======================================  ========  ========
function      sample range                              float32   float64
============  =======================================  ========  ========
exp           [-110, 90] / [-750, 712], incl. subn.      TBD       TBD
============  =======================================  ========  ========
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from . import vecmath_coeffs as C
from .vecmath_core import (EXP_RANGE, EXPM1_RANGE, exp_kernel, exp_reduce, log1p_finite,
                           log_kernel, log_split)
from .vecmath_ir import Fp
from .vecmath_pow import pow
from .vecmath_trig import cos, sin

__all__ = ["exp", "log", "log1p", "expm1", "tanh", "sigmoid", "softplus", "sin", "cos",
           "pow"]

_TANH_POLY_BELOW = 0.625


def exp(b, x, dt):
    m = Fp(b, dt)
    res = exp_kernel(m, m.clamp(x, *EXP_RANGE[m.dtype.name]))
    return m.sel(m.isnan(x), x, res)


def log(b, x, dt):
    m = Fp(b, dt)
    k, f = log_split(m, x)
    res = log_kernel(m, k, f, m.c(0))
    res = m.sel(m.cmp("==", x, m.c(0)), m.c(-np.inf), res)
    res = m.sel(m.cmp("==", x, m.c(np.inf)), x, res)
    return m.sel(m.b.fcmp_unordered("<", x, m.c(0)), m.c(np.nan), res)  # x < 0 or NaN


def log1p(b, x, dt):
    m = Fp(b, dt)
    res = log1p_finite(m, x)
    res = m.sel(m.cmp("==", x, m.c(0)), x, res)                 # keeps the sign of zero
    res = m.sel(m.cmp("==", x, m.c(-1)), m.c(-np.inf), res)
    res = m.sel(m.cmp("==", x, m.c(np.inf)), x, res)
    return m.sel(m.b.fcmp_unordered("<", x, m.c(-1)), m.c(np.nan), res)


def expm1(b, x, dt):
    m = Fp(b, dt)
    n, r = exp_reduce(m, m.clamp(x, *EXPM1_RANGE[m.dtype.name]))
    p = m.fma(m.mul(r, r), m.poly(r, C.EXP[m.dtype.name]), r)          # e^r - 1
    # e^x - 1 = 2 * (h*p + (h - 1/2)) with h = 2^(n-1): h - 1/2 is exact for the n
    # where it matters, and the outer doubling keeps h normal up to overflow.
    n32 = m.to_i32(n)
    h = m.pow2(b.sub(n32, ir.Constant(n32.type, 1)))
    res = m.mul(m.c(2), m.fma(h, p, m.sub(h, m.c(0.5))))
    return m.sel(m.b.fcmp_unordered("==", x, m.c(0)), x, res)   # +-0 and NaN


def tanh(b, x, dt):
    m = Fp(b, dt)
    ax = m.abs(x)
    z = m.mul(ax, ax)
    small = m.fma(m.mul(ax, z), m.poly(z, C.TANH[m.dtype.name]), ax)
    e = exp_kernel(m, m.clamp(m.add(ax, ax), 0.0, EXP_RANGE[m.dtype.name][1]))
    large = m.sub(m.c(1), m.div(m.c(2), m.add(e, m.c(1))))   # e = inf gives exactly 1
    res = m.copysign(m.sel(m.cmp("<", ax, m.c(_TANH_POLY_BELOW)), small, large), x)
    return m.sel(m.isnan(x), x, res)


def sigmoid(b, x, dt):
    """1 / (1 + e^-x) as e^-|x| / (1 + e^-|x|) for x < 0: never overflows."""
    m = Fp(b, dt)
    e = exp_kernel(m, m.clamp(m.neg(m.abs(x)), EXP_RANGE[m.dtype.name][0], 0.0))
    num = m.sel(m.signbit(x), e, m.c(1))
    res = m.div(num, m.add(m.c(1), e))
    return m.sel(m.isnan(x), x, res)


def softplus(b, x, dt):
    """max(x, 0) + log1p(e^-|x|)."""
    m = Fp(b, dt)
    e = exp_kernel(m, m.clamp(m.neg(m.abs(x)), EXP_RANGE[m.dtype.name][0], 0.0))
    pos = m.sel(m.cmp(">", x, m.c(0)), x, m.c(0))
    res = m.add(pos, log1p_finite(m, e))
    return m.sel(m.isnan(x), x, res)
