"""Pooling (NCHW) as direct loops over output pixels, with the semantics of
symgraph/ops/pool.py (PyTorch's).

Kernel sizes are static, so each output pixel reads its window's taps unrolled. Rows
and columns whose whole window lies inside the input take an unchecked body that
vectorizes along the row; border pixels take a checked one, where a tap in the padding
reads -inf (max) or 0 (average, counted in the divisor). MaxPool2dGrad and
MaxPool2dSelect recompute each window's FIRST maximum in row-major tap order (a NaN
wins, as numpy's argmax), exactly as the reference, so the forward pass records
nothing. AvgPool2dGrad is the col2im of g / (KH*KW). Kernels cover a range of planes,
so ``parallel.call_kernel`` may share the planes among threads (when enabled).
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import NamedTuple, Optional

import numpy as np
from llvmlite import ir

from symgraph import dims as D
from symgraph.ops.pool import (AvgPool2d, AvgPool2dGrad, MaxPool2d, MaxPool2dGrad,
                               MaxPool2dSelect)
from .codegen import lowers
from .irutil import I1, I32, call_intrinsic, for_range, i64, load, store, typed_ptr, value_type
from .lower_scalar import constant
from .lowerings import new_kernel
from .parallel import call_kernel
from .window_loops import (check_output_fits, emit_col2im, fill, geometry, name_args,
                           rolled_range, row_lanes, smax, valid_range, vector_range)


class Tap(NamedTuple):
    index: ir.Value            # flat index into the input (meaningless when not valid)
    valid: Optional[ir.Value]  # i1, or None in the unchecked body (always valid)


def _taps(b, op, base, oh, ow, H, W, checked):
    """The window taps of output pixel (oh, ow), in row-major order."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = op.kernel_size, *geometry(op)
    zero = i64(0)
    taps = []
    for ki in range(kh):
        ih = b.add(b.mul(oh, i64(sh)), i64(ki * dh - ph))
        row = b.add(base, b.mul(ih, W))
        row_ok = b.and_(b.icmp_signed(">=", ih, zero), b.icmp_signed("<", ih, H)) \
            if checked else None
        for kj in range(kw):
            iw = b.add(b.mul(ow, i64(sw)), i64(kj * dw - pw))
            ok = None
            if checked:
                ok = b.and_(row_ok, b.and_(b.icmp_signed(">=", iw, zero),
                                           b.icmp_signed("<", iw, W)))
            taps.append(Tap(b.add(row, iw), ok))
    return taps


def _tap_loads(b, tap, sources, dt):
    """The tap's value in each of ``sources`` ((typed ptr, padding value) pairs)."""
    if tap.valid is None:
        return [load(b, p, tap.index, dt) for p, _ in sources]
    before = b.block
    with b.if_then(tap.valid):
        vals = [load(b, p, tap.index, dt) for p, _ in sources]
        inside = b.block
    out = []
    for v, (_, pad) in zip(vals, sources):
        phi = b.phi(value_type(dt))
        phi.add_incoming(v, inside)
        phi.add_incoming(pad, before)
        out.append(phi)
    return out


def _pool_kernel(ctx, nid, prefix, ptr_names, in_ids, pixel, shape, zero_out=None,
                 passes=1):
    """Loop over planes and output pixels, calling ``pixel(b, ptrs, taps, out_index,
    checked, step)``; ``shape`` is the input's (N, C, H, W) and the output's (OH, OW).
    ``zero_out(b, H, W, OH, OW)`` (optional) says when the output must be zeroed first.

    Interior pixels of a row are visited ``passes`` times (``step`` 0, 1, ...; border
    pixels once, with step None), for bodies that vectorize better split in parts.
    The kernel covers the planes [lo, hi), so threads can share the planes.
    """
    op = ctx.graph.op(nid)
    dt = ctx.type(nid).dtype
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = op.kernel_size, *geometry(op)
    fn, b = new_kernel(ctx, prefix, len(ptr_names), 7, ptr_names)
    ptrs = [typed_ptr(b, a, dt) for a in fn.args[:len(ptr_names)]]
    lo, hi, _, H, W, OH, OW = name_args(fn, ["lo", "hi", "P", "H", "W", "OH", "OW"])
    plane_in, plane_out = b.mul(H, W), b.mul(OH, OW)
    static_width = type(shape[0][3]) is int
    out_w = shape[1][1]
    if zero_out is not None:
        with b.if_then(zero_out(b, H, W, OH, OW)):
            fill(b, ptrs[0], b.mul(lo, plane_in), b.mul(b.sub(hi, lo), plane_in),
                 constant(dt, 0.0), dt)
    # outputs whose first and last taps (hence all) are inside the input
    rlo, _ = valid_range(b, OH, H, i64(-ph), sh)
    rhi = smax(b, valid_range(b, OH, H, i64((kh - 1) * dh - ph), sh)[1], rlo)
    clo, _ = valid_range(b, OW, W, i64(-pw), sw)
    chi = smax(b, valid_range(b, OW, W, i64((kw - 1) * dw - pw), sw)[1], clo)
    with rolled_range(b, hi, name="p", start=lo) as p:
        base_in, base_out = b.mul(p, plane_in), b.mul(p, plane_out)
        with rolled_range(b, OH, name="oh") as oh:
            out_row = b.add(base_out, b.mul(oh, OW))

            def run(lo, hi, checked, step=None):
                # rows of a static width: force vectorization past the cost model's
                # doubt about short rows (with symbolic widths LLVM may not prove it
                # legal for the gradient's strided stores, and would warn)
                if static_width and not checked:
                    loop = vector_range(b, hi, name="ow", start=lo, width=row_lanes(out_w))
                else:
                    loop = for_range(b, hi, name="ow", start=lo)
                with loop as ow:
                    taps = _taps(b, op, base_in, oh, ow, H, W, checked)
                    pixel(b, ptrs, taps, b.add(out_row, ow), checked, step)
            inside = b.and_(b.icmp_signed(">=", oh, rlo), b.icmp_signed("<", oh, rhi))
            with b.if_else(inside) as (then, otherwise):
                with then:
                    run(i64(0), clo, True)
                    for step in range(passes):
                        run(clo, chi, False, step if passes > 1 else None)
                    run(chi, OW, True)
                with otherwise:
                    run(i64(0), OW, True)
    b.ret_void()
    n, c, h, w = shape[0]
    call_kernel(ctx, fn, [ctx.buffer(nid)] + [ctx.buffer(i) for i in in_ids],
                [D.mul(n, c), h, w, *shape[1]], splittable=True)


def _first_max(b, x, taps, dt, others=()):
    """Scan the taps for the first maximum (a NaN wins); also carry, per tap, the values
    in ``others`` (a list of per-tap value lists). Returns (max, [carried values])."""
    best, carried = None, None
    for k, t in enumerate(taps):
        (v,) = _tap_loads(b, t, [(x, constant(dt, -np.inf))], dt)
        vals = [o[k] for o in others]
        if best is None:
            best, carried = v, vals
            continue
        better = b.and_(b.fcmp_unordered(">", v, best), b.fcmp_ordered("==", best, best))
        best = b.select(better, v, best)
        carried = [b.select(better, new, old) for new, old in zip(vals, carried)]
    return best, carried


def _out_hw(ctx, nid):
    return tuple(ctx.type(nid).shape[2:])


# -- forward -------------------------------------------------------------------------------
@lowers(MaxPool2d)
def lower_max_pool2d(ctx, nid):
    """y = the maximum of each window; padding taps are -inf (NaN propagates, as np.max)."""
    (x,) = ctx.inputs(nid)
    dt = ctx.type(nid).dtype
    check_output_fits(ctx, nid, *_out_hw(ctx, nid))

    def pixel(b, ptrs, taps, at, checked, step):
        y, xs = ptrs
        m = None
        for t in taps:
            (v,) = _tap_loads(b, t, [(xs, constant(dt, -np.inf))], dt)
            m = v if m is None else call_intrinsic(b, "llvm.maximum", [m, v])
        store(b, m, y, at, dt)
    _pool_kernel(ctx, nid, "k.max_pool2d", ["y", "x"], [x], pixel,
                 (ctx.type(x).shape, _out_hw(ctx, nid)))


@lowers(AvgPool2d)
def lower_avg_pool2d(ctx, nid):
    """y = the sum of each zero-padded window / (KH*KW)."""
    (x,) = ctx.inputs(nid)
    op = ctx.graph.op(nid)
    dt = ctx.type(nid).dtype
    check_output_fits(ctx, nid, *_out_hw(ctx, nid))
    count = constant(dt, op.kernel_size[0] * op.kernel_size[1])

    def pixel(b, ptrs, taps, at, checked, step):
        y, xs = ptrs
        s = None
        for t in taps:
            (v,) = _tap_loads(b, t, [(xs, constant(dt, 0.0))], dt)
            s = v if s is None else b.fadd(s, v)
        store(b, b.fdiv(s, count), y, at, dt)
    _pool_kernel(ctx, nid, "k.avg_pool2d", ["y", "x"], [x], pixel,
                 (ctx.type(x).shape, _out_hw(ctx, nid)))


# -- gradients -----------------------------------------------------------------------------
@lowers(MaxPool2dSelect)
def lower_max_pool2d_select(ctx, nid):
    """out = h at the first maximum of each window of x (0 when that tap is padding)."""
    x, h = ctx.inputs(nid)
    dt = ctx.type(nid).dtype
    check_output_fits(ctx, nid, *_out_hw(ctx, nid))

    def pixel(b, ptrs, taps, at, checked, step):
        out, xs, hs = ptrs
        hv = [_tap_loads(b, t, [(hs, constant(dt, 0.0))], dt)[0] for t in taps]
        _, (v,) = _first_max(b, xs, taps, dt, [hv])
        store(b, v, out, at, dt)
    _pool_kernel(ctx, nid, "k.max_pool2d_select", ["out", "x", "h"], [x, h], pixel,
                 (ctx.type(x).shape, _out_hw(ctx, nid)))


@lowers(MaxPool2dGrad)
def lower_max_pool2d_grad(ctx, nid):
    """gx[first maximum of each window] += g; taps in the padding drop their share.

    When windows cannot overlap (stride at least the window span), every input pixel
    has at most one writer: interior windows then store all their taps (g or 0), one
    window row per pass (the argmax is recomputed), which vectorizes. Otherwise each
    window adds g at its maximum.
    """
    op = ctx.graph.op(nid)
    x, g = ctx.inputs(nid)
    dt = ctx.type(nid).dtype
    (kh, kw), (sh, sw), _, (dh, dw) = op.kernel_size, *geometry(op)
    disjoint = sh >= dh * (kh - 1) + 1 and sw >= dw * (kw - 1) + 1
    tiling = (sh, sw) == (kh, kw) and (dh, dw) == (1, 1) and tuple(op.padding) == (0, 0)
    zero = constant(dt, 0.0)

    def needs_zeros(b, H, W, OH, OW):
        """Unless the windows tile the input exactly, some pixels get no store."""
        if not tiling:
            return ir.Constant(I1, 1)
        exact = b.and_(b.icmp_signed("==", H, b.mul(OH, i64(sh))),
                       b.icmp_signed("==", W, b.mul(OW, i64(sw))))
        return b.not_(exact)

    def pixel(b, ptrs, taps, at, checked, step):
        gx, xs, gs = ptrs
        if step is not None:  # disjoint windows, interior: store window row ``step``
            numbers = [ir.Constant(I32, k) for k in range(len(taps))]
            _, (best,) = _first_max(b, xs, taps, dt, [numbers])
            gv = load(b, gs, at, dt)
            for k in range(step * kw, (step + 1) * kw):
                hit = b.icmp_signed("==", best, numbers[k])
                store(b, b.select(hit, gv, zero), gx, taps[k].index, dt)
            return
        idx = [t.index for t in taps]
        ok = [t.valid for t in taps] if checked else None
        _, carried = _first_max(b, xs, taps, dt, [idx] + ([ok] if checked else []))
        gv = load(b, gs, at, dt)
        with b.if_then(carried[1]) if checked else nullcontext():
            store(b, b.fadd(load(b, gx, carried[0], dt), gv), gx, carried[0], dt)
    _pool_kernel(ctx, nid, "k.max_pool2d_grad", ["gx", "x", "g"], [x, g], pixel,
                 (ctx.type(x).shape, tuple(ctx.type(g).shape[2:])), zero_out=needs_zeros,
                 passes=kh if disjoint else 1)


@lowers(AvgPool2dGrad)
def lower_avg_pool2d_grad(ctx, nid):
    """gx = col2im(g / (KH*KW)): each tap's share goes to its input pixel (none to padding)."""
    op = ctx.graph.op(nid)
    (g,) = ctx.inputs(nid)
    dt = ctx.type(nid).dtype
    n, c, h, w = ctx.type(nid).shape
    oh, ow = ctx.type(g).shape[2:]
    kh, kw = op.kernel_size
    fn, b = new_kernel(ctx, "k.avg_pool2d_grad", 2, 7, ["gx", "g"])
    gx, gs = typed_ptr(b, fn.args[0], dt), typed_ptr(b, fn.args[1], dt)
    lo, hi, _, H, W, OH, OW = name_args(fn, ["lo", "hi", "P", "H", "W", "OH", "OW"])
    fill(b, gx, b.mul(lo, b.mul(H, W)), b.mul(b.sub(hi, lo), b.mul(H, W)),
         constant(dt, 0.0), dt)
    plane_out = b.mul(OH, OW)
    emit_col2im(b, dt, geometry(op), gx, gs, (lo, hi), (H, W), (i64(kh), i64(kw)), (OH, OW),
                lambda p, ki, kj: b.mul(p, plane_out), divisor=constant(dt, kh * kw),
                lanes=row_lanes(ow))
    b.ret_void()
    call_kernel(ctx, fn, [ctx.buffer(nid), ctx.buffer(g)], [D.mul(n, c), h, w, oh, ow],
                splittable=True)
