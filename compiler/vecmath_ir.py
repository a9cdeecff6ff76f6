"""IR building blocks for vecmath: one float type with its same-width integer twin.

Everything emitted here is straight-line IR built from instructions that have vector
forms (fma, rint, min/max, select, bitcasts, shifts), so a loop over it vectorizes.
No fast-math flags: the algorithms rely on IEEE rounding and exact FMA.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

_F32, _F64 = ir.FloatType(), ir.DoubleType()
_I32, _I64 = ir.IntType(32), ir.IntType(64)


def width_of(x) -> int:
    """Lanes of a register: 0 for a scalar, n for an <n x T> vector."""
    return x.type.count if isinstance(x.type, ir.VectorType) else 0


def _vec(ty, width):
    return ir.VectorType(ty, width) if width else ty


class Fp:
    """Emit float math on ``dtype`` (float32 or float64) registers with builder ``b``:
    scalars, or <width x T> vectors when ``width`` is given (the same IR, lane-wise;
    constants are splats)."""

    def __init__(self, b: ir.IRBuilder, dtype, width: int = 0):
        self.b = b
        self.width = width
        self.wide = np.dtype(dtype) == np.float64
        self.dtype = np.dtype(np.float64 if self.wide else np.float32)
        self.ty = _vec(_F64 if self.wide else _F32, width)
        self.ity = _vec(_I64 if self.wide else _I32, width)
        self.mant = 52 if self.wide else 23          # explicit significand bits
        self.bias = 1023 if self.wide else 127
        self.tiny = float(np.finfo(self.dtype).tiny)  # smallest normal
        self._sign_bit = -(1 << (63 if self.wide else 31))

    # ---- constants and intrinsics ------------------------------------------
    def c(self, v) -> ir.Constant:
        """A float constant; hex-string coefficients are parsed exactly."""
        return ir.Constant(self.ty, float.fromhex(v) if isinstance(v, str) else float(v))

    def ci(self, v: int) -> ir.Constant:
        return ir.Constant(self.ity, int(v))

    def int_type(self, bits: int) -> ir.Type:
        """The integer type of ``bits`` bits with this Fp's lane count."""
        return _vec(ir.IntType(bits), self.width)

    def _intr(self, name, *args):
        fnty = ir.FunctionType(self.ty, [self.ty] * len(args))
        return self.b.call(intrinsic(self.b.module, name, self.ty, fnty), list(args))

    def fma(self, a, b, c):
        return self._intr("llvm.fma", a, b, c)

    def abs(self, x):
        return self._intr("llvm.fabs", x)

    def rint(self, x):
        return self._intr("llvm.rint", x)

    def trunc(self, x):
        return self._intr("llvm.trunc", x)

    def copysign(self, mag, sgn):
        return self._intr("llvm.copysign", mag, sgn)

    def clamp(self, x, lo, hi):
        """min(max(x, lo), hi); NaN becomes ``lo`` (callers restore NaN at the end)."""
        return self._intr("llvm.minnum", self._intr("llvm.maxnum", x, self.c(lo)), self.c(hi))

    def clamp_keep_nan(self, x, lo=None, hi=None):
        """x limited to [lo, hi] (either bound may be None), NaN kept: a NaN argument then
        flows through the float math to the result with no select at the end. Each bound
        is one compare-and-select, which x86 emits as a single minps/maxps."""
        if lo is not None:
            x = self.sel(self.cmp("<", x, self.c(lo)), self.c(lo), x)
        if hi is not None:
            x = self.sel(self.cmp(">", x, self.c(hi)), self.c(hi), x)
        return x

    # ---- arithmetic shorthands ---------------------------------------------
    def add(self, a, b):
        return self.b.fadd(a, b)

    def sub(self, a, b):
        return self.b.fsub(a, b)

    def mul(self, a, b):
        return self.b.fmul(a, b)

    def div(self, a, b):
        return self.b.fdiv(a, b)

    def neg(self, a):
        return self.b.fneg(a)

    def poly(self, x, coeffs):
        """c0 + c1*x + c2*x^2 + ... by Horner's rule with fma."""
        acc = self.c(coeffs[-1])
        for co in reversed(coeffs[:-1]):
            acc = self.fma(acc, x, self.c(co))
        return acc

    # ---- comparisons and selection -----------------------------------------
    def cmp(self, op, a, b):
        """Ordered comparison: false whenever an operand is NaN."""
        return self.b.fcmp_ordered(op, a, b)

    def isnan(self, x):
        return self.b.fcmp_unordered("uno", x, x)

    def isfinite(self, x):
        return self.cmp("<", self.abs(x), self.c(np.inf))

    def sel(self, cond, a, b):
        return self.b.select(cond, a, b)

    def signbit(self, x):
        return self.b.icmp_signed("<", self.bits(x), self.ci(0))

    def neg_abs(self, x):
        """-|x| (one bitwise or; NaN stays NaN)."""
        return self.from_bits(self.b.or_(self.bits(x), self.ci(self._sign_bit)))

    def with_sign_of(self, mag, x):
        """``mag`` with the sign bit of ``x`` or-ed in: copysign for a ``mag`` whose sign
        bit is clear (+0 included), in two bitwise operations instead of three."""
        sign = self.b.and_(self.bits(x), self.ci(self._sign_bit))
        return self.from_bits(self.b.or_(self.bits(mag), sign))

    # ---- bit-level views ----------------------------------------------------
    def bits(self, x):
        return self.b.bitcast(x, self.ity)

    def from_bits(self, i):
        return self.b.bitcast(i, self.ty)

    def to_i32(self, x):
        """An integral float with |x| < 2^31 to i32 (a vector convert even on AVX2)."""
        return self.b.fptosi(x, self.int_type(32))

    def to_float(self, i):
        """A small integer twin (|i| < 2^31) to float, via i32."""
        if self.wide:
            i = self.b.trunc(i, self.int_type(32))
        return self.b.sitofp(i, self.ty)

    def pow2(self, n):
        """2^n for an i32 register n within the normal exponent range."""
        if self.wide:
            n = self.b.sext(n, self.int_type(64))
        return self.from_bits(self.b.shl(self.b.add(n, self.ci(self.bias)), self.ci(self.mant)))

    # ---- error-free transformations (double-double building blocks) ---------
    def two_sum(self, a, b):
        """(s, e) with s = fl(a + b) and a + b = s + e exactly."""
        s = self.add(a, b)
        bb = self.sub(s, a)
        e = self.add(self.sub(a, self.sub(s, bb)), self.sub(b, bb))
        return s, e

    def fast_two_sum(self, a, b):
        """two_sum for |a| >= |b| (or a == 0)."""
        s = self.add(a, b)
        return s, self.sub(b, self.sub(s, a))

    def two_prod(self, a, b):
        p = self.mul(a, b)
        return p, self.fma(a, b, self.neg(p))


def intrinsic(module, name, ty, fnty):
    """Declare ``llvm.<name>`` overloaded on scalar or vector type ``ty`` (llvmlite
    cannot mangle vector types)."""
    if isinstance(ty, ir.VectorType):
        elem = ty.element
        suffix = f"v{ty.count}" + ("f64" if isinstance(elem, ir.DoubleType) else
                                  "f32" if isinstance(elem, ir.FloatType) else f"i{elem.width}")
        full = f"{name}.{suffix}"
        fn = module.globals.get(full)
        return fn if fn is not None else ir.Function(module, fnty, name=full)
    return module.declare_intrinsic(name, [ty], fnty)
