"""Multi-core loops: a kernel's outermost loop split across threads by libgomp.

Generated code calls ``GOMP_parallel(worker, data, n, 0)`` and each of the n threads
runs the kernel on its share [lo, hi) of the outermost axis. Elementwise outputs are
written by rows, so threads never write the same element. An output reduced along
the outermost axis (a sum over everything, a bias gradient) gets one partial result
per thread, on the caller's stack, combined in thread order after the join: the
result is deterministic for a given thread count.

How many threads: the module's exported ``sg_threads`` word, which the runtime sets
after loading (runtime/threads.py: the usable cores, SYMGRAPH_NUM_THREADS, or
``symgraph.set_num_threads``) and sets to 1 in a child process forked after libgomp
started its pool (libgomp is not fork-safe: the child would wait forever for threads
that did not survive the fork). A kernel runs on the calling thread when that word is
1 or when its work (elements times a per-element cost) is too small to pay for the
fork and join. BLAS keeps its own threads; the two never run at the same time.

Compiled in unless ``SYMGRAPH_PARALLEL=0`` or libgomp (GCC's OpenMP runtime, Debian
package libgomp1) is not installed; then code stays serial.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from symgraph import dims as D
from .irutil import I32, I64, PTR, VOID, i64, fold_range, for_range, load, store, typed_ptr
from .kernels import body_builder

# Work units (one cheap operation on one element: about 0.1 ns vectorized) below which
# a kernel runs on the calling thread. A fork and join with sleeping threads costs about
# 15 us; measured break-even was near 25 us of serial work, so the bar is about 50 us.
PARALLEL_MIN_WORK = 1 << 19
# Per-element cost of an op calling vector math (exp, tanh...) in work units.
MATH_COST = 16
# Stack bytes for the per-thread partial results of one kernel call.
PARTIAL_BYTES = 1 << 16
MAX_THREADS = 64
THREADS_SYMBOL = "sg_threads"


# the prefix of the dispatchers' names (``par.run.N``, ``par.worker.N``): glue, which
# a big module compiles apart (partition.separate_glue)
DISPATCH = "par"


def available() -> bool:
    """Split loops unless SYMGRAPH_PARALLEL=0, and only when libgomp is installed."""
    from symgraph.runtime.threads import parallel_code_wanted
    return parallel_code_wanted()


def _decl(ctx, name, fnty):
    fn = ctx.module.globals.get(name)
    if fn is None:
        fn = ir.Function(ctx.module, fnty, name=name)
    ctx.blas_symbols.add(name)  # resolved by the runtime like BLAS symbols
    return fn


def _threads_word(ctx):
    gv = ctx.module.globals.get(THREADS_SYMBOL)
    if gv is None:
        gv = ir.GlobalVariable(ctx.module, I32, name=THREADS_SYMBOL)
        gv.initializer = ir.Constant(I32, 1)   # serial until the runtime says otherwise
        gv.align = 4
        ctx.threads_symbol = THREADS_SYMBOL
    return gv


def call_kernel(ctx, fn, ptrs, extents, *, splittable: bool, reduced=None, cost: int = 1):
    """Call ``fn(ptrs.., lo, hi, extents..)`` over the whole outermost axis, on several
    threads when ``splittable`` and the work is large. ``reduced`` maps the index (in
    ``ptrs``) of each output reduced along the outermost axis to (kind, dtype, element
    count as a Dim); those get per-thread partials, and only as many threads as their
    partials fit in PARTIAL_BYTES. ``cost``: work units per element.

    The choice and the fork/join live in a dispatcher function, one per kernel
    signature (the kernel comes as a pointer), so the entry holds one call per kernel
    and a module few extra functions: inlined dispatchers made the entry of an MLP step
    three times longer, and one dispatcher per kernel doubled LLVM's time on large
    graphs."""
    b = ctx.builder
    reduced = reduced or {}
    dims = [ctx.dim(e) for e in extents]
    if not extents:
        b.call(fn, list(ptrs) + [i64(0), i64(1)])
        return
    static_total = D.product(extents)
    min_total = -(-PARALLEL_MIN_WORK // max(cost, 1))
    if not splittable or not available() or (
            type(static_total) is int and static_total < min_total) or (
            type(extents[0]) is int and extents[0] < 2):
        b.call(fn, list(ptrs) + [i64(0), dims[0]] + dims)
        return
    counts = [ctx.dim(n) for _, _, n in reduced.values()]
    dispatch = _dispatcher(ctx, fn.function_type, len(ptrs), len(dims), reduced)
    b.call(dispatch, [b.bitcast(fn, PTR), i64(min_total)] + list(ptrs)
           + [ctx.dim(static_total)] + counts + dims)


def _dispatcher(ctx, kernel_type, n_ptrs, n_dims, reduced):
    """``void par.run(ptr kernel, i64 min_total, ptrs.., i64 total, i64 counts..,
    i64 extents..)``: the kernel on one thread, or split when the work reaches
    ``min_total`` elements and threads are allowed."""
    key = ("dispatch", n_ptrs, n_dims,
           tuple((k, np.dtype(dt).str, kind) for k, (kind, dt, _) in reduced.items()))
    cached = ctx.kernel_cache.get(key)
    if cached is not None:
        return cached
    n_counts = len(reduced)
    fnty = ir.FunctionType(VOID, [PTR, I64] + [PTR] * n_ptrs + [I64] * (1 + n_counts + n_dims))
    fn = ir.Function(ctx.module, fnty, name=ctx.name(f"{DISPATCH}.run"))
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    _glue(fn)
    b, params = body_builder(fn)
    kernel = b.bitcast(params[0], kernel_type.as_pointer())
    min_total = params[1]
    args = list(params[2:])
    ptrs = args[:n_ptrs]
    total = args[n_ptrs]
    counts = dict(zip(reduced, args[n_ptrs + 1:n_ptrs + 1 + n_counts]))
    dims = args[n_ptrs + 1 + n_counts:]
    threads = b.zext(b.load(_threads_word(ctx), name="threads"), I64)
    if reduced:   # as many threads as partials fit in PARTIAL_BYTES (at least one)
        per_thread = i64(0)
        for k, (_, dt, _) in reduced.items():
            per_thread = b.add(per_thread, b.mul(counts[k], i64(np.dtype(dt).itemsize)))
        fit = b.udiv(i64(PARTIAL_BYTES), b.select(b.icmp_signed(">", per_thread, i64(0)),
                                                  per_thread, i64(1)))
        threads = b.select(b.icmp_unsigned("<", fit, threads), fit, threads)
    threads = b.select(b.icmp_unsigned(">", threads, i64(MAX_THREADS)), i64(MAX_THREADS),
                       threads)
    big = b.and_(b.icmp_signed(">=", total, min_total),
                 b.and_(b.icmp_signed(">", dims[0], i64(1)),
                        b.icmp_unsigned(">", threads, i64(1))))
    with b.if_else(big) as (then, otherwise):
        with then:
            _parallel_call(ctx, b, params[0], kernel_type, ptrs, dims, reduced, counts,
                           threads)
        with otherwise:
            b.call(kernel, ptrs + [i64(0), dims[0]] + dims)
    b.ret_void()
    ctx.kernel_cache[key] = fn
    return fn


def _glue(fn) -> None:
    """Dispatchers and workers are compiled without optimization: a few dozen
    instructions around a call, run once per kernel call or thread, where LLVM's
    pipeline cost about 4 ms each (a fifth of an MLP step's LLVM time) to save
    nanoseconds per call (no change measured in the MLP, CNN, GCN and elementwise
    steps)."""
    fn.attributes.add("optnone")


def _parallel_call(ctx, b, kernel_ptr, kernel_type, ptrs, dims, reduced, counts, threads):
    # per-thread partials of each reduced output, one copy per thread asked for (a
    # dynamic alloca: the dispatcher's frame goes when it returns)
    partials = {}
    for k, (kind, dt, _) in reduced.items():
        size = b.mul(threads, b.mul(counts[k], i64(np.dtype(dt).itemsize)))
        partials[k] = b.alloca(ir.IntType(8), size=size, name=f"par.partial{k}")
        partials[k].align = 64
    slots = [kernel_ptr] + [b.bitcast(partials.get(k, p), PTR) for k, p in enumerate(ptrs)]
    slots += [b.inttoptr(d, PTR) for d in dims]
    slots += [b.inttoptr(counts[k], PTR) for k in reduced]
    data = b.alloca(ir.ArrayType(PTR, len(slots) + 1), name="par.data")
    for k, v in enumerate(slots):
        b.store(v, b.gep(data, [i64(0), i64(k)], inbounds=True))
    team_slot = b.gep(data, [i64(0), i64(len(slots))], inbounds=True)
    worker = _worker(ctx, kernel_type, len(ptrs), len(dims), reduced)
    gomp = _decl(ctx, "GOMP_parallel", ir.FunctionType(VOID, [PTR, PTR, I32, I32]))
    b.call(gomp, [b.bitcast(worker, PTR), b.bitcast(data, PTR), b.trunc(threads, I32),
                  ir.Constant(I32, 0)])
    if reduced:
        team = b.ptrtoint(b.load(team_slot), I64)     # the threads that actually ran
        for k, (kind, dt, _) in reduced.items():
            _combine_partials(b, kind, dt, counts[k], partials[k], ptrs[k], team)


def _scalar_loop(module):
    from .window_loops import _LoopID
    return _LoopID(module, [
        module.add_metadata([ir.MetaDataString(module, "llvm.loop.vectorize.enable"),
                             ir.Constant(ir.IntType(1), 0)]),
        module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")])])


def _combine_partials(b, kind, dt, n, partial, out, team):
    """out[j] = partial[0][j] (+) partial[1][j] (+) ... in thread order. A short loop,
    kept scalar (vectorizing it cost compile time for nothing)."""
    from .kernels import _combine
    part = typed_ptr(b, partial, dt)
    dst = typed_ptr(b, out, dt)
    with for_range(b, n, name="par.j", loop_metadata=_scalar_loop(b.module)) as j:
        acc = fold_range(b, i64(1), team, load(b, part, j, dt),
                         lambda acc, t: _combine(b, kind, acc,
                                                 load(b, part, b.add(b.mul(t, n), j), dt), dt),
                         name="par.t", loop_metadata=_scalar_loop(b.module))
        store(b, acc, dst, j, dt)


def _worker(ctx, kernel_type, n_ptrs, n_extents, reduced):
    """``void worker(ptr data)``: this thread's chunk of the outermost axis. With
    reduced outputs every thread runs the kernel (an empty chunk still fills its
    partial with the identity) and thread 0 records how many threads ran."""
    key = ("worker", n_ptrs, n_extents,
           tuple((k, np.dtype(dt).str) for k, (_, dt, _) in reduced.items()))
    cached = ctx.kernel_cache.get(key)
    if cached is not None:
        return cached
    fn = ir.Function(ctx.module, ir.FunctionType(VOID, [PTR]), name=ctx.name(f"{DISPATCH}.worker"))
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    _glue(fn)
    b, params = body_builder(fn)
    slots = b.bitcast(params[0], PTR.as_pointer())
    n_slots = 1 + n_ptrs + n_extents + len(reduced)
    vals = [b.load(b.gep(slots, [i64(k)], inbounds=True)) for k in range(n_slots)]
    kernel = b.bitcast(vals[0], kernel_type.as_pointer())
    vals = vals[1:]
    ptrs = vals[:n_ptrs]
    dims = [b.ptrtoint(v, I64) for v in vals[n_ptrs:n_ptrs + n_extents]]
    counts = [b.ptrtoint(v, I64) for v in vals[n_ptrs + n_extents:]]
    tid_fn = _decl(ctx, "omp_get_thread_num", ir.FunctionType(I32, []))
    nt_fn = _decl(ctx, "omp_get_num_threads", ir.FunctionType(I32, []))
    tid = b.sext(b.call(tid_fn, []), I64)
    nt = b.sext(b.call(nt_fn, []), I64)
    n0 = dims[0]
    chunk = b.sdiv(b.add(n0, b.sub(nt, i64(1))), nt)
    if n_extents == 1:   # whole vectors per thread: no scalar remainder in the middle
        chunk = b.and_(b.add(chunk, i64(15)), i64(-16))
    lo_raw = b.mul(tid, chunk)
    lo = b.select(b.icmp_signed("<", lo_raw, n0), lo_raw, n0)
    hi_raw = b.add(lo, chunk)
    hi = b.select(b.icmp_signed("<", hi_raw, n0), hi_raw, n0)
    if reduced:
        for (k, (kind, dt, _)), n in zip(reduced.items(), counts):
            ptrs[k] = b.gep(ptrs[k], [b.mul(tid, b.mul(n, i64(np.dtype(dt).itemsize)))],
                            inbounds=True)
        with b.if_then(b.icmp_signed("==", tid, i64(0))):
            b.store(b.inttoptr(nt, PTR), b.gep(slots, [i64(n_slots)], inbounds=True))
        b.call(kernel, ptrs + [lo, hi] + dims)
    else:
        with b.if_then(b.icmp_signed("<", lo, hi)):
            b.call(kernel, ptrs + [lo, hi] + dims)
    b.ret_void()
    ctx.kernel_cache[key] = fn
    return fn
