"""Convolution (NCHW input, OIHW weight) lowered to GEMM, one BLAS call per image.

    Conv2d            cols = im2col(x[n]);   y[n]  = w (O, C*KH*KW) @ cols (C*KH*KW, OH*OW)
    Conv2dGradInput   cols = w^T @ g[n];     gx[n] = col2im(cols)
    Conv2dGradWeight  gw = sum over n of g[n] @ im2col(x[n])^T   (GEMM with beta = 1)

The column matrix of one image lives in a workspace of the memory plan (``temp_bytes``);
a 1x1 kernel with stride 1 and no padding needs none, the image is its own column
matrix. Stride, padding and dilation are static and baked into the loops; every size is
a runtime i64, so symbolic batch, channel and spatial dims never recompile. The im2col
and col2im loops split each row into a zero part and a contiguous copy part (the valid
output range of a kernel tap is computed once per tap), so they vectorize.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from symgraph import dims as D
from symgraph.ops.conv import Conv2d, Conv2dGradInput, Conv2dGradWeight
from .codegen import lowers, temp_bytes
from .irutil import I32, PTR, for_range, i64, load, store, typed_ptr
from .lower_linalg import NO_TRANS, ROW_MAJOR, TRANS, _gemm_decl
from .lower_scalar import constant
from .lowerings import new_kernel


# -- shared loop helpers (also used by lower_pool) ------------------------------------------
def smin(b, x, y):
    return b.select(b.icmp_signed("<", x, y), x, y)


def smax(b, x, y):
    return b.select(b.icmp_signed(">", x, y), x, y)


def valid_range(b, n_out, n_in, offset, step: int):
    """[lo, hi): the outputs o < n_out whose input index o*step + offset is in [0, n_in)."""
    zero = i64(0)

    def ceil_pos(v):  # ceil(v / step) when v > 0, else 0
        q = b.sdiv(b.add(v, i64(step - 1)), i64(step))
        return b.select(b.icmp_signed(">", v, zero), q, zero)
    hi = smin(b, ceil_pos(b.sub(n_in, offset)), n_out)
    lo = smin(b, ceil_pos(b.sub(zero, offset)), hi)
    return lo, hi


def fill(b, ptr, start, count, value, dt):
    """ptr[start : start + count] = value (LLVM turns it into a memset)."""
    with for_range(b, count, name="fill") as i:
        store(b, value, ptr, b.add(start, i), dt)


def name_args(fn, names):
    for a, n in zip(fn.args[len(fn.args) - len(names):], names):
        a.name = n
    return list(fn.args[len(fn.args) - len(names):])


def check_output_fits(ctx, nid, oh, ow):
    """A symbolic input too small for the window would give no output pixels: fail clearly."""
    bad = None
    for d in (oh, ow):
        if type(d) is not int:
            t = ctx.builder.icmp_signed("<", ctx.dim(d), i64(1))
            bad = t if bad is None else ctx.builder.or_(bad, t)
    if bad is not None:
        ctx.fail_if(bad, f"{ctx.node_where(nid)}: the kernel span does not fit the padded "
                         "input, so the output would have no pixels")


def geometry(op):
    return tuple(op.stride), tuple(op.padding), tuple(op.dilation)


def emit_col2im(b, dt, geo, out, src, n_rows, hw, khw, ohw, src_row, divisor=None):
    """out[r, ih, iw] += src[src_row(r, ki, kj) + oh*OW + ow] (/ divisor) over every tap
    (ki, kj) and output pixel (oh, ow) whose input pixel (ih, iw) is inside the image.

    Taps outermost, as in the reference col2im, so each input pixel sums its terms in
    the same order. ``out`` must be zero on entry.
    """
    (sh, sw), (ph, pw), (dh, dw) = geo
    (H, W), (KH, KW), (OH, OW) = hw, khw, ohw
    plane = b.mul(H, W)
    with for_range(b, n_rows, name="c") as c:
        with for_range(b, KH, name="ki") as ki:
            row_off = b.sub(b.mul(ki, i64(dh)), i64(ph))
            rlo, rhi = valid_range(b, OH, H, row_off, sh)
            with for_range(b, KW, name="kj") as kj:
                col_off = b.sub(b.mul(kj, i64(dw)), i64(pw))
                lo, hi = valid_range(b, OW, W, col_off, sw)
                src0 = src_row(c, ki, kj)
                with for_range(b, rhi, name="oh", start=rlo) as oh:
                    ih = b.add(b.mul(oh, i64(sh)), row_off)
                    dst = b.add(b.add(b.mul(c, plane), b.mul(ih, W)), col_off)
                    row = b.add(src0, b.mul(oh, OW))
                    with for_range(b, hi, name="ow", start=lo) as ow:
                        at = b.add(dst, b.mul(ow, i64(sw)))
                        v = load(b, src, b.add(row, ow), dt)
                        if divisor is not None:
                            v = b.fdiv(v, divisor)
                        store(b, b.fadd(load(b, out, at, dt), v), out, at, dt)


# -- im2col, col2im, GEMM ------------------------------------------------------------------
def _im2col_kernel(ctx, dt, geo):
    """``void(ptr cols, ptr x, i64 C, H, W, KH, KW, OH, OW)``: one image's column matrix,
    row (c, ki, kj), column (oh, ow); taps that fall in the padding are zeros."""
    (sh, sw), (ph, pw), (dh, dw) = geo
    fn, b = new_kernel(ctx, "k.im2col", 2, 7, ["cols", "x"])
    cols, x = typed_ptr(b, fn.args[0], dt), typed_ptr(b, fn.args[1], dt)
    C, H, W, KH, KW, OH, OW = name_args(fn, ["C", "H", "W", "KH", "KW", "OH", "OW"])
    zero = constant(dt, 0.0)
    plane, ohw = b.mul(H, W), b.mul(OH, OW)
    with for_range(b, C, name="c") as c:
        with for_range(b, KH, name="ki") as ki:
            row_off = b.sub(b.mul(ki, i64(dh)), i64(ph))
            rlo, rhi = valid_range(b, OH, H, row_off, sh)
            with for_range(b, KW, name="kj") as kj:
                col_off = b.sub(b.mul(kj, i64(dw)), i64(pw))
                lo, hi = valid_range(b, OW, W, col_off, sw)
                base = b.mul(b.add(b.mul(b.add(b.mul(c, KH), ki), KW), kj), ohw)
                fill(b, cols, base, b.mul(rlo, OW), zero, dt)
                fill(b, cols, b.add(base, b.mul(rhi, OW)), b.mul(b.sub(OH, rhi), OW), zero, dt)
                with for_range(b, rhi, name="oh", start=rlo) as oh:
                    ih = b.add(b.mul(oh, i64(sh)), row_off)
                    src = b.add(b.add(b.mul(c, plane), b.mul(ih, W)), col_off)
                    dst = b.add(base, b.mul(oh, OW))
                    fill(b, cols, dst, lo, zero, dt)
                    with for_range(b, hi, name="ow", start=lo) as ow:
                        v = load(b, x, b.add(src, b.mul(ow, i64(sw))), dt)
                        store(b, v, cols, b.add(dst, ow), dt)
                    fill(b, cols, b.add(dst, hi), b.sub(OW, hi), zero, dt)
    b.ret_void()
    return fn


def _col2im_kernel(ctx, dt, geo):
    """``void(ptr out, ptr cols, i64 C, H, W, KH, KW, OH, OW)``: out = col2im(cols)."""
    fn, b = new_kernel(ctx, "k.col2im", 2, 7, ["out", "cols"])
    out, cols = typed_ptr(b, fn.args[0], dt), typed_ptr(b, fn.args[1], dt)
    C, H, W, KH, KW, OH, OW = name_args(fn, ["C", "H", "W", "KH", "KW", "OH", "OW"])
    fill(b, out, i64(0), b.mul(C, b.mul(H, W)), constant(dt, 0.0), dt)
    ohw = b.mul(OH, OW)
    emit_col2im(b, dt, geo, out, cols, C, (H, W), (KH, KW), (OH, OW),
                lambda c, ki, kj: b.mul(b.add(b.mul(b.add(b.mul(c, KH), ki), KW), kj), ohw))
    b.ret_void()
    return fn


def _gemm(ctx, b, dt, trans_a, trans_b, m, n, k, A, B, C, beta):
    """C (m x n, contiguous) = op(A) @ op(B) + beta * C through cblas, op(A) being m x k.

    Empty products skip BLAS; with k = 0 and beta = 0, C is zero-filled.
    """
    fn, ft = _gemm_decl(ctx, dt)
    lda = m if trans_a else k
    ldb = k if trans_b else n
    zero = i64(0)
    nonempty = b.and_(b.icmp_signed(">", m, zero), b.icmp_signed(">", n, zero))
    with b.if_then(nonempty):
        with b.if_else(b.icmp_signed(">", k, zero)) as (then, otherwise):
            with then:
                t32 = [b.trunc(v, I32) for v in (m, n, k, lda, ldb, n)]
                b.call(fn, [ir.Constant(I32, ROW_MAJOR),
                            ir.Constant(I32, TRANS if trans_a else NO_TRANS),
                            ir.Constant(I32, TRANS if trans_b else NO_TRANS),
                            t32[0], t32[1], t32[2], ir.Constant(ft, 1.0), _raw(b, A), t32[3],
                            _raw(b, B), t32[4], ir.Constant(ft, float(beta)), _raw(b, C),
                            t32[5]])
            with otherwise:
                if beta == 0:
                    fill(b, C, zero, b.mul(m, n), constant(dt, 0.0), dt)


def _raw(b, p):
    return b.bitcast(p, PTR)


def _at(b, base, index):
    return b.gep(base, [index], inbounds=True)


def _pointwise(op, kh, kw) -> bool:
    """A 1x1 kernel, stride 1, no padding: the image is its own column matrix."""
    return (type(kh) is int and kh == 1 and type(kw) is int and kw == 1
            and tuple(op.stride) == (1, 1) and tuple(op.padding) == (0, 0))


def _cols_bytes(op, c, kh, kw, oh, ow, dtype):
    if _pointwise(op, kh, kw):
        return 0
    return D.mul(D.product([c, kh, kw, oh, ow]), np.dtype(dtype).itemsize)


def _conv_kernel(ctx, nid, prefix, ptr_names, dim_names):
    """The driver kernel of one node: typed pointers, named dims, and the call to it."""
    dt = ctx.type(nid).dtype
    fn, b = new_kernel(ctx, prefix, len(ptr_names), len(dim_names), ptr_names)
    ptrs = [typed_ptr(b, a, dt) for a in fn.args[:len(ptr_names)]]
    return fn, b, ptrs, dict(zip(dim_names, name_args(fn, dim_names)))


def _call_conv(ctx, nid, fn, ins, dims, has_cols):
    cols = ctx.temp(nid) if has_cols else ir.Constant(PTR, None)
    args = [ctx.buffer(nid)] + [ctx.buffer(i) for i in ins] + [cols]
    ctx.builder.call(fn, args + [ctx.dim(d) for d in dims])


_DIMS = ["N", "C", "H", "W", "O", "KH", "KW", "OH", "OW"]


# -- the three ops -----------------------------------------------------------------------------
@temp_bytes(Conv2d)
def conv2d_temp(op, in_types, out_type):
    x, w = in_types
    return _cols_bytes(op, x.shape[1], *w.shape[2:], *out_type.shape[2:], out_type.dtype)


@lowers(Conv2d)
def lower_conv2d(ctx, nid):
    """y[n] = w @ im2col(x[n]) for each image n."""
    op = ctx.graph.op(nid)
    x, w = ctx.inputs(nid)
    (N, C, H, W), (O, _, KH, KW) = ctx.type(x).shape, ctx.type(w).shape
    OH, OW = ctx.type(nid).shape[2:]
    check_output_fits(ctx, nid, OH, OW)
    dt = ctx.type(nid).dtype
    direct = _pointwise(op, KH, KW)
    fn, b, (y, xs, ws, cols), d = _conv_kernel(ctx, nid, "k.conv2d", ["y", "x", "w", "cols"],
                                               _DIMS)
    ckk, ohw = b.mul(d["C"], b.mul(d["KH"], d["KW"])), b.mul(d["OH"], d["OW"])
    chw = b.mul(d["C"], b.mul(d["H"], d["W"]))
    im2col = None if direct else _im2col_kernel(ctx, dt, geometry(op))
    with for_range(b, d["N"], name="n") as n:
        xn = _at(b, xs, b.mul(n, chw))
        if direct:
            B = xn
        else:
            b.call(im2col, [_raw(b, cols), _raw(b, xn)] + [d[k] for k in _DIMS[1:4] + _DIMS[5:]])
            B = cols
        yn = _at(b, y, b.mul(n, b.mul(d["O"], ohw)))
        _gemm(ctx, b, dt, False, False, d["O"], ohw, ckk, ws, B, yn, 0)
    b.ret_void()
    _call_conv(ctx, nid, fn, [x, w], [N, C, H, W, O, KH, KW, OH, OW], not direct)


@temp_bytes(Conv2dGradInput)
def conv2d_grad_input_temp(op, in_types, out_type):
    g, w = in_types
    return _cols_bytes(op, out_type.shape[1], *w.shape[2:], *g.shape[2:], out_type.dtype)


@lowers(Conv2dGradInput)
def lower_conv2d_grad_input(ctx, nid):
    """gx[n] = col2im(w^T @ g[n]) for each image n."""
    op = ctx.graph.op(nid)
    g, w = ctx.inputs(nid)
    N, C, H, W = ctx.type(nid).shape
    (O, _, KH, KW), (OH, OW) = ctx.type(w).shape, ctx.type(g).shape[2:]
    dt = ctx.type(nid).dtype
    direct = _pointwise(op, KH, KW)
    fn, b, (gx, gs, ws, cols), d = _conv_kernel(ctx, nid, "k.conv2d_grad_input",
                                                ["gx", "g", "w", "cols"], _DIMS)
    ckk, ohw = b.mul(d["C"], b.mul(d["KH"], d["KW"])), b.mul(d["OH"], d["OW"])
    chw = b.mul(d["C"], b.mul(d["H"], d["W"]))
    col2im = None if direct else _col2im_kernel(ctx, dt, geometry(op))
    with for_range(b, d["N"], name="n") as n:
        gn = _at(b, gs, b.mul(n, b.mul(d["O"], ohw)))
        gxn = _at(b, gx, b.mul(n, chw))
        _gemm(ctx, b, dt, True, False, ckk, ohw, d["O"], ws, gn, gxn if direct else cols, 0)
        if not direct:
            b.call(col2im, [_raw(b, gxn), _raw(b, cols)] + [d[k] for k in _DIMS[1:4] + _DIMS[5:]])
    b.ret_void()
    _call_conv(ctx, nid, fn, [g, w], [N, C, H, W, O, KH, KW, OH, OW], not direct)


@temp_bytes(Conv2dGradWeight)
def conv2d_grad_weight_temp(op, in_types, out_type):
    x, g = in_types
    return _cols_bytes(op, x.shape[1], *out_type.shape[2:], *g.shape[2:], out_type.dtype)


@lowers(Conv2dGradWeight)
def lower_conv2d_grad_weight(ctx, nid):
    """gw = sum over n of g[n] @ im2col(x[n])^T, accumulated by GEMM (beta = 1)."""
    op = ctx.graph.op(nid)
    x, g = ctx.inputs(nid)
    O, C, KH, KW = ctx.type(nid).shape
    (N, _, H, W), (OH, OW) = ctx.type(x).shape, ctx.type(g).shape[2:]
    dt = ctx.type(nid).dtype
    direct = _pointwise(op, KH, KW)
    fn, b, (gw, xs, gs, cols), d = _conv_kernel(ctx, nid, "k.conv2d_grad_weight",
                                                ["gw", "x", "g", "cols"], _DIMS)
    ckk, ohw = b.mul(d["C"], b.mul(d["KH"], d["KW"])), b.mul(d["OH"], d["OW"])
    chw = b.mul(d["C"], b.mul(d["H"], d["W"]))
    fill(b, gw, i64(0), b.mul(d["O"], ckk), constant(dt, 0.0), dt)
    im2col = None if direct else _im2col_kernel(ctx, dt, geometry(op))
    with for_range(b, d["N"], name="n") as n:
        xn = _at(b, xs, b.mul(n, chw))
        if direct:
            B = xn
        else:
            b.call(im2col, [_raw(b, cols), _raw(b, xn)] + [d[k] for k in _DIMS[1:4] + _DIMS[5:]])
            B = cols
        gn = _at(b, gs, b.mul(n, b.mul(d["O"], ohw)))
        _gemm(ctx, b, dt, False, True, d["O"], ckk, ohw, gn, B, gw, 1)
    b.ret_void()
    _call_conv(ctx, nid, fn, [x, g], [N, C, H, W, O, KH, KW, OH, OW], not direct)


from . import lower_pool  # noqa: E402,F401  (pooling reuses the window helpers above)
