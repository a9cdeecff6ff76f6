"""A small JIT harness for vecmath: compile ``void f(ptr in.., ptr out, i64 n)`` that
applies one vecmath function elementwise, run it on numpy arrays, and measure errors
in ULPs against numpy references. Shared by the tests and the benchmark."""
from __future__ import annotations

import ctypes
import functools

import numpy as np
from llvmlite import ir

from symgraph.compiler import target, vecmath
from symgraph.compiler.irutil import for_range

UNARY = ("exp", "log", "log1p", "expm1", "tanh", "sigmoid", "softplus", "sin", "cos")
BINARY = ("pow",)
FUNCTIONS = UNARY + BINARY
DTYPES = (np.float32, np.float64)


def build_module(fname: str, dtype) -> ir.Module:
    """IR for ``f(in0[, in1], out, n)``: out[i] = vecmath.<fname>(in0[i][, in1[i]])."""
    dt = np.dtype(dtype)
    fty = ir.DoubleType() if dt == np.float64 else ir.FloatType()
    arity = 2 if fname in BINARY else 1
    i64 = ir.IntType(64)
    mod = ir.Module(name=f"vecmath_{fname}_{dt.name}")
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [fty.as_pointer()] * (arity + 1) + [i64]),
                     name="f")
    *ins, out, n = fn.args
    for i, a in enumerate(ins):
        a.name = f"in{i}"
    out.name, n.name = "out", "n"
    for a in (*ins, out):
        a.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    with for_range(b, n) as i:
        args = [b.load(b.gep(a, [i], inbounds=True), name=f"x{j}") for j, a in enumerate(ins)]
        b.store(getattr(vecmath, fname)(b, *args, dt), b.gep(out, [i], inbounds=True))
    b.ret_void()
    return mod


class Kernel:
    """A compiled vecmath loop; keeps its execution engine alive while callable."""

    def __init__(self, fname: str, dtype):
        llvm = target.llvm()
        self.fname, self.dtype = fname, np.dtype(dtype)
        mod = target.parse_and_optimize(str(build_module(fname, dtype)))
        self.optimized_ir = str(mod)
        self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""),
                                                 target.target_machine(jit=True))
        self.engine.add_module(mod)
        self.engine.finalize_object()
        arity = 2 if fname in BINARY else 1
        proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * (arity + 1)), ctypes.c_int64)
        self._fn = proto(self.engine.get_function_address("f"))

    def __call__(self, *xs, out=None):
        xs = [np.ascontiguousarray(x, dtype=self.dtype) for x in xs]
        if len(xs) == 2:
            xs = list(np.broadcast_arrays(*xs))
            xs = [np.ascontiguousarray(x) for x in xs]
        if out is None:
            out = np.empty(xs[0].shape, self.dtype)
        self._fn(*(x.ctypes.data for x in xs), out.ctypes.data, out.size)
        return out


@functools.lru_cache(maxsize=None)
def kernel(fname: str, dtype) -> Kernel:
    return Kernel(fname, np.dtype(dtype).type)


# ---- references -------------------------------------------------------------------

def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1, e) / (1 + e)


def _softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


_REF = {"exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1,
        "tanh": np.tanh, "sin": np.sin, "cos": np.cos, "sigmoid": _sigmoid,
        "softplus": _softplus, "pow": np.power}


def reference(fname: str, *xs, precise: bool = False):
    """numpy's result in float64 (``precise``: in x87 long double, 11 more bits)."""
    wide = np.longdouble if precise else np.float64
    with np.errstate(all="ignore"):
        r = _REF[fname](*(np.asarray(x, np.float64).astype(wide) for x in xs))
    return np.asarray(r, wide)


def ulp_error(got, ref, dtype) -> np.ndarray:
    """|got - ref| in ULPs of ``dtype`` at the reference (``ref``, float64 or long
    double, may be more precise than ``dtype``: then 0.5 means correctly rounded). NaN must match NaN; infinities
    and overflow boundaries are measured by distance in representable values."""
    dt = np.dtype(dtype)
    ref64 = np.asarray(ref)
    wide = ref64.dtype if ref64.dtype == np.longdouble else np.dtype(np.float64)
    ref64 = ref64.astype(wide)
    got = np.asarray(got, dt).astype(wide)
    with np.errstate(all="ignore"):
        ref_dt = ref64.astype(dt)
        ulp = np.spacing(np.abs(ref_dt)).astype(wide)
        ulp = np.where(np.isfinite(ulp), ulp, np.spacing(np.finfo(dt).max).astype(wide))
        err = (np.abs(got - ref64) / ulp).astype(np.float64)
    # infinities: count representable steps between got and the rounded reference
    inf = np.isinf(got) | np.isinf(ref_dt)
    if inf.any():
        err[inf] = _steps(got[inf].astype(dt), ref_dt[inf])
    nan_g, nan_r = np.isnan(got), np.isnan(ref64)
    err[nan_g & nan_r] = 0.0
    err[nan_g ^ nan_r] = np.inf
    return err


def _steps(a, b):
    """Number of representable values between a and b (same dtype, no NaN)."""
    it = np.int64 if a.dtype == np.float64 else np.int32
    ia, ib = a.view(it).astype(np.int64), b.view(it).astype(np.int64)
    mn = np.iinfo(it).min
    ia = np.where(ia < 0, mn - ia, ia)     # sign-magnitude to monotone integers
    ib = np.where(ib < 0, mn - ib, ib)
    return np.abs(ia - ib).astype(np.float64)


def compile_for_cpu(fname: str, dtype, cpu: str):
    """(optimized IR, assembly) of the kernel for another x86-64 CPU (no execution):
    lets the tests check AVX-512 code generation on any x86-64 host."""
    llvm = target.llvm()
    tm = llvm.Target.from_triple(target.triple()).create_target_machine(cpu=cpu, features="",
                                                                         opt=3)
    mod = llvm.parse_assembly(str(build_module(fname, dtype)))
    mod.triple = tm.triple
    mod.data_layout = str(tm.target_data)
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = pto.slp_vectorization = True
    pto.loop_interleaving = pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return str(mod), tm.emit_assembly(mod)
