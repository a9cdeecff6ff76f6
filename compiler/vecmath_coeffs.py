"""Polynomial coefficients and split constants for vecmath.

The polynomials are weighted minimax fits made offline with a Remez exchange in
mpmath (60 digits), then rounded to the working precision. Each table lists the
coefficients c0, c1, ... of a polynomial in t; the comment gives the function fitted,
the interval, the weight and the weighted maximum error of the exact-coefficient fit.
float32 tables are float32 values written as decimals; float64 tables are hex floats.
"""
from __future__ import annotations

# (e^r - 1 - r) / r^2 on |r| <= ln2/2, weight r^2 (the absolute error in e^r; serves
# exp and expm1). float32: five terms, degree matched to float32 (about 0.1 ULP).
EXP = {
    "float32": (0.5, 0.16666504740715027, 0.04166637361049652, 0.008370348252356052,
                0.0013941110810264945),                                   # 2^-27.9
    "float64": ('0x1.0000000000000p-1', '0x1.5555555555557p-3', '0x1.5555555555558p-5',
                '0x1.11111111100dcp-7', '0x1.6c16c16c151ffp-10', '0x1.a01a01abe7b0bp-13',
                '0x1.a01a01acf9ba9p-16', '0x1.71de023298fbbp-19', '0x1.27e4ccd0b6881p-22',
                '0x1.af4de74bf3c03p-26', '0x1.1f8b476becfabp-29'),        # 2^-59.3
}

# (e^2s - 1 - 2s) / (2 s^2) = 2 * EXP(2s): the float32 EXP table scaled by 2^(k+1)
# (exact), for float32 tanh, which reduces by ln2/2 (s = r/2) and computes
# (e^2s - 1) / 2 = s + s^2 * this.
HALF_EXPM1_2X_F32 = tuple(c * 2.0 ** (k + 1) for k, c in enumerate(EXP["float32"]))

# R(z)/z where log(1+f) = 2s + s*R(z), s = f/(2+f), z = s^2 <= 0.02944; weight z/2
# (the relative error it causes in log).
LOG = {
    "float32": (0.6666677594184875, 0.39976078271865845, 0.2992558181285858),  # 2^-29.4
    "float64": ('0x1.555555555557cp-1', '0x1.99999999847b8p-2', '0x1.2492493fb0a0fp-2',
                '0x1.c71c52bb79148p-3', '0x1.7466488a9f673p-3', '0x1.399d16aff243bp-3',
                '0x1.2f51b8e9b4550p-3'),                                  # 2^-58.6
}

# The same fit with fewer terms, in float64: float32 pow's log (computed in float64;
# its error is multiplied by |y log x| <= ~104, so it needs more than float32 accuracy).
LOG_POW32 = ('0x1.555555073dd1ep-1', '0x1.999a7d09f4debp-2', '0x1.24358cbf8bb83p-2',
             '0x1.e3af3a6e6e3d8p-3')                                      # 2^-36.9

# Tail of the double-double log used by pow: (2 atanh(s) - 2s - 2s^3/3) / s^5 as a
# polynomial in z = s^2 <= 0.02944, weight z^2/2.
LOG_TAIL = ('0x1.9999999999999p-2', '0x1.249249249279ep-2', '0x1.c71c71c678771p-3',
            '0x1.745d17c2c8c7bp-3', '0x1.3b137e62e9f3fp-3', '0x1.111cda9403df4p-3',
            '0x1.dec439250d27ap-4', '0x1.e6b6f05d8fd27p-4')               # 2^-71.7

# (sin r - r) / r^3 on z = r^2 <= 0.617 (|r| <= pi/4 + margin), weight z.
SIN = {
    "float32": (-0.1666666716337204, 0.008333329111337662, -0.00019839260494336486,
                2.7173402941116365e-06),                                  # 2^-36.9
    "float64": ('-0x1.555555555554cp-3', '0x1.111111110fb49p-7', '-0x1.a01a019c2fbeep-13',
                '0x1.71de356e8814bp-19', '-0x1.ae5e4b96c977cp-26', '0x1.5d873a0a8a400p-33'),
}                                                                         # 2^-57.2

# (cos r - 1 + r^2/2) / r^4 on z = r^2 <= 0.617, weight z^2.
COS = {
    "float32": (0.041666653007268906, -0.0013887654058635235, 2.446375583531335e-05),
    "float64": ('0x1.5555555555553p-5', '-0x1.6c16c16c16130p-10', '0x1.a01a019e24735p-16',
                '-0x1.27e4f90396eb4p-22', '0x1.1eea88fd45af2p-29', '-0x1.8ff9a37486543p-37'),
}                                                                         # 2^-32.2, 2^-62.5

# (tanh x - x) / x^3 on z = x^2 <= 0.625^2, weight z (float64 tanh; float32 tanh is
# built on HALF_EXPM1_2X_F32).
TANH = {
    "float64": ('-0x1.5555555555554p-2', '0x1.1111111110e00p-3', '-0x1.ba1ba1b9e31a4p-5',
                '0x1.664f487388251p-6', '-0x1.226e330e6f0e6p-7', '0x1.d6d360d76d7ccp-9',
                '-0x1.7d9c67f785a17p-10', '0x1.350c669e75c84p-11', '-0x1.f114bba869b39p-13',
                '0x1.8007c674fb787p-14', '-0x1.fa204773a8ae6p-16', '0x1.9460d0c75305dp-18'),
}                                                                         # 2^-60.4

# Split constants: hi + lo (+ lo2) carry the value beyond one rounding.
LOG2E = '0x1.71547652b82fep+0'
LN2 = {"float32": (0.6931471824645996, -1.9046542121259336e-09),
       "float64": ('0x1.62e42fefa39efp-1', '0x1.abc9e3b39803fp-56')}
LN2_DD = ('0x1.62e42fee00000p-1', '0x1.a39ef35793c76p-33')   # hi has 42 bits: k*hi is exact
TWO_THIRDS_DD = ('0x1.5555555555555p-1', '0x1.5555555555555p-55')
TWO_OVER_PI = ('0x1.45f306dc9c883p-1', '-0x1.6b01ec5417056p-55')
PIO2 = ('0x1.921fb54442d18p+0', '0x1.1a62633145c07p-54', '-0x1.f1976b7ed8fbcp-110')
