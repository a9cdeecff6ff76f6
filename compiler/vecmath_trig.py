"""sin and cos: reduction by pi/2 (Cody-Waite, three-part constant, FMA) to
|r| <= pi/4, then minimax polynomials for sin r and cos r picked by quadrant.

float64 keeps the reduced argument as a double-double (r + r_lo). float32 reduces in
float64, where the three-part reduction is far more accurate than float32 needs. The
reduction is accurate while the quadrant count k (the integer nearest x*2/pi, itself
computed in double-double) stays below 2^51: |x| < 2^51 for both dtypes.
Beyond, results stay finite and in [-1, 1] but are not accurate (there is no
Payne-Hanek table reduction). float64 caveat: r carries an absolute error of about
2^-104, so the rare arguments within ~2^-50 of a multiple of pi/2 lose relative
accuracy in proportion.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from . import vecmath_coeffs as C
from .vecmath_ir import Fp, width_of

TRIG_ACCURATE_BELOW = 2.0 ** 51   # |x| where the reduction (and the error bound) holds
_R_MAX = 0.8   # the reduced argument is clamped here: a no-op below TRIG_ACCURATE_BELOW


def sin(b, x, dt):
    return _sincos(b, x, dt, 0)


def cos(b, x, dt):
    return _sincos(b, x, dt, 1)


def _sincos(b, x, dt, shift):
    m = Fp(b, dt, width_of(x))
    finite = m.isfinite(x)
    xs = m.sel(finite, x, m.c(0))
    q, rh, rl = (_reduce_f64 if m.wide else _reduce_f32)(m, xs)
    rh = m.clamp(rh, -_R_MAX, _R_MAX)
    sin_r, cos_r = _kernels(m, rh, rl)
    q = b.add(q, ir.Constant(q.type, shift))                  # cos x = sin(x + pi/2)
    odd = b.trunc(q, m.int_type(1))
    neg = b.trunc(b.lshr(q, ir.Constant(q.type, 1)), m.int_type(1))
    v = m.sel(odd, cos_r, sin_r)
    v = m.clamp(m.sel(neg, m.neg(v), v), -1.0, 1.0)
    if shift == 0:
        v = m.sel(m.cmp("==", x, m.c(0)), x, v)        # sin(-0) = -0
    return m.sel(finite, v, m.c(np.nan))


def _quadrant_count(d: Fp, x):
    """(k, k mod 2^32): k is the integer nearest x * 2/pi (float64), exact while
    |x * 2/pi| < 2^51. The product is carried as a double-double so a rounding near .5
    cannot pick the wrong k; adding 1.5 * 2^52 rounds to an integer and leaves k's low
    bits in the significand."""
    t_hi, t_lo = (d.c(v) for v in C.TWO_OVER_PI)
    kh = d.mul(x, t_hi)
    kl = d.fma(x, t_lo, d.fma(x, t_hi, d.neg(kh)))
    shifted = d.add(kh, d.c(_SHIFTER))
    k0 = d.sub(shifted, d.c(_SHIFTER))
    k1 = d.rint(d.add(d.sub(kh, k0), kl))                   # -1, 0 or +1
    b = d.b
    q = b.add(b.trunc(d.bits(shifted), d.int_type(32)), d.to_i32(k1))
    return d.add(k0, k1), q


_SHIFTER = 1.5 * 2.0 ** 52


def _reduce_f64(m: Fp, x):
    """(k mod 2^32, r, r_lo) with r + r_lo = x - k*pi/2 as a double-double."""
    p1, p2, p3 = (m.c(p) for p in C.PIO2)
    k, q = _quadrant_count(m, x)
    nk = m.neg(k)
    r1 = m.fma(nk, p1, x)                                # exact for |k| < 2^52
    p, pe = m.two_prod(k, p2)
    s, se = m.two_sum(r1, m.neg(p))
    lo = m.fma(nk, p3, m.sub(se, pe))
    rh, rl = m.fast_two_sum(s, lo)
    return q, rh, rl


def _reduce_f32(m: Fp, x):
    """(k mod 2^32, r, r_lo): x - k*pi/2 computed in float64, split into float32."""
    b = m.b
    d = Fp(b, np.float64, m.width)
    xd = b.fpext(x, d.ty)
    k, q = _quadrant_count(d, xd)
    nk = d.neg(k)
    r = xd
    for part in C.PIO2:
        r = d.fma(nk, d.c(part), r)
    rh = b.fptrunc(r, m.ty)
    return q, rh, b.fptrunc(d.sub(r, b.fpext(rh, d.ty)), m.ty)


def _kernels(m: Fp, rh, rl):
    """(sin, cos) of rh + rl for |rh| <= pi/4."""
    name = m.dtype.name
    z = m.mul(rh, rh)
    s_tail = m.mul(m.mul(rh, z), m.poly(z, C.SIN[name]))
    c_tail = m.mul(m.mul(z, z), m.poly(z, C.COS[name]))
    s_tail = m.add(s_tail, rl)            # sin(rh + rl) ~ sin rh + rl
    c_tail = m.fma(m.neg(rh), rl, c_tail)  # cos(rh + rl) ~ cos rh - rh*rl
    sin_r = m.add(rh, s_tail)
    hz = m.mul(m.c(0.5), z)
    w = m.sub(m.c(1), hz)                               # 1 - z/2, with its rounding error
    cos_r = m.add(w, m.add(m.sub(m.sub(m.c(1), w), hz), c_tail))
    return sin_r, cos_r
