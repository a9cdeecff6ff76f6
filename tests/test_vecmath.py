"""vecmath: error in ULPs against numpy on dense samples and arbitrary floats, numpy's
special values, and vectorized code free of libm calls (host and AVX-512)."""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from symgraph.compiler import target, vecmath

from .vecmath_harness import (FUNCTIONS, UNARY, compile_for_cpu, kernel, reference,
                              ulp_error)

DTYPES = [np.float32, np.float64]

# sample ranges per function: (float32, float64); beyond them results saturate
RANGES = {"exp": ((-110, 95), (-760, 720)), "log": ((0, 1e6), (0, 1e6)),
          "log1p": ((-1, 10), (-1, 10)), "expm1": ((-30, 95), (-60, 720)),
          "tanh": ((-12, 12), (-22, 22)), "sigmoid": ((-110, 110), (-760, 760)),
          "softplus": ((-110, 110), (-760, 760)), "sin": ((-1e5, 1e5), (-1e5, 1e5)),
          "cos": ((-1e5, 1e5), (-1e5, 1e5))}


def _wide(dtype) -> bool:
    return np.dtype(dtype) == np.float64


def _errors(fname, dtype, *xs):
    """(result, ULP errors): float32 against numpy in float64, float64 against numpy in
    long double; sin/cos only where the documented bound applies."""
    got = kernel(fname, dtype)(*xs)
    err = ulp_error(got, reference(fname, *xs, precise=_wide(dtype)), dtype)
    if fname in ("sin", "cos"):
        err[~(np.abs(xs[0]) < vecmath.TRIG_ACCURATE_BELOW)] = 0.0
    return got, err


def _assert_within_bound(fname, dtype, *xs):
    bound = vecmath.MAX_ULP[fname][_wide(dtype)]
    got, err = _errors(fname, dtype, *xs)
    i = int(np.argmax(err))
    args = ", ".join(repr(x[i]) for x in xs)
    assert err[i] <= bound, (f"{fname}[{np.dtype(dtype).name}]({args}) = {got[i]!r}: "
                             f"{err[i]:.3f} ULP > {bound}")
    return got


def _random_bits(rng, dtype, n):
    """Uniformly random bit patterns: every finite magnitude and subnormals, both signs."""
    wide = _wide(dtype)
    it, top = (np.uint64, 0x7FEFFFFFFFFFFFFF) if wide else (np.uint32, 0x7F7FFFFF)
    bits = rng.integers(0, top, n, dtype=it, endpoint=True)
    bits |= rng.integers(0, 2, n, dtype=it) << it(63 if wide else 31)
    return bits.view(dtype)


# ---- dense samples ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fname", UNARY)
def test_ulp_error_on_dense_samples(fname, dtype):
    rng = np.random.default_rng(1234)
    lo, hi = RANGES[fname][_wide(dtype)]
    tiny_exp = -320 if _wide(dtype) else -45
    x = np.concatenate([
        rng.uniform(lo, hi, 200_000),
        rng.uniform(-3, 3, 100_000),
        rng.choice([-1, 1], 50_000) * 10.0 ** rng.uniform(tiny_exp, 0, 50_000),
        _random_bits(rng, dtype, 100_000).astype(np.float64),
    ]).astype(dtype)
    _assert_within_bound(fname, dtype, x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pow_ulp_error_on_dense_samples(dtype):
    rng = np.random.default_rng(99)
    n = 200_000
    lim = 745.0 if _wide(dtype) else 104.0
    lx = rng.uniform(-lim, lim, n)
    x = np.exp(lx)
    # y spans results from underflow to overflow
    y = rng.uniform(-1.02, 1.02, n) * lim / np.where(np.abs(lx) < 1e-3, 1e-3, lx)
    neg = rng.random(n) < 0.3
    y[neg] = np.round(y[neg])                   # negative bases need integral exponents
    x[neg] = -x[neg]
    x = np.concatenate([x, rng.uniform(0, 10, n), _random_bits(rng, dtype, n)])
    y = np.concatenate([y, rng.uniform(-40, 40, n), _random_bits(rng, dtype, n)])
    _assert_within_bound("pow", dtype, x.astype(dtype), y.astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_underflows_through_subnormals(dtype):
    lo, hi = (-745.2, -708.0) if _wide(dtype) else (-103.98, -87.0)
    x = np.linspace(lo, hi, 100_001).astype(dtype)
    got = _assert_within_bound("exp", dtype, x)
    fi = np.finfo(dtype)
    assert (got[x < np.log(fi.tiny) - 0.01] < fi.tiny).all()          # subnormal results
    assert (got[x > np.log(fi.smallest_subnormal) + 0.01] > 0).all()   # not flushed to 0
    _assert_within_bound("sigmoid", dtype, x)


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_of_subnormals(dtype):
    rng = np.random.default_rng(5)
    it, top = (np.uint64, 0x000FFFFFFFFFFFFF) if _wide(dtype) else (np.uint32, 0x007FFFFF)
    x = rng.integers(1, top, 100_000, dtype=it, endpoint=True).view(dtype)
    _assert_within_bound("log", dtype, x)
    _assert_within_bound("log1p", dtype, x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fname", ["sin", "cos"])
def test_trig_beyond_accurate_range_stays_finite_in_unit_interval(fname, dtype):
    rng = np.random.default_rng(7)
    top = np.log2(np.finfo(dtype).max)
    x = (rng.choice([-1, 1], 50_000) * 2.0 ** rng.uniform(52, top, 50_000)).astype(dtype)
    got = kernel(fname, dtype)(x)
    assert np.isfinite(got).all() and (np.abs(got) <= 1).all()


@pytest.mark.parametrize("fname", ["exp", "tanh", "sigmoid"])
def test_float32_sweep_over_all_bit_patterns(fname):
    """Every 257th float32 bit pattern (16.7 million arguments: both signs, subnormals,
    inf and NaN): within the bound, and tanh odd (bit for bit) and in [-1, 1], sigmoid
    in [0, 1]. These three have float32 forms of their own (tanh without a
    branch, sigmoid shared with e^-x), checked exhaustively when they changed."""
    x = np.arange(0, 1 << 32, 257, dtype=np.uint64).astype(np.uint32).view(np.float32)
    got = _assert_within_bound(fname, np.float32, x)
    finite = ~np.isnan(x)
    if fname == "tanh":
        assert (np.abs(got[finite]) <= 1).all()
        neg = kernel("tanh", np.float32)(-x)
        np.testing.assert_array_equal(neg.view(np.uint32)[finite], (-got).view(np.uint32)[finite])
    if fname == "sigmoid":
        assert ((got[finite] >= 0) & (got[finite] <= 1)).all()


# ---- special values ----------------------------------------------------------------

def _specials(dtype):
    fi = np.finfo(dtype)
    v = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0,
         fi.tiny, -fi.tiny, fi.smallest_subnormal, -fi.smallest_subnormal, fi.tiny / 3,
         fi.max, -fi.max, fi.eps, 1e-10, -1e-10, 20.0, -20.0, 40.0, -40.0, 88.72, 88.73,
         -103.9, 709.78, 709.79, -745.1, 1e5, -1e5, 1e30, -1e30, np.pi / 2, np.pi]
    with np.errstate(over="ignore"):
        return np.array(v, np.float64).astype(dtype)


def _assert_same_specials(got, ref):
    """NaN where numpy gives NaN, and the same zeros (with sign) and infinities."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    exact = (ref == 0) | np.isinf(ref)
    np.testing.assert_array_equal(got[exact], ref[exact])
    np.testing.assert_array_equal(np.signbit(got[exact]), np.signbit(ref[exact]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fname", UNARY)
def test_special_values_match_numpy(fname, dtype):
    x = _specials(dtype)
    got = _assert_within_bound(fname, dtype, x)
    with np.errstate(all="ignore"):
        ref = reference(fname, x).astype(dtype)
    if fname in ("sin", "cos"):
        keep = ~(np.abs(x) >= vecmath.TRIG_ACCURATE_BELOW)
        got, ref = got[keep], ref[keep]
    _assert_same_specials(got, ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pow_special_value_pairs_match_numpy(dtype):
    s = _specials(dtype)
    x, y = (a.ravel() for a in np.meshgrid(s, s))
    got = _assert_within_bound("pow", dtype, x, y)
    with np.errstate(all="ignore"):
        _assert_same_specials(got, np.power(x, y))


_INF, _NAN = np.inf, np.nan
EXACT_CASES = [
    ("exp", -_INF, 0.0), ("exp", _INF, _INF), ("exp", 0.0, 1.0), ("exp", -0.0, 1.0),
    ("exp", 1000.0, _INF), ("exp", -1000.0, 0.0), ("exp", _NAN, _NAN),
    ("log", 0.0, -_INF), ("log", -0.0, -_INF), ("log", -1.0, _NAN), ("log", -_INF, _NAN),
    ("log", _INF, _INF), ("log", 1.0, 0.0), ("log", _NAN, _NAN),
    ("log1p", -1.0, -_INF), ("log1p", -2.0, _NAN), ("log1p", -0.0, -0.0),
    ("log1p", _INF, _INF), ("log1p", 0.0, 0.0),
    ("expm1", -0.0, -0.0), ("expm1", -_INF, -1.0), ("expm1", _INF, _INF),
    ("expm1", 1000.0, _INF), ("expm1", -1000.0, -1.0),
    ("tanh", _INF, 1.0), ("tanh", -_INF, -1.0), ("tanh", 30.0, 1.0), ("tanh", -30.0, -1.0),
    ("tanh", -0.0, -0.0), ("tanh", _NAN, _NAN),
    ("sigmoid", _INF, 1.0), ("sigmoid", -_INF, 0.0), ("sigmoid", 1000.0, 1.0),
    ("sigmoid", -1000.0, 0.0), ("sigmoid", 0.0, 0.5), ("sigmoid", _NAN, _NAN),
    ("softplus", _INF, _INF), ("softplus", -_INF, 0.0), ("softplus", 1e30, 1e30),
    ("softplus", -1000.0, 0.0), ("softplus", 100.0, 100.0), ("softplus", _NAN, _NAN),
    ("sin", _INF, _NAN), ("sin", -_INF, _NAN), ("sin", -0.0, -0.0), ("sin", _NAN, _NAN),
    ("cos", _INF, _NAN), ("cos", 0.0, 1.0), ("cos", -0.0, 1.0), ("cos", _NAN, _NAN),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fname, x, want", EXACT_CASES)
def test_exact_special_results(fname, x, want, dtype):
    got = kernel(fname, dtype)(np.array([x], dtype))[0]
    want = np.array(want, dtype)
    assert (np.isnan(got) and np.isnan(want)) or (got == want and
                                                   np.signbit(got) == np.signbit(want)), got


@pytest.mark.parametrize("dtype", DTYPES)
def test_subnormal_inputs_pass_through_odd_functions(dtype):
    x = np.array([np.finfo(dtype).smallest_subnormal, -np.finfo(dtype).tiny / 7], dtype)
    for fname in ("log1p", "expm1", "tanh", "sin"):
        np.testing.assert_array_equal(kernel(fname, dtype)(x), x)


# ---- arbitrary floats (property) ---------------------------------------------------

def _floats(dtype):
    return st.floats(width=32 if np.dtype(dtype) == np.float32 else 64, allow_nan=True,
                     allow_infinity=True, allow_subnormal=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fname", UNARY)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_error_bound_holds_for_arbitrary_floats(fname, dtype, data):
    x = data.draw(hnp.arrays(dtype, st.integers(1, 40), elements=_floats(dtype)))
    _assert_within_bound(fname, dtype, x)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_pow_error_bound_holds_for_arbitrary_floats(dtype, data):
    n = data.draw(st.integers(1, 40))
    x = data.draw(hnp.arrays(dtype, n, elements=_floats(dtype)))
    y = data.draw(hnp.arrays(dtype, n, elements=_floats(dtype)))
    _assert_within_bound("pow", dtype, x, y)


# ---- generated code ----------------------------------------------------------------

_VECTOR_INTRINSICS = ("llvm.fma.", "llvm.fabs.", "llvm.rint.", "llvm.floor.", "llvm.trunc.",
                      "llvm.minnum.", "llvm.maxnum.", "llvm.copysign.", "llvm.is.fpclass.")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fname", FUNCTIONS)
def test_host_kernel_is_vectorized_without_libm_calls(fname, dtype):
    ir_text = kernel(fname, dtype).optimized_ir
    ty = "float" if np.dtype(dtype) == np.float32 else "double"
    assert re.search(rf"<(?:4|8|16) x {ty}>", ir_text), "loop was not vectorized"
    callees = set(re.findall(r"\bcall\b[^@\n]*@([\w.$]+)", ir_text))
    assert callees and all(c.startswith(_VECTOR_INTRINSICS) for c in callees), callees


@pytest.mark.skipif(not target.triple().startswith("x86_64"), reason="x86-64 only")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fname", FUNCTIONS)
def test_avx512_kernel_uses_zmm_registers_without_calls(fname, dtype):
    ir_text, asm = compile_for_cpu(fname, dtype, "znver4")
    if fname != "pow":   # float32 pow computes in float64, at 8 lanes
        want = "<16 x float>" if np.dtype(dtype) == np.float32 else "<8 x double>"
        assert want in ir_text
    assert "zmm" in asm
    assert not re.search(r"\bcall", asm)
