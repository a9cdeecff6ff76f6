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
from .vecmath_core import (EXP_RANGE, EXPM1_RANGE, exp_kernel, exp_kernel_dd, exp_reduce,
                           log1p_finite, log_kernel, log_split)
from .vecmath_ir import Fp
from .vecmath_pow import pow
from .vecmath_trig import TRIG_ACCURATE_BELOW, cos, sin

__all__ = ["exp", "log", "log1p", "expm1", "tanh", "sigmoid", "softplus", "sin", "cos",
           "pow", "MAX_ULP", "TRIG_ACCURATE_BELOW"]

# Documented (and tested) error bounds in ULPs: float32 against the float64 numpy
# result, float64 against numpy's long double result. sin/cos: for |x| below
# TRIG_ACCURATE_BELOW.
MAX_ULP = {"exp": (1.5, 1.5), "log": (1.5, 1.5), "log1p": (1.5, 1.5), "expm1": (1.5, 1.5),
           "tanh": (1.5, 1.5), "sigmoid": (1.5, 1.5), "softplus": (2.0, 2.0),
           "sin": (1.5, 1.5), "cos": (1.5, 1.5), "pow": (1.5, 1.5)}

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
    n, r, r_lo = exp_reduce(m, m.clamp(x, *EXPM1_RANGE[m.dtype.name]))
    tail = m.fma(m.mul(r, r), m.poly(r, C.EXP[m.dtype.name]), r_lo)   # e^(r+r_lo) - 1 - r
    # e^x - 1 = 2 * ((h - 1/2) + h*r + h*tail) with h = 2^(n-1); h - 1/2 and h*r and their
    # sum are carried exactly, and the outer doubling keeps h normal up to overflow.
    n32 = m.to_i32(n)
    h = m.pow2(b.sub(n32, ir.Constant(n32.type, 1)))
    hm = m.sub(h, m.c(0.5))
    hm_err = m.sub(m.sub(h, hm), m.c(0.5))      # exact: h is a power of two
    a, a_err = m.two_sum(hm, m.mul(h, r))
    res = m.mul(m.c(2), m.add(a, m.fma(h, tail, m.add(a_err, hm_err))))
    tiny = m.b.fcmp_unordered("<", m.abs(x), m.c(2.0 ** (-30 if not m.wide else -60)))
    return m.sel(tiny, x, res)          # expm1(x) = x there, incl. -0; and NaN


def tanh(b, x, dt):
    """Odd minimax polynomial below 0.625; above, 1 - 2e/(1 + e) with e = e^-2|x| in
    double-double (no overflow, saturates to exactly +-1)."""
    m = Fp(b, dt)
    ax = m.abs(x)
    z = m.mul(ax, ax)
    small = m.fma(m.mul(ax, z), m.poly(z, C.TANH[m.dtype.name]), ax)
    eh, el = exp_kernel_dd(m, m.clamp(m.mul(m.c(-2), ax), EXP_RANGE[m.dtype.name][0], 0.0))
    large = m.sub(m.c(1), _one_plus_ratio(m, m.add(eh, eh), m.add(el, el), eh, el))
    res = m.copysign(m.sel(m.cmp("<", ax, m.c(_TANH_POLY_BELOW)), small, large), x)
    return m.sel(m.isnan(x), x, res)


def sigmoid(b, x, dt):
    """1 / (1 + e^-x) as e^-|x| / (1 + e^-|x|) for x < 0: never overflows."""
    m = Fp(b, dt)
    eh, el = exp_kernel_dd(m, m.clamp(m.neg(m.abs(x)), EXP_RANGE[m.dtype.name][0], 0.0))
    neg = m.signbit(x)
    res = _one_plus_ratio(m, m.sel(neg, eh, m.c(1)), m.sel(neg, el, m.c(0)), eh, el)
    return m.sel(m.isnan(x), x, res)


def softplus(b, x, dt):
    """max(x, 0) + log1p(e^-|x|), with e^-|x| in double-double."""
    m = Fp(b, dt)
    eh, el = exp_kernel_dd(m, m.clamp(m.neg(m.abs(x)), EXP_RANGE[m.dtype.name][0], 0.0))
    pos = m.sel(m.cmp(">", x, m.c(0)), x, m.c(0))
    res = m.add(pos, log1p_finite(m, eh, el))
    return m.sel(m.isnan(x), x, res)


def _one_plus_ratio(m: Fp, nh, nl, eh, el):
    """(nh + nl) / (1 + eh + el) for 0 <= eh <= 1, all double-double, one division:
    the quotient is corrected by its exact residual."""
    dh, dl = m.fast_two_sum(m.c(1), eh)
    dl = m.add(dl, el)
    inv = m.div(m.c(1), dh)
    q = m.mul(nh, inv)
    rem = m.add(m.fma(m.neg(q), dh, nh), m.fma(m.neg(q), dl, nl))
    return m.fma(rem, inv, q)
