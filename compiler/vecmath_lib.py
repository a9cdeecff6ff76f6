"""Out-of-line vector math: each vecmath function is emitted once per module and called
from the kernels, instead of being inlined (and vectorized again) in every kernel.

For a function and dtype the module gets two definitions:

- ``sg.vm.<fn>.<dtype>``, the scalar function, ``noinline`` and free of side effects,
  carrying the ``vector-function-abi-variant`` attribute that names its vector variant;
- ``sg.vm.<fn>.<dtype>.v<lanes>``, the same IR on <lanes x T> vectors (one register
  of each of the host's vector widths).

The loop vectorizer then turns a kernel loop that calls the scalar function into a
loop that calls the vector variant on whole registers; the scalar one serves the
remainder. LLVM optimizes and compiles each math function once per module, which
keeps the IR of a module with many kernels small (see the compile_ops benchmark).
The vector variants have external linkage (hidden visibility): until the vectorizer
has run nothing calls them, and an internal function nothing calls would be deleted.
"""
from __future__ import annotations

import functools

import numpy as np
from llvmlite import ir

from . import vecmath
from .irutil import value_type

PREFIX = "sg.vm"


class _Attributes(ir.values.FunctionAttributes):
    """Function attributes that also accept LLVM string attributes (``"key"="value"``),
    which llvmlite's attribute set would reject."""

    def add(self, name):
        if name.startswith('"'):
            return set.add(self, name)
        return super().add(name)


@functools.lru_cache(maxsize=None)
def vector_widths() -> tuple:
    """Vector widths in bits to offer the vectorizer: the host's registers (AVX: 256;
    AVX-512: 256 and 512, since LLVM prefers 256-bit vectors on some AVX-512 CPUs)."""
    from .target import host_cpu
    features = host_cpu()[2]
    if "+avx512f" in features:
        return (256, 512)
    return (256,) if "+avx" in features else (128,)


def call(b, name: str, args, dt):
    """``vecmath.<name>(*args)`` through the module's out-of-line function: the scalar
    one, or for vector registers (vector_kernels.py) the vector variant of their width."""
    dt = np.dtype(dt)
    fn = function(b.module, name, dt, len(args))
    ty = args[0].type
    if isinstance(ty, ir.VectorType):
        fn = b.module.globals.get(f"{fn.name}.v{ty.count}")
        if fn is None:
            raise ValueError(f"no {ty.count}-lane variant of {name} for {dt.name}")
    return b.call(fn, list(args))


def function(module, name: str, dt, arity: int = 1) -> ir.Function:
    """The scalar function of ``vecmath.<name>`` for ``dt`` in ``module`` (emitted,
    with its vector variant, on first use)."""
    sname = f"{PREFIX}.{name}.{_dtype_name(dt)}"
    fn = module.globals.get(sname)
    if fn is not None:
        return fn
    ty = value_type(dt)
    variants = []
    for bits in vector_widths():
        lanes = bits // (8 * dt.itemsize)
        vname = f"{sname}.v{lanes}"
        vec = _define(module, vname, ir.VectorType(ty, lanes), arity, name, dt)
        vec.visibility = "hidden"
        vec.attributes.add("alwaysinline")  # once the vectorizer has called it (target.py)
        variants.append(f"_ZGV_LLVM_N{lanes}{'v' * arity}_{sname}({vname})")
    fn = _define(module, sname, ty, arity, name, dt)
    fn.linkage = "internal"
    attrs = _Attributes()
    for a in ("noinline", "nounwind", "readnone",
              f'"vector-function-abi-variant"="{",".join(variants)}"'):
        attrs.add(a)
    fn.attributes = attrs
    return fn


_DTYPE_NAMES: dict = {}


def _dtype_name(dt) -> str:
    """``dt.name``, remembered (numpy computes it in Python on every access)."""
    s = _DTYPE_NAMES.get(dt)
    if s is None:
        s = _DTYPE_NAMES[dt] = dt.name
    return s


def _define(module, fname, ty, arity, name, dt):
    fn = ir.Function(module, ir.FunctionType(ty, [ty] * arity), name=fname)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.ret(getattr(vecmath, name)(b, *fn.args, dt))
    return fn
