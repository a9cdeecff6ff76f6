"""Multi-core loops: a kernel's outermost loop split across threads by libgomp.

Off unless ``SYMGRAPH_PARALLEL=1``: on the 2-core development machine libgomp's
spinning threads and OpenBLAS's own pool fought over the cores (an MLP step went from
18 ms to 214 ms with both active under load), so splitting loops stays opt-in until
it is measured on an idle machine with more cores.

Generated code calls ``GOMP_parallel(worker, data, 0, 0)`` (0 threads: libgomp's
default, one per core or OMP_NUM_THREADS), and each thread runs the kernel on its
share [lo, hi) of the outermost axis. Only kernels whose outermost axis is not reduced
are split, so threads never write the same element, and only when the loop is large
enough to pay for the fork/join (about a microsecond). BLAS keeps its own threads; the
two never run at the same time, so cores are not oversubscribed.
"""
from __future__ import annotations

import ctypes.util
import functools
import os

from llvmlite import ir

from symgraph import dims as D
from .irutil import I32, I64, PTR, VOID, i64

# Elements below which a kernel runs on the calling thread.
PARALLEL_MIN_ELEMENTS = 1 << 16
GOMP_SYMBOLS = ("GOMP_parallel", "omp_get_thread_num", "omp_get_num_threads")


@functools.lru_cache(maxsize=None)
def _libgomp_found() -> bool:
    return ctypes.util.find_library("gomp") is not None


def available() -> bool:
    """Split loops only when asked (SYMGRAPH_PARALLEL=1) and libgomp, gcc's runtime
    library, is installed; otherwise code stays serial."""
    flag = os.environ.get("SYMGRAPH_PARALLEL", "0").strip().lower()
    return flag not in ("", "0", "off", "false", "no") and _libgomp_found()


def _decl(ctx, name, fnty):
    fn = ctx.module.globals.get(name)
    if fn is None:
        fn = ir.Function(ctx.module, fnty, name=name)
    ctx.blas_symbols.add(name)  # resolved by the runtime like BLAS symbols
    return fn


def call_kernel(ctx, fn, ptrs, extents, *, splittable: bool):
    """Call ``fn(ptrs.., lo, hi, extents..)`` over the whole outermost axis, on all cores
    when ``splittable`` and the work is large."""
    b = ctx.builder
    dims = [ctx.dim(e) for e in extents]
    if not extents:
        b.call(fn, list(ptrs) + [i64(0), i64(1)])
        return
    total = ctx.dim(D.product(extents))
    serial_args = list(ptrs) + [i64(0), dims[0]] + dims
    static_total = D.product(extents)
    if not splittable or not available() or (
            type(static_total) is int and static_total < PARALLEL_MIN_ELEMENTS) or (
            type(extents[0]) is int and extents[0] < 2):
        b.call(fn, serial_args)
        return
    worker = _worker(ctx, fn, len(ptrs), len(extents))
    big = b.and_(b.icmp_signed(">=", total, i64(PARALLEL_MIN_ELEMENTS)),
                 b.icmp_signed(">", dims[0], i64(1)))
    with b.if_else(big) as (then, otherwise):
        with then:
            slots = [b.bitcast(p, PTR) for p in ptrs] + [b.inttoptr(d, PTR) for d in dims]
            data = ctx._at_entry(lambda: b.alloca(ir.ArrayType(PTR, len(slots)),
                                                  name="par.data"))
            for k, v in enumerate(slots):
                b.store(v, b.gep(data, [i64(0), i64(k)], inbounds=True))
            gomp = _decl(ctx, "GOMP_parallel", ir.FunctionType(VOID, [PTR, PTR, I32, I32]))
            b.call(gomp, [b.bitcast(worker, PTR), b.bitcast(data, PTR),
                          ir.Constant(I32, 0), ir.Constant(I32, 0)])
        with otherwise:
            b.call(fn, serial_args)


def _worker(ctx, kernel, n_ptrs, n_extents):
    """``void worker(ptr data)``: this thread's chunk of the outermost axis."""
    key = ("worker", kernel.name)
    cached = ctx.kernel_cache.get(key)
    if cached is not None:
        return cached
    fn = ir.Function(ctx.module, ir.FunctionType(VOID, [PTR]), name=ctx.name("par.worker"))
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    slots = b.bitcast(fn.args[0], PTR.as_pointer())
    vals = [b.load(b.gep(slots, [i64(k)], inbounds=True)) for k in range(n_ptrs + n_extents)]
    ptrs = vals[:n_ptrs]
    dims = [b.ptrtoint(v, I64) for v in vals[n_ptrs:]]
    tid_fn = _decl(ctx, "omp_get_thread_num", ir.FunctionType(I32, []))
    nt_fn = _decl(ctx, "omp_get_num_threads", ir.FunctionType(I32, []))
    tid = b.sext(b.call(tid_fn, []), I64)
    nt = b.sext(b.call(nt_fn, []), I64)
    n0 = dims[0]
    chunk = b.sdiv(b.add(n0, b.sub(nt, i64(1))), nt)
    lo = b.mul(tid, chunk)
    hi_raw = b.add(lo, chunk)
    hi = b.select(b.icmp_signed("<", hi_raw, n0), hi_raw, n0)
    with b.if_then(b.icmp_signed("<", lo, hi)):
        b.call(kernel, ptrs + [lo, hi] + dims)
    b.ret_void()
    ctx.kernel_cache[key] = fn
    return fn
