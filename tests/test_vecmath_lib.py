"""Out-of-line vector math: a loop calling a module's vecmath function is vectorized into
calls of its vector variant, whose results are bit for bit those of the inlined scalar
code the accuracy tests measure (test_vecmath.py), specials and remainder lanes included."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
from llvmlite import ir

from symgraph.compiler import target, vecmath_lib
from symgraph.compiler.irutil import for_range

from .test_vecmath import _random_bits, _specials
from .vecmath_harness import BINARY, FUNCTIONS, kernel

DTYPES = [np.float32, np.float64]


class _Lib:
    """``f(in.., out, n)``: out[i] = fname(in[i]..) through vecmath_lib."""

    def __init__(self, fname, dtype):
        dt = np.dtype(dtype)
        arity = 2 if fname in BINARY else 1
        fty = ir.DoubleType() if dt == np.float64 else ir.FloatType()
        mod = ir.Module(name="lib")
        i64 = ir.IntType(64)
        fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [fty.as_pointer()] * (arity + 1)
                                              + [i64]), name="f")
        for a in fn.args[:-1]:
            a.add_attribute("noalias")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        with for_range(b, fn.args[-1]) as i:
            args = [b.load(b.gep(a, [i], inbounds=True)) for a in fn.args[:arity]]
            b.store(vecmath_lib.call(b, fname, args, dt),
                    b.gep(fn.args[arity], [i], inbounds=True))
        b.ret_void()
        opt = target.parse_and_optimize(str(mod))
        self.optimized_ir = str(opt)
        llvm = target.llvm()
        self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""),
                                                 target.target_machine(jit=True))
        self.engine.add_module(opt)
        self.engine.finalize_object()
        proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * (arity + 1)), ctypes.c_int64)
        self._fn = proto(self.engine.get_function_address("f"))
        self.dtype = dt

    def __call__(self, *xs):
        xs = [np.ascontiguousarray(x, self.dtype) for x in xs]
        out = np.empty(xs[0].shape, self.dtype)
        self._fn(*(x.ctypes.data for x in xs), out.ctypes.data, out.size)
        return out


def _same_bits(a, b):
    nan = np.isnan(a) & np.isnan(b)
    return (a.view(np.uint8).reshape(a.size, -1) == b.view(np.uint8).reshape(b.size, -1)).all(1) | nan


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fname", FUNCTIONS)
def test_vector_variant_matches_inlined_code_bit_for_bit(fname, dtype):
    lib = _Lib(fname, dtype)
    widths = [bits // (8 * np.dtype(dtype).itemsize) for bits in vecmath_lib.vector_widths()]
    loop = lib.optimized_ir.split("@f(")[1].split("\n}\n")[0]
    assert any(f"<{lanes} x " in loop for lanes in widths)   # calls or inlined a vector variant
    rng = np.random.default_rng(21)
    s = _specials(dtype)
    n = 20_003                                    # not a multiple of the vector width
    xs = [np.concatenate([s, rng.uniform(-30, 30, n), _random_bits(rng, dtype, n)])]
    if fname in BINARY:
        x, y = (a.ravel() for a in np.meshgrid(s, s))
        xs = [np.concatenate([x, rng.uniform(0, 10, n), _random_bits(rng, dtype, n)]),
              np.concatenate([y, rng.uniform(-20, 20, n), _random_bits(rng, dtype, n)])]
    xs = [x.astype(dtype) for x in xs]
    with np.errstate(all="ignore"):
        want = kernel(fname, dtype)(*xs)
    got = lib(*xs)
    same = _same_bits(got, want)
    i = int(np.argmin(same))
    assert same.all(), (fname, [x[i] for x in xs], got[i], want[i])


def _pair_kernel():
    """f(x, sig, e, n): sig[i], e[i] = vecmath.sigmoid_and_exp_neg(x[i]) (float32)."""
    from symgraph.compiler import vecmath
    mod = ir.Module(name="pair")
    f32p = ir.FloatType().as_pointer()
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [f32p] * 3 + [ir.IntType(64)]),
                     name="f")
    for a in fn.args[:3]:
        a.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    with for_range(b, fn.args[3]) as i:
        s, e = vecmath.sigmoid_and_exp_neg(b, b.load(b.gep(fn.args[0], [i])), np.float32)
        b.store(s, b.gep(fn.args[1], [i]))
        b.store(e, b.gep(fn.args[2], [i]))
    b.ret_void()
    llvm = target.llvm()
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target.target_machine(jit=True))
    engine.add_module(target.parse_and_optimize(str(mod)))
    engine.finalize_object()
    proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 3), ctypes.c_int64)
    return engine, proto(engine.get_function_address("f"))


def test_shared_sigmoid_and_exp_keep_their_bounds_and_specials():
    from symgraph.compiler import vecmath
    from .vecmath_harness import reference, ulp_error
    engine, fn = _pair_kernel()
    rng = np.random.default_rng(8)
    lo = np.float32(-103.99)
    x = np.concatenate([_specials(np.float32), rng.uniform(-110, 110, 400_000),
                        rng.uniform(-3, 3, 200_000), np.linspace(lo, -80, 200_001),
                        rng.choice([-1, 1], 100_000) * 10.0 ** rng.uniform(-45, 1.5, 100_000),
                        _random_bits(rng, np.float32, 200_000)]).astype(np.float32)
    sig, e = np.empty_like(x), np.empty_like(x)
    fn(x.ctypes.data, sig.ctypes.data, e.ctypes.data, x.size)
    with np.errstate(all="ignore"):
        want_e = kernel("exp", np.float32)(-x)
    assert _same_bits(e, want_e).all()                       # exp(-x), bit for bit
    err = ulp_error(sig, reference("sigmoid", x), np.float32)
    i = int(np.argmax(err))
    assert err[i] <= vecmath.MAX_ULP["sigmoid"][0], (x[i], sig[i], err[i])
    fi = np.finfo(np.float32)
    sub = (x < -88) & (x > -103)
    assert ((sig[sub] > 0) & (sig[sub] < fi.tiny)).all()      # subnormal, not flushed
    with np.errstate(all="ignore"):
        ref = reference("sigmoid", x).astype(np.float32)
    exact = (ref == 0) | (ref == 1) | np.isnan(ref)
    np.testing.assert_array_equal(sig[exact], ref[exact])
