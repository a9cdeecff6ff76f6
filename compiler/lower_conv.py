"""Convolution (NCHW input, OIHW weight) lowered to GEMM over chunks of images.

    Conv2d            cols[n] = im2col(x[n]);   y[n]  = w (O, C*KH*KW) @ cols[n]
    Conv2dGradInput   cols[n] = w^T @ g[n];     gx[n] = col2im(cols[n])
    Conv2dGradWeight  gw = sum over n of g[n] @ im2col(x[n])^T

The images of a chunk go to BLAS in one ``cblas_?gemm_batch_strided`` call, which runs
whole GEMMs on OpenBLAS's threads (one fork/join per pair of images rather than a
split of every small GEMM); a chunk of one image uses plain ``?gemm``, which threads
inside the product. The gradient of the weight sums per-image products from a
workspace, so threads never write the same matrix.

The columns of a chunk live in a workspace of the memory plan (``temp_bytes``), at
most CHUNK_BYTES unless one image needs more; a 1x1 kernel with stride 1 and no
padding needs none (the image is its own column matrix). Geometry is static and baked
into the loops; every size is a runtime i64, so symbolic batch, channel and spatial
dims never recompile.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from llvmlite import ir

from symgraph import dims as D
from symgraph.ops.conv import Conv2d, Conv2dGradInput, Conv2dGradWeight
from .codegen import lowers, temp_bytes
from .irutil import F32, F64, I32, PTR, VOID, i64, load, store, typed_ptr
from .lower_linalg import NO_TRANS, ROW_MAJOR, TRANS, _gemm_decl
from .lower_scalar import constant
from .lowerings import new_kernel
from .window_loops import (check_output_fits, emit_col2im, fill, geometry, name_args,
                           rolled_range, row_lanes, smin, vector_range, window_taps)

CHUNK_BYTES = 4 << 20   # workspace per batched GEMM call (columns, partial sums)
GEMM_BATCH = {np.dtype("float32"): ("scipy_cblas_sgemm_batch_strided", F32),
              np.dtype("float64"): ("scipy_cblas_dgemm_batch_strided", F64)}


# -- im2col, col2im ------------------------------------------------------------------------
def _im2col_kernel(ctx, dt, geo, out_w):
    """``void(ptr cols, ptr x, i64 C, H, W, KH, KW, OH, OW)``: one image's column matrix,
    row (c, ki, kj), column (oh, ow); taps that fall in the padding are zeros. ``out_w``:
    the output's width, if static (window_loops.row_lanes)."""
    (sh, sw) = geo[0]
    fn, b = new_kernel(ctx, "k.im2col", 2, 7, ["cols", "x"])
    cols, x = typed_ptr(b, fn.args[0], dt), typed_ptr(b, fn.args[1], dt)
    C, H, W, KH, KW, OH, OW = name_args(fn, ["C", "H", "W", "KH", "KW", "OH", "OW"])
    zero = constant(dt, 0.0)
    plane, ohw = b.mul(H, W), b.mul(OH, OW)
    with window_taps(b, C, geo, (H, W), (OH, OW), (KH, KW)) as (c, ki, kj, row_off, col_off,
                                                                (rlo, rhi), (lo, hi)):
        base = b.mul(b.add(b.mul(b.add(b.mul(c, KH), ki), KW), kj), ohw)
        # one branch-free pass over every row (masked loads once vectorized): the
        # rows are short, and split copies would become many tiny memcpy calls
        with rolled_range(b, OH, name="oh") as oh:
            row_in = b.and_(b.icmp_signed(">=", oh, rlo), b.icmp_signed("<", oh, rhi))
            ih = b.add(b.mul(oh, i64(sh)), row_off)
            src = b.add(b.add(b.mul(c, plane), b.mul(ih, W)), col_off)
            dst = b.add(base, b.mul(oh, OW))
            with vector_range(b, OW, name="ow", width=row_lanes(out_w)) as ow:
                inside = b.and_(row_in, b.and_(b.icmp_signed(">=", ow, lo),
                                               b.icmp_signed("<", ow, hi)))
                before = b.block
                with b.if_then(inside):
                    v = load(b, x, b.add(src, b.mul(ow, i64(sw))), dt)
                    loaded = b.block
                val = b.phi(v.type)
                val.add_incoming(v, loaded)
                val.add_incoming(zero, before)
                store(b, val, cols, b.add(dst, ow), dt)
    b.ret_void()
    return fn


def _col2im_kernel(ctx, dt, geo, out_w):
    """``void(ptr out, ptr cols, i64 C, H, W, KH, KW, OH, OW)``: out = col2im(cols);
    ``out_w``: the width of the columns' images, if static (window_loops.row_lanes)."""
    fn, b = new_kernel(ctx, "k.col2im", 2, 7, ["out", "cols"])
    out, cols = typed_ptr(b, fn.args[0], dt), typed_ptr(b, fn.args[1], dt)
    C, H, W, KH, KW, OH, OW = name_args(fn, ["C", "H", "W", "KH", "KW", "OH", "OW"])
    fill(b, out, i64(0), b.mul(C, b.mul(H, W)), constant(dt, 0.0), dt)
    ohw = b.mul(OH, OW)
    emit_col2im(b, dt, geo, out, cols, C, (H, W), (KH, KW), (OH, OW),
                lambda c, ki, kj: b.mul(b.add(b.mul(b.add(b.mul(c, KH), ki), KW), kj), ohw),
                lanes=row_lanes(out_w))
    b.ret_void()
    return fn


# -- GEMM ----------------------------------------------------------------------------------
def _gemm_batch(ctx, b, dt, trans, mnk, A, B, C, strides, count):
    """C[i] = op(A[i]) @ op(B[i]) for i < count, row-major, each C[i] contiguous m x n.

    ``strides`` are the element strides (sa, sb, sc) between the matrices (sa = 0 repeats
    A). Empty products skip BLAS; with k = 0 the C[i] are zero-filled.
    """
    m, n, k = mnk
    sa, sb, sc = strides
    zero = i64(0)
    nonempty = b.and_(b.and_(b.icmp_signed(">", m, zero), b.icmp_signed(">", n, zero)),
                      b.icmp_signed(">", count, zero))
    with b.if_then(nonempty):
        with b.if_else(b.icmp_signed(">", k, zero)) as (then, otherwise):
            with then:
                _call_blas(ctx, b, dt, trans, mnk, (A, sa), (B, sb), (C, sc), count)
            with otherwise:
                fill(b, C, zero, b.mul(count, b.mul(m, n)), constant(dt, 0.0), dt)


def _call_blas(ctx, b, dt, trans, mnk, A, B, C, count):
    """One batched call when there are several products, else plain GEMM (which then
    spreads the single product over OpenBLAS's threads)."""
    (m, n, k), (ta, tb) = mnk, trans
    lda, ldb = (m if ta else k), (k if tb else n)
    t32 = lambda v: b.trunc(v, I32)  # noqa: E731
    flags = [ir.Constant(I32, ROW_MAJOR), ir.Constant(I32, TRANS if ta else NO_TRANS),
             ir.Constant(I32, TRANS if tb else NO_TRANS), t32(m), t32(n), t32(k)]
    one, nil = constant(dt, 1.0), constant(dt, 0.0)
    raw = lambda p: b.bitcast(p, PTR)  # noqa: E731
    with b.if_else(b.icmp_signed(">", count, i64(1))) as (many, single):
        with many:
            fn = _gemm_batch_decl(ctx, dt)
            b.call(fn, flags + [one, raw(A[0]), t32(lda), t32(A[1]), raw(B[0]), t32(ldb),
                                t32(B[1]), nil, raw(C[0]), t32(n), t32(C[1]), t32(count)])
        with single:
            fn, _ = _gemm_decl(ctx, dt)
            b.call(fn, flags + [one, raw(A[0]), t32(lda), raw(B[0]), t32(ldb), nil,
                                raw(C[0]), t32(n)])


def _gemm_batch_decl(ctx, dt):
    name, ft = GEMM_BATCH[np.dtype(dt)]
    fn = ctx.module.globals.get(name)
    if fn is None:
        fnty = ir.FunctionType(VOID, [I32] * 6 + [ft, PTR, I32, I32, PTR, I32, I32, ft, PTR,
                                                  I32, I32, I32])
        fn = ir.Function(ctx.module, fnty, name=name)
    ctx.blas_symbols.add(name)
    return fn


# -- shared structure of the three lowerings -----------------------------------------------
def _pointwise(op, kh, kw) -> bool:
    """A 1x1 kernel, stride 1, no padding: the image is its own column matrix."""
    return (type(kh) is int and kh == 1 and type(kw) is int and kw == 1
            and tuple(op.stride) == (1, 1) and tuple(op.padding) == (0, 0))


class _Shapes:
    """The sizes of one conv node (dims), its per-image workspace and chunk length."""

    def __init__(self, op, dtype, n, c, hw, o, khw, ohw, partials=False):
        self.dims = [n, c, *hw, o, *khw, *ohw]
        item = np.dtype(dtype).itemsize
        ckk = D.product([c, *khw])
        cols = 0 if _pointwise(op, *khw) else D.mul(ckk, D.product(ohw))
        per_image = D.mul(D.add(cols, D.mul(o, ckk) if partials else 0), item)
        fit = D.floordiv(CHUNK_BYTES, D.dmax(per_image, 1))
        self.chunk = D.dmax(1, D.dmin(n, fit))   # at least 1, so chunk loops advance
        self.temp = D.mul(self.chunk, per_image)
        self.cols_elems = cols


_DIMS = ["N", "C", "H", "W", "O", "KH", "KW", "OH", "OW", "B"]


def _driver(ctx, nid, prefix, ptr_names):
    """The kernel of one node: typed pointers (the last is the workspace) and named sizes,
    plus the products it keeps reusing."""
    dt = ctx.type(nid).dtype
    fn, b = new_kernel(ctx, prefix, len(ptr_names), len(_DIMS), ptr_names)
    ptrs = [typed_ptr(b, a, dt) for a in fn.args[:len(ptr_names)]]
    d = dict(zip(_DIMS, name_args(fn, _DIMS)))
    d["CKK"] = b.mul(d["C"], b.mul(d["KH"], d["KW"]))
    d["OHW"] = b.mul(d["OH"], d["OW"])
    d["CHW"] = b.mul(d["C"], b.mul(d["H"], d["W"]))
    d["OOHW"] = b.mul(d["O"], d["OHW"])
    d["COLS"] = b.mul(d["CKK"], d["OHW"])
    return fn, b, ptrs, d


def _finish(ctx, nid, fn, b, ins, shapes):
    b.ret_void()
    ws = ctx.temp(nid) if nid in ctx.plan.temps else ir.Constant(PTR, None)
    args = [ctx.buffer(nid)] + [ctx.buffer(i) for i in ins] + [ws]
    ctx.builder.call(fn, args + [ctx.dim(v) for v in shapes.dims + [shapes.chunk]])


@contextmanager
def _chunks(b, d):
    """A loop over chunks of images: yields (first image, number of images)."""
    with rolled_range(b, b.sdiv(b.add(d["N"], b.sub(d["B"], i64(1))), d["B"]),
                      name="chunk") as j:
        n0 = b.mul(j, d["B"])
        yield n0, smin(b, d["B"], b.sub(d["N"], n0))


def _at(b, base, index):
    return b.gep(base, [index], inbounds=True)


def _image_args(d):
    return [d[k] for k in ("C", "H", "W", "KH", "KW", "OH", "OW")]


# -- the three ops -------------------------------------------------------------------------
def _conv2d_shapes(op, x, w, out):
    return _Shapes(op, out.dtype, x.shape[0], x.shape[1], x.shape[2:], w.shape[0],
                   w.shape[2:], out.shape[2:])


@temp_bytes(Conv2d)
def conv2d_temp(op, in_types, out_type):
    return _conv2d_shapes(op, *in_types, out_type).temp


@lowers(Conv2d)
def lower_conv2d(ctx, nid):
    """y[n] = w @ im2col(x[n]), a chunk of images per batched GEMM."""
    op = ctx.graph.op(nid)
    x, w = ctx.inputs(nid)
    shapes = _conv2d_shapes(op, ctx.type(x), ctx.type(w), ctx.type(nid))
    check_output_fits(ctx, nid, *ctx.type(nid).shape[2:])
    dt = ctx.type(nid).dtype
    fn, b, (y, xs, ws, cols), d = _driver(ctx, nid, "k.conv2d", ["y", "x", "w", "cols"])
    mnk = (d["O"], d["OHW"], d["CKK"])
    if shapes.cols_elems == 0:
        _gemm_batch(ctx, b, dt, (False, False), mnk, ws, xs, y,
                    (i64(0), d["CHW"], d["OOHW"]), d["N"])
    else:
        im2col = _im2col_kernel(ctx, dt, geometry(op), ctx.type(nid).shape[3])
        with _chunks(b, d) as (n0, nb):
            with rolled_range(b, nb, name="img") as i:
                b.call(im2col, [b.bitcast(_at(b, cols, b.mul(i, d["COLS"])), PTR),
                                b.bitcast(_at(b, xs, b.mul(b.add(n0, i), d["CHW"])), PTR)]
                       + _image_args(d))
            _gemm_batch(ctx, b, dt, (False, False), mnk, ws, cols,
                        _at(b, y, b.mul(n0, d["OOHW"])), (i64(0), d["COLS"], d["OOHW"]), nb)
    _finish(ctx, nid, fn, b, [x, w], shapes)


def _grad_input_shapes(op, g, w, out):
    return _Shapes(op, out.dtype, out.shape[0], out.shape[1], out.shape[2:], w.shape[0],
                   w.shape[2:], g.shape[2:])


@temp_bytes(Conv2dGradInput)
def conv2d_grad_input_temp(op, in_types, out_type):
    return _grad_input_shapes(op, *in_types, out_type).temp


@lowers(Conv2dGradInput)
def lower_conv2d_grad_input(ctx, nid):
    """gx[n] = col2im(w^T @ g[n]), a chunk of images per batched GEMM."""
    op = ctx.graph.op(nid)
    g, w = ctx.inputs(nid)
    shapes = _grad_input_shapes(op, ctx.type(g), ctx.type(w), ctx.type(nid))
    dt = ctx.type(nid).dtype
    fn, b, (gx, gs, ws, cols), d = _driver(ctx, nid, "k.conv2d_grad_input",
                                           ["gx", "g", "w", "cols"])
    mnk = (d["CKK"], d["OHW"], d["O"])
    if shapes.cols_elems == 0:
        _gemm_batch(ctx, b, dt, (True, False), mnk, ws, gs, gx,
                    (i64(0), d["OOHW"], d["CHW"]), d["N"])
    else:
        col2im = _col2im_kernel(ctx, dt, geometry(op), ctx.type(g).shape[3])
        with _chunks(b, d) as (n0, nb):
            _gemm_batch(ctx, b, dt, (True, False), mnk, ws, _at(b, gs, b.mul(n0, d["OOHW"])),
                        cols, (i64(0), d["OOHW"], d["COLS"]), nb)
            with rolled_range(b, nb, name="img") as i:
                b.call(col2im, [b.bitcast(_at(b, gx, b.mul(b.add(n0, i), d["CHW"])), PTR),
                                b.bitcast(_at(b, cols, b.mul(i, d["COLS"])), PTR)]
                       + _image_args(d))
    _finish(ctx, nid, fn, b, [g, w], shapes)


def _grad_weight_shapes(op, x, g, out):
    return _Shapes(op, out.dtype, x.shape[0], x.shape[1], x.shape[2:], out.shape[0],
                   out.shape[2:], g.shape[2:], partials=True)


@temp_bytes(Conv2dGradWeight)
def conv2d_grad_weight_temp(op, in_types, out_type):
    return _grad_weight_shapes(op, *in_types, out_type).temp


@lowers(Conv2dGradWeight)
def lower_conv2d_grad_weight(ctx, nid):
    """gw = sum over n of g[n] @ im2col(x[n])^T: per-image products of a chunk land in
    the workspace (batched GEMM), then add up in image order."""
    op = ctx.graph.op(nid)
    x, g = ctx.inputs(nid)
    shapes = _grad_weight_shapes(op, ctx.type(x), ctx.type(g), ctx.type(nid))
    dt = ctx.type(nid).dtype
    fn, b, (gw, xs, gs, work), d = _driver(ctx, nid, "k.conv2d_grad_weight",
                                           ["gw", "x", "g", "work"])
    direct = shapes.cols_elems == 0
    size = b.mul(d["O"], d["CKK"])
    fill(b, gw, i64(0), size, constant(dt, 0.0), dt)
    im2col = None if direct else _im2col_kernel(ctx, dt, geometry(op), ctx.type(g).shape[3])
    with _chunks(b, d) as (n0, nb):
        parts = work if direct else _at(b, work, b.mul(d["B"], d["COLS"]))
        if direct:
            cols, cstride = _at(b, xs, b.mul(n0, d["CHW"])), d["CHW"]
        else:
            cols, cstride = work, d["COLS"]
            with rolled_range(b, nb, name="img") as i:
                b.call(im2col, [b.bitcast(_at(b, cols, b.mul(i, d["COLS"])), PTR),
                                b.bitcast(_at(b, xs, b.mul(b.add(n0, i), d["CHW"])), PTR)]
                       + _image_args(d))
        _gemm_batch(ctx, b, dt, (False, True), (d["O"], d["CKK"], d["OHW"]),
                    _at(b, gs, b.mul(n0, d["OOHW"])), cols, parts,
                    (d["OOHW"], cstride, size), nb)
        with rolled_range(b, nb, name="img") as i:
            part = b.mul(i, size)
            with vector_range(b, size, name="e") as e:
                acc = b.fadd(load(b, gw, e, dt), load(b, parts, b.add(part, e), dt))
                store(b, acc, gw, e, dt)
    _finish(ctx, nid, fn, b, [x, g], shapes)


from . import lower_pool  # noqa: E402,F401  (pooling shares the window loops)
