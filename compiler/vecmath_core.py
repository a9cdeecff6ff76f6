"""Shared kernels of vecmath: exp and log cores used by several public functions."""
from __future__ import annotations

from llvmlite import ir

from . import vecmath_coeffs as C
from .vecmath_ir import Fp

# exp(x) for x outside [lo, hi] is 0 / inf after rounding; expm1 below lo is -1.
EXP_RANGE = {"float32": (-104.0, 89.0), "float64": (-746.0, 710.0)}
EXPM1_RANGE = {"float32": (-40.0, 89.0), "float64": (-80.0, 710.0)}

# 1.5 * 2^23: adding it rounds a float32 |v| < 2^22 to an integer k held in the low
# significand bits, bits(v + shifter) = bits(shifter) + k.
_SHIFTER32 = 12582912.0
_SHIFTER32_BITS = 0x4B400000


def round_scaled_f32(m: Fp, x, scale: float):
    """(n, ni): x*scale rounded once to the nearest integer, as a float32 and as an i32,
    for |x*scale| < 2^22. One fma adds the shifter and ni is read from the bits, with
    no float-to-int conversion (so a NaN x gives a defined ni and a NaN n)."""
    shifted = m.fma(x, m.c(scale), m.c(_SHIFTER32))
    return m.sub(shifted, m.c(_SHIFTER32)), m.b.sub(m.bits(shifted), m.ci(_SHIFTER32_BITS))


def exp_reduce(m: Fp, x):
    """n = x / ln2 rounded to an integer, as a float and as an i32 ``ni``, and r + r_lo =
    x - n*ln2 (Cody-Waite with FMA, |r| <= ln2/2; r_lo is the rounding error of r, so
    the reduced argument is a double-double). float32 rounds with round_scaled_f32
    (one instruction less than rint and a conversion; a NaN x flows through r)."""
    hi, lo = C.LN2[m.dtype.name]
    if m.wide:
        n = m.rint(m.mul(x, m.c(C.LOG2E)))
        ni = m.to_i32(n)
    else:
        n, ni = round_scaled_f32(m, x, float.fromhex(C.LOG2E))
    nn = m.neg(n)
    r1 = m.fma(nn, m.c(hi), x)       # exact
    r = m.fma(nn, m.c(lo), r1)
    return n, ni, r, m.fma(nn, m.c(lo), m.sub(r1, r))


def exp_kernel(m: Fp, x, x_lo=None, *, coeffs=None):
    """e^(x + x_lo) for x clamped to the exp range; scales in two steps so results
    that underflow to subnormals are rounded once, and overflow gives inf. ``coeffs``
    overrides the polynomial (float32 pow evaluates in float64 to float32 accuracy)."""
    hi, _ = exp_kernel_dd(m, x, x_lo, want_lo=False, coeffs=coeffs)
    return hi


def exp_kernel_dd(m: Fp, x, x_lo=None, *, want_lo=True, coeffs=None):
    """exp_kernel as (hi, lo): lo is the rounding error of the final 2^n1 * (1 + q),
    for callers that divide by or add to e^x (lo is meaningful for normal results)."""
    _, ni, r, r_lo = exp_reduce(m, x)
    if x_lo is not None:                     # renormalize r + (r_lo + x_lo)
        r, err = m.two_sum(r, x_lo)
        r_lo = m.add(r_lo, err)
    # q = e^(r + r_lo) - 1 = r + (r^2 P(r) + r_lo)
    p = m.poly(r, coeffs or C.EXP[m.dtype.name])
    q = m.add(r, m.fma(m.mul(r, r), p, r_lo))
    n1 = m.b.ashr(ni, ir.Constant(ni.type, 1))
    s1, s2 = m.pow2(n1), m.pow2(m.b.sub(ni, n1))
    e1 = m.fma(s1, q, s1)                                    # one rounding of 1 + q
    lo = m.mul(m.fma(s1, q, m.sub(s1, e1)), s2) if want_lo else None
    return m.mul(e1, s2), lo


_SQRT_HALF_BITS = {"float32": 0x3F3504F3, "float64": 0x3FE6A09E667F3BCD}


def log_split(m: Fp, x):
    """(k, f) with x = 2^k * (1 + f), 1 + f in [sqrt(1/2), sqrt(2)), for finite x > 0
    including subnormals (pre-scaled into the normal range). k is returned as float."""
    b = m.b
    scale = 25 if not m.wide else 54
    sub = m.cmp("<", x, m.c(m.tiny))
    xs = m.sel(sub, m.mul(x, m.c(2.0 ** scale)), x)
    one_bits = m.bias << m.mant
    sq = _SQRT_HALF_BITS[m.dtype.name]
    ix = b.add(m.bits(xs), m.ci(one_bits - sq))    # moves the cut from 1 to sqrt(1/2)
    k = b.sub(b.lshr(ix, m.ci(m.mant)), m.ci(m.bias))
    k = b.sub(k, b.select(sub, m.ci(scale), m.ci(0)))
    f = m.sub(m.from_bits(b.add(b.and_(ix, m.ci((1 << m.mant) - 1)), m.ci(sq))), m.c(1))
    return m.to_float(k), f


def log_kernel(m: Fp, k, f, corr, *, coeffs=None):
    """k*ln2 + log(1 + f) + corr, with log(1+f) = f - f^2/2 + s*(f^2/2 + R(s^2)),
    s = f/(2+f); corr is a small correction term (log1p's rounding error of 1 + x);
    ``coeffs`` overrides the polynomial for R."""
    hi, lo = C.LN2[m.dtype.name]
    s = m.div(f, m.add(m.c(2), f))
    z = m.mul(s, s)
    rz = m.mul(z, m.poly(z, coeffs or C.LOG[m.dtype.name]))
    hfsq = m.mul(m.mul(m.c(0.5), f), f)
    t = m.fma(s, m.add(hfsq, rz), m.fma(k, m.c(lo), corr))
    t = m.add(m.sub(t, hfsq), f)
    return m.fma(k, m.c(hi), t)


def log1p_finite(m: Fp, x, x_lo=None):
    """log1p(x + x_lo) for finite x > -1: log(u) + c/u where u = fl(1 + x) and
    c = 1 + x - u exactly (plus x_lo, a small low part of the argument)."""
    u = m.add(m.c(1), x)
    c_small = m.sub(x, m.sub(u, m.c(1)))          # Fast2Sum error, |x| <= 1
    c_big = m.sub(m.c(1), m.sub(u, x))            # Fast2Sum error, |x| > 1
    c = m.sel(m.cmp(">", m.abs(x), m.c(1)), c_big, c_small)
    if x_lo is not None:
        c = m.add(c, x_lo)
    k, f = log_split(m, u)
    return log_kernel(m, k, f, m.div(c, u))
