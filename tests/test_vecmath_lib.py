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
    lanes = vecmath_lib.vector_bits() // (8 * np.dtype(dtype).itemsize)
    assert f"sg.vm.{fname}.{np.dtype(dtype).name}.v{lanes}(" in lib.optimized_ir  # vectorized
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
