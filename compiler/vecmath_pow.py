"""pow(x, y) = +-exp(y * log|x|) with C99/numpy special cases, branch-free.

float64 carries log|x| and the product y*log|x| as double-doubles: an error of d in
y*log|x| is a relative error d in the result, and |y*log|x|| reaches ~745. float32
evaluates the whole function in float64 (shorter polynomials: a 2^-37 log, a
float32-grade exp) and rounds once.
"""
from __future__ import annotations

import numpy as np

from . import vecmath_coeffs as C
from .vecmath_core import EXP_RANGE, exp_kernel, log_kernel, log_split
from .vecmath_ir import Fp, width_of


def pow(b, x, y, dt):
    m = Fp(b, dt, width_of(x))
    if m.wide:
        return _pow(m, x, y, float32_result=False)
    d = Fp(b, np.float64, m.width)
    return b.fptrunc(_pow(d, b.fpext(x, d.ty), b.fpext(y, d.ty), float32_result=True), m.ty)


def _pow(m: Fp, x, y, *, float32_result):
    b = m.b
    ax = m.abs(x)
    ok = b.and_(m.cmp(">", ax, m.c(0)), m.cmp("<", ax, m.c(np.inf)))
    ax1 = m.sel(ok, ax, m.c(1))
    # log 0 = -inf and log inf = inf make the core give 0/inf; NaN stays NaN
    special_log = m.sel(m.cmp("==", ax, m.c(0)), m.c(-np.inf), ax)
    if float32_result:      # plain double arithmetic is exact enough
        k, f = log_split(m, ax1)
        lh = m.sel(ok, log_kernel(m, k, f, m.c(0), coeffs=C.LOG_POW32), special_log)
        ph = m.mul(y, lh)
        res = exp_kernel(m, m.clamp(ph, *EXP_RANGE[m.dtype.name]), coeffs=C.EXP["float32"])
    else:
        lh, ll = _log_dd(m, ax1)
        lh = m.sel(ok, lh, special_log)
        ll = m.sel(ok, ll, m.c(0))
        ph, pl = m.two_prod(y, lh)
        pl = m.fma(y, ll, pl)
        pl = m.sel(m.cmp("<", m.abs(ph), m.c(1000)), pl, m.c(0))   # no inf - inf below
        res = exp_kernel(m, m.clamp(ph, *EXP_RANGE[m.dtype.name]), pl)
    res = m.sel(m.isnan(ph), ph, res)
    # sign and domain: integral / odd y
    y_int = b.and_(m.cmp("==", m.trunc(y), y), m.isfinite(y))
    half = m.mul(y, m.c(0.5))
    y_odd = b.and_(y_int, m.cmp("!=", m.trunc(half), half))
    res = m.sel(b.and_(m.signbit(x), y_odd), m.neg(res), res)
    neg_finite_x = b.and_(m.cmp("<", x, m.c(0)), m.cmp(">", x, m.c(-np.inf)))
    frac_y = b.and_(m.isfinite(y), b.not_(y_int))
    res = m.sel(b.and_(neg_finite_x, frac_y), m.c(np.nan), res)
    # pow(1, y) = pow(x, 0) = pow(-1, +-inf) = 1, even for NaN
    one = b.or_(m.cmp("==", x, m.c(1)), m.cmp("==", y, m.c(0)))
    one = b.or_(one, b.and_(m.cmp("==", ax, m.c(1)), m.cmp("==", m.abs(y), m.c(np.inf))))
    return m.sel(one, m.c(1), res)


def _log_dd(m: Fp, x):
    """log x as a double-double (error ~2^-64 relative) for finite x > 0.

    With x = 2^k (1+f), s = f/(2+f): log x = k ln2 + 2s + 2s^3/3 + s^5 T(s^2). The
    terms k ln2, 2s and 2s^3/3 are carried in double-double; the rest in double."""
    k, f = log_split(m, x)
    den, den_lo = m.fast_two_sum(m.c(2), f)                 # 2 + f exactly
    s = m.div(f, den)
    res = m.fma(m.neg(s), den, f)                           # exact division residual
    s_lo = m.div(m.fma(m.neg(s), den_lo, res), den)
    z = m.mul(s, s)
    s2, s2e = m.two_prod(s, s)
    s3, s3e = m.two_prod(s2, s)
    s3e = m.fma(s2e, s, s3e)
    c_hi, c_lo = (m.c(v) for v in C.TWO_THIRDS_DD)
    t, te = m.two_prod(s3, c_hi)
    te = m.fma(s3, c_lo, m.fma(s3e, c_hi, te))
    tail = m.mul(m.mul(s3, z), m.poly(z, C.LOG_TAIL))
    ln2_hi, ln2_lo = (m.c(v) for v in C.LN2_DD)
    two_s = m.add(s, s)
    h, l1 = m.two_sum(m.mul(k, ln2_hi), two_s)             # k*ln2_hi is exact
    h, l2 = m.two_sum(h, t)
    two_s_lo = m.add(s_lo, s_lo)
    lo = m.add(m.fma(z, two_s_lo, two_s_lo), m.add(te, tail))   # d(2 atanh s) = 2 ds/(1-z)
    lo = m.add(lo, m.fma(k, ln2_lo, m.add(l1, l2)))
    return m.fast_two_sum(h, lo)
