"""Matrix products through BLAS (cblas_?gemm from the OpenBLAS that ships with the
scipy-openblas32 wheel), called from generated code; integer products as loops.

Transposes are GEMM flags, never copies. Batched products loop over the broadcast
batch dims and call GEMM once per matrix (a stride of 0 repeats a broadcast operand).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from symgraph import dims as D
from symgraph.ops.linalg import MatMul
from .codegen import lowers
from .irutil import F32, F64, I32, I64, PTR, VOID, for_range, i64, load, store, typed_ptr
from .lowerings import new_kernel

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
GEMM = {np.dtype("float32"): ("scipy_cblas_sgemm", F32), np.dtype("float64"): ("scipy_cblas_dgemm", F64)}


def _gemm_decl(ctx, dtype):
    name, ft = GEMM[np.dtype(dtype)]
    fn = ctx.module.globals.get(name)
    if fn is None:
        fnty = ir.FunctionType(VOID, [I32, I32, I32, I32, I32, I32, ft, PTR, I32, PTR, I32, ft,
                                      PTR, I32])
        fn = ir.Function(ctx.module, fnty, name=name)
    ctx.blas_symbols.add(name)
    return fn, ft


def _matrix_dims(shape, transposed):
    r, c = shape[-2], shape[-1]
    return (c, r) if transposed else (r, c)


def _batch_strides(shape, batch, mat_elems):
    """Element stride of each batch axis of an operand (0 where it broadcasts)."""
    nb = len(batch)
    lead = nb - (len(shape) - 2)
    strides, acc = [], mat_elems
    for i in reversed(range(nb)):
        k = i - lead
        if k < 0 or (type(shape[k]) is int and shape[k] == 1 and not (
                type(batch[i]) is int and batch[i] == 1)):
            strides.append(0)
        else:
            strides.append(acc)
            acc = D.mul(acc, shape[k])
    return list(reversed(strides))


@lowers(MatMul)
def lower_matmul(ctx, nid):
    op = ctx.graph.op(nid)
    a, b_ = ctx.inputs(nid)
    ta, tb = ctx.type(a), ctx.type(b_)
    out_t = ctx.type(nid)
    dt = out_t.dtype
    m, k = _matrix_dims(ta.shape, op.transpose_a)
    _, n = _matrix_dims(tb.shape, op.transpose_b)
    batch = out_t.shape[:-2]
    sa = _batch_strides(ta.shape, batch, D.mul(ta.shape[-2], ta.shape[-1]))
    sb = _batch_strides(tb.shape, batch, D.mul(tb.shape[-2], tb.shape[-1]))
    pa, pb, pc = ctx.buffer(a), ctx.buffer(b_), ctx.buffer(nid)
    bld = ctx.builder
    itemsize = np.dtype(dt).itemsize
    if ta.dtype != dt or tb.dtype != dt:
        raise AssertionError("matmul operands must be legalized to the result dtype")

    def at(p, off):
        if isinstance(off, ir.Constant) and off.constant == 0:
            return p
        return bld.gep(p, [bld.mul(off, i64(itemsize))])

    def one(off_a, off_b, off_c):
        A, B, C = at(pa, off_a), at(pb, off_b), at(pc, off_c)
        if np.dtype(dt) in GEMM:
            bld.call(_gemm_helper(ctx, dt), [
                ir.Constant(I32, TRANS if op.transpose_a else NO_TRANS),
                ir.Constant(I32, TRANS if op.transpose_b else NO_TRANS),
                A, B, C, ctx.dim(m), ctx.dim(n), ctx.dim(k)])
        else:
            _int_matmul(ctx, dt, op, A, B, C, m, n, k)

    mn = ctx.dim(D.mul(m, n))

    if batch:
        def nest_c(level, oa, ob, oc):
            if level == len(batch):
                one(oa, ob, bld.mul(oc, mn))
                return
            with for_range(bld, ctx.dim(batch[level]), name=f"mb{level}") as i:
                nest_c(level + 1, bld.add(oa, bld.mul(i, ctx.dim(sa[level]))),
                       bld.add(ob, bld.mul(i, ctx.dim(sb[level]))),
                       bld.add(bld.mul(oc, ctx.dim(batch[level])), i))
        nest_c(0, i64(0), i64(0), i64(0))
    else:
        one(i64(0), i64(0), i64(0))


def _max1(b, v):
    return b.select(b.icmp_signed(">", v, i64(1)), v, i64(1))


def _gemm_helper(ctx, dt) -> ir.Function:
    """``void sg.gemm.<dtype>(i32 trans_a, i32 trans_b, ptr A, ptr B, ptr C, i64 m, n, k)``:
    C = op(A) @ op(B), one per module and dtype. Each product in the entry is then one
    call instead of its own checks and branches: a graph with a thousand products made
    the entry a function of forty thousand lines, the costliest one LLVM compiled."""
    name = f"sg.gemm.{np.dtype(dt).name}"
    fn = ctx.module.globals.get(name)
    if fn is not None:
        return fn
    fn = ir.Function(ctx.module, ir.FunctionType(VOID, [I32, I32, PTR, PTR, PTR, I64, I64, I64]),
                     name=name)
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    for arg, label in zip(fn.args, ("trans_a", "trans_b", "a", "b", "c", "m", "n", "k")):
        arg.name = label
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    _call_gemm(ctx, b, dt, *fn.args)
    b.ret_void()
    return fn


def _call_gemm(ctx, b, dt, trans_a, trans_b, A, B, C, m, n, k):
    """C = op(A) @ op(B); empty products skip BLAS (K = 0 writes zeros)."""
    fn, ft = _gemm_decl(ctx, dt)
    is_ta = b.icmp_signed("==", trans_a, ir.Constant(I32, TRANS))
    is_tb = b.icmp_signed("==", trans_b, ir.Constant(I32, TRANS))
    lda = _max1(b, b.select(is_ta, m, k))
    ldb = _max1(b, b.select(is_tb, k, n))
    ldc = _max1(b, n)
    nonempty = b.and_(b.icmp_signed(">", m, i64(0)), b.icmp_signed(">", n, i64(0)))
    with b.if_then(nonempty):
        with b.if_else(b.icmp_signed(">", k, i64(0))) as (then, otherwise):
            with then:
                t32 = lambda v: b.trunc(v, I32)  # noqa: E731
                b.call(fn, [ir.Constant(I32, ROW_MAJOR), trans_a, trans_b,
                            t32(m), t32(n), t32(k), ir.Constant(ft, 1.0), A, t32(lda),
                            B, t32(ldb), ir.Constant(ft, 0.0), C, t32(ldc)])
            with otherwise:
                size = b.mul(b.mul(m, n), i64(np.dtype(dt).itemsize))
                memset = ctx.module.declare_intrinsic("llvm.memset", [PTR, I64])
                b.call(memset, [C, ir.Constant(ir.IntType(8), 0), size, ir.Constant(ir.IntType(1), 0)])


def _int_matmul(ctx, dt, op, A, B, C, m, n, k):
    fn, kb = new_kernel(ctx, "k.int_matmul", 3, 3, ["c", "a", "b"])
    c_, a_, b_ = (typed_ptr(kb, fn.args[j], dt) for j in range(3))
    M, N, K = fn.args[3:]
    with for_range(kb, M, name="i") as i:
        with for_range(kb, N, name="j") as j:
            acc_ptr = kb.gep(c_, [kb.add(kb.mul(i, N), j)])
            kb.store(ir.Constant(acc_ptr.type.pointee, 0), acc_ptr)
            with for_range(kb, K, name="p") as p:
                ia = kb.add(kb.mul(p, M), i) if op.transpose_a else kb.add(kb.mul(i, K), p)
                ib = kb.add(kb.mul(j, K), p) if op.transpose_b else kb.add(kb.mul(p, N), j)
                prod = kb.mul(load(kb, a_, ia, dt), load(kb, b_, ib, dt))
                kb.store(kb.add(kb.load(acc_ptr), prod), acc_ptr)
    kb.ret_void()
    ctx.builder.call(fn, [C, A, B, ctx.dim(m), ctx.dim(n), ctx.dim(k)])
