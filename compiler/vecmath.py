"""Elementwise transcendental functions as branch-free, call-free LLVM IR.

Each function takes the builder, a float/double register and its numpy dtype, and
returns a register of the same type:

    y = vecmath.exp(builder, x, np.float32)        # also log, log1p, expm1, tanh,
    z = vecmath.pow(builder, x, y, np.float64)     # sigmoid, softplus, sin, cos

The IR uses only instructions with vector forms (llvm.fma, fabs, rint, floor,
minnum/maxnum, copysign, select, bitcasts, integer shifts), so the loop vectorizer
turns a loop over any of them into SIMD code (zmm on AVX-512 CPUs) with no libm calls;
the llvm.exp/llvm.sin intrinsics scalarize into one libm call per lane. (On a CPU
without FMA, llvm.fma itself would become a libm call: every AVX2/AVX-512 CPU has FMA.)
Special values follow numpy: NaN propagates; +-0, +-inf, log(0) = -inf, log(x < 0) =
NaN and C99's pow cases give numpy's results; subnormal inputs and outputs are exact
(no flush to zero); exp overflows to inf, tanh/sigmoid saturate without NaN and
softplus(x) = x for large x.

Techniques: Cody-Waite reduction by ln2 with FMA, the reduced argument kept as a
double-double, and a minimax polynomial for exp (float32 exp rounds n with a shifter
and keeps the reduced argument in one float); an exponent/significand split and an
atanh series for log; exact rounding-error terms in log1p and expm1; double-double
e^-|x| with a residual-corrected quotient in float64 sigmoid and tanh. float32 tanh is
d / (2 - d) with d = -expm1(-2|x|) (no branch, no blend of two approximations) and
float32 sigmoid 2^-n2 / (2^-n2 + 2^n1 (1 + q)) from e^-x = 2^(n1+n2) (1 + q): one
division each, and NaN flows through the arithmetic instead of being selected at the
end. pi/2 reduction with a double-double quadrant count for sin/cos; a double-double
log for float64 pow (float32 pow runs in float64). Coefficients and their fits:
vecmath_coeffs.

Maximum error measured in ULPs of the result, over 12 million arguments per function
and dtype: uniform over the function's range, [-2, 2], log-uniform magnitudes down to
the subnormals, and uniformly random bit patterns (every finite float); pow over
log-uniform bases with exponents spanning underflow to overflow (negative bases with
integral exponents), [0, 10] x [-40, 40] and random bit pairs. float32 is compared
with the exact-enough float64 numpy result (0.5 = correctly rounded); float64 with
numpy float64 (a count of representable values, which includes numpy's own error) and
with numpy's x87 long double result (11 more bits). MAX_ULP holds the bounds the tests
assert (float32 vs float64 numpy, float64 vs long double). The float32 figures of exp,
expm1, tanh, sigmoid and softplus are exhaustive: every float32 argument, both signs,
subnormals, +-inf and NaN (tanh is also odd bit for bit and |tanh| <= 1, sigmoid in
[0, 1]).

==========  =====================  =========  ==========  ============  ============
function    range (f32 / f64)       float32    f64 vs np   f64 vs long   bound 32/64
==========  =====================  =========  ==========  ============  ============
exp         [-110,95] / [-750,712]     1.02        1           0.84       1.5 / 1.5
log         (0, 1e6] + all > 0         0.81        1           0.79       1.5 / 1.5
log1p       [-1, 10] + all > -1        0.83        1           0.81       1.5 / 1.5
expm1       [-30,95] / [-60,720]       1.02        1           1.08       1.5 / 1.5
tanh        all f32 / [-22,22]         2.50        1           0.85       2.5 / 1.5
sigmoid     all f32 / [-760,760]       2.48        2           0.84       3.0 / 1.5
softplus    [-110,110] / [-760,760]    1.33        2           1.27       2.0 / 2.0
sin, cos    |x| < 1e5, and < 2^51      0.89        1           0.89       1.5 / 1.5
pow         see above                  0.51        1           0.93       1.5 / 1.5
==========  =====================  =========  ==========  ============  ============

sin/cos: the bound holds for |x| < TRIG_ACCURATE_BELOW = 2^51 (both dtypes; there is
no table-driven Payne-Hanek reduction). Beyond it results are finite and in [-1, 1]
but not accurate. float64: the reduced argument carries ~2^-104 absolute error, so
arguments within ~2^-50 of a multiple of pi/2 (rare) lose relative accuracy.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from . import vecmath_coeffs as C
from .vecmath_core import (EXP_RANGE, EXPM1_RANGE, exp_kernel, exp_kernel_dd, exp_reduce,
                           log1p_finite, log_kernel, log_split, round_scaled_f32)
from .vecmath_ir import Fp, width_of
from .vecmath_pow import pow
from .vecmath_trig import TRIG_ACCURATE_BELOW, cos, sin

__all__ = ["exp", "log", "log1p", "expm1", "tanh", "sigmoid", "softplus", "sin", "cos",
           "pow", "MAX_ULP", "TRIG_ACCURATE_BELOW"]

# Documented (and tested) error bounds in ULPs: float32 against the float64 numpy
# result, float64 against numpy's long double result. sin/cos: for |x| below
# TRIG_ACCURATE_BELOW.
MAX_ULP = {"exp": (1.5, 1.5), "log": (1.5, 1.5), "log1p": (1.5, 1.5), "expm1": (1.5, 1.5),
           "tanh": (2.5, 1.5), "sigmoid": (3.0, 1.5), "softplus": (2.0, 2.0),
           "sin": (1.5, 1.5), "cos": (1.5, 1.5), "pow": (1.5, 1.5)}

_TANH_POLY_BELOW = 0.625


def exp(b, x, dt):
    m = Fp(b, dt, width_of(x))
    if not m.wide:
        e1, n2 = _exp_f32_parts(m, m.clamp_keep_nan(x, *EXP_RANGE["float32"]))
        return m.mul(e1, m.pow2(n2))
    res = exp_kernel(m, m.clamp(x, *EXP_RANGE[m.dtype.name]))
    return m.sel(m.isnan(x), x, res)


def _exp_f32_parts(m: Fp, t):
    """(e1, n2) with e^t = e1 * 2^n2, e1 = 2^n1 (1 + q) rounded once, n1 + n2 = n, for
    float32 t in the exp range (NaN flows into e1). The reduced argument is one
    float32 (no low part: 1.02 ULP instead of 0.88, three instructions less); the
    product e1 * 2^n2 reaches the subnormals with one rounding and overflows to inf."""
    _, ni, r, _ = exp_reduce(m, t)
    q = m.fma(m.mul(r, r), m.poly(r, C.EXP["float32"]), r)      # e^r - 1
    n1 = m.b.ashr(ni, ir.Constant(ni.type, 1))
    s1 = m.pow2(n1)
    return m.fma(s1, q, s1), m.b.sub(ni, n1)


def log(b, x, dt):
    m = Fp(b, dt, width_of(x))
    k, f = log_split(m, x)
    res = log_kernel(m, k, f, m.c(0))
    res = m.sel(m.cmp("==", x, m.c(0)), m.c(-np.inf), res)
    res = m.sel(m.cmp("==", x, m.c(np.inf)), x, res)
    return m.sel(m.b.fcmp_unordered("<", x, m.c(0)), m.c(np.nan), res)  # x < 0 or NaN


def log1p(b, x, dt):
    m = Fp(b, dt, width_of(x))
    res = log1p_finite(m, x)
    res = m.sel(m.cmp("==", x, m.c(0)), x, res)                 # keeps the sign of zero
    res = m.sel(m.cmp("==", x, m.c(-1)), m.c(-np.inf), res)
    res = m.sel(m.cmp("==", x, m.c(np.inf)), x, res)
    return m.sel(m.b.fcmp_unordered("<", x, m.c(-1)), m.c(np.nan), res)


def expm1(b, x, dt):
    m = Fp(b, dt, width_of(x))
    _, n32, r, r_lo = exp_reduce(m, m.clamp(x, *EXPM1_RANGE[m.dtype.name]))
    tail = m.fma(m.mul(r, r), m.poly(r, C.EXP[m.dtype.name]), r_lo)   # e^(r+r_lo) - 1 - r
    # e^x - 1 = 2 * ((h - 1/2) + h*r + h*tail) with h = 2^(n-1); h - 1/2 and h*r and their
    # sum are carried exactly, and the outer doubling keeps h normal up to overflow.
    h = m.pow2(b.sub(n32, ir.Constant(n32.type, 1)))
    hm = m.sub(h, m.c(0.5))
    hm_err = m.sub(m.sub(h, hm), m.c(0.5))      # exact: h is a power of two
    a, a_err = m.two_sum(hm, m.mul(h, r))
    res = m.mul(m.c(2), m.add(a, m.fma(h, tail, m.add(a_err, hm_err))))
    tiny = m.b.fcmp_unordered("<", m.abs(x), m.c(2.0 ** (-30 if not m.wide else -60)))
    return m.sel(tiny, x, res)          # expm1(x) = x there, incl. -0; and NaN


def tanh(b, x, dt):
    """float32: (1 - e) / (1 + e) with e = e^-2|x| as expm1: no branch, one division
    (_tanh_f32). float64: odd minimax polynomial below 0.625; above, (1 - e)/(1 + e)
    with e carried as a double-double and the quotient corrected by its residual."""
    m = Fp(b, dt, width_of(x))
    if not m.wide:
        return _tanh_f32(m, x)
    ax = m.abs(x)
    z = m.mul(ax, ax)
    small = m.fma(m.mul(ax, z), m.poly(z, C.TANH["float64"]), ax)
    eh, el = exp_kernel_dd(m, m.clamp(m.mul(m.c(-2), ax), EXP_RANGE["float64"][0], 0.0))
    large = m.sub(m.c(1), _one_plus_ratio(m, m.add(eh, eh), m.add(el, el), eh, el))
    res = m.copysign(m.sel(m.cmp("<", ax, m.c(_TANH_POLY_BELOW)), small, large), x)
    return m.sel(m.isnan(x), x, res)


def _tanh_f32(m: Fp, x):
    """tanh|x| = d / (2 - d) with d = 1 - e^-2|x| = -expm1(-2|x|), then x's sign.

    With u = -|x| (clamped at -12, where the result is 1 already; NaN kept),
    e^2u = 2^n e^2s, s = u - n ln2/2 in [-ln2/4, ln2/4] (one float32 ln2 suffices:
    n <= 35), h = (e^2s - 1)/2 = s + s^2 P(s) with exp's polynomial rescaled, and
    d = (1 - 2^n) - 2^(n+1) h rounded once. d is accurate near 0, so small |x| needs
    no separate polynomial; tanh(+-0) = +-0, subnormals pass through, NaN flows
    through, and the result is odd bit for bit. Max error 2.5 ULP over every float32
    (the rounding of 2 - d near 1 is most of it)."""
    u = m.clamp_keep_nan(m.neg_abs(x), lo=-12.0)
    n, ni = round_scaled_f32(m, u, 2 * float.fromhex(C.LOG2E))
    s = m.fma(n, m.c(-C.LN2["float32"][0] / 2), u)
    half_q = m.fma(m.mul(s, s), m.poly(s, C.HALF_EXPM1_2X_F32), s)      # (e^2s - 1) / 2
    scale = m.pow2(ni)
    d = m.fma(m.neg(m.pow2(m.b.add(ni, m.ci(1)))), half_q, m.sub(m.c(1), scale))
    return m.with_sign_of(m.div(d, m.sub(m.c(2), d)), x)


def sigmoid(b, x, dt):
    """1 / (1 + e^-x) as e^-|x| / (1 + e^-|x|) for x < 0: never overflows. float64
    carries e^-|x| as a double-double and corrects the quotient by its residual;
    float32 is sigmoid_and_exp_neg's sigmoid (LLVM drops the unused e^-x)."""
    m = Fp(b, dt, width_of(x))
    if not m.wide:
        return sigmoid_and_exp_neg(b, x, dt)[0]
    arg = m.clamp(m.neg(m.abs(x)), EXP_RANGE[m.dtype.name][0], 0.0)
    neg = m.signbit(x)
    eh, el = exp_kernel_dd(m, arg)
    res = _one_plus_ratio(m, m.sel(neg, eh, m.c(1)), m.sel(neg, el, m.c(0)), eh, el)
    return m.sel(m.isnan(x), x, res)


def sigmoid_and_exp_neg(b, x, dt):
    """(sigmoid(x), e^-x) from one exp reduction, for kernels that need both (a logistic
    loss and its gradient). float32 only. e^-x is exp's result bit for bit, e1 * 2^n2
    (_exp_f32_parts), and sigmoid = 1 / (1 + e^-x) = 2^-n2 / (2^-n2 + e1): numerator
    and denominator stay finite for every x, and a subnormal result comes from the one
    rounding of the division. NaN flows through to both results."""
    m = Fp(b, dt, width_of(x))
    lo = EXP_RANGE["float32"][0]
    e1, n2 = _exp_f32_parts(m, m.clamp_keep_nan(m.neg(x), lo, -lo))
    inv_s2 = m.pow2(b.neg(n2))
    return m.div(inv_s2, m.add(inv_s2, e1)), m.mul(e1, m.pow2(n2))


def softplus(b, x, dt):
    """max(x, 0) + log1p(e^-|x|), with e^-|x| in double-double."""
    m = Fp(b, dt, width_of(x))
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
