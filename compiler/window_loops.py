"""Loops over sliding windows, shared by the convolution and pooling lowerings.

Window geometry (stride, padding, dilation) is static; sizes are runtime i64 values.
For a kernel tap at offset ``k*d - p``, ``valid_range`` gives the output positions
whose input pixel is inside the image, so loops split into a zero (or skipped) part
and a branch-free part that vectorizes. ``hinted_range`` attaches loop hints that
llvmlite has no helper for.
"""
from __future__ import annotations

from contextlib import contextmanager

from llvmlite import ir

from .irutil import I1, I64, for_range, i64, load, store


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


@contextmanager
def window_taps(b, rows, geo, hw, ohw, khw):
    """Loops over the rows r (a count, or a (start, stop) pair) and the kernel taps
    (ki, kj) of a window; yields (r, ki, kj, row offset, col offset, (rlo, rhi), (lo, hi)):
    a tap's input offsets and the output rows and columns whose input pixel is inside
    the image. im2col and col2im walk the taps in this same order."""
    (sh, sw), (ph, pw), (dh, dw) = geo
    (H, W), (OH, OW), (KH, KW) = hw, ohw, khw
    start, stop = rows if isinstance(rows, tuple) else (None, rows)
    with rolled_range(b, stop, name="c", start=start) as r:
        with rolled_range(b, KH, name="ki") as ki:
            row_off = b.sub(b.mul(ki, i64(dh)), i64(ph))
            rows_in = valid_range(b, OH, H, row_off, sh)
            with rolled_range(b, KW, name="kj") as kj:
                col_off = b.sub(b.mul(kj, i64(dw)), i64(pw))
                yield r, ki, kj, row_off, col_off, rows_in, valid_range(b, OW, W, col_off, sw)


class _LoopID(ir.values.MDValue):
    """A loop's self-referencing ``llvm.loop`` node (llvmlite has no helper for one)."""

    def __init__(self, module, properties):
        super().__init__(module, [], name=str(len(module.metadata)))
        self.operands = (self,) + tuple(properties)

    __hash__ = object.__hash__

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other


@contextmanager
def hinted_range(b, count, name="i", start=None, *, vectorize=False, unroll=True,
                 width=None):
    """``for_range`` with loop hints. ``vectorize`` asks LLVM to vectorize even when the
    cost model, seeing a short static trip count (a 14-pixel row), would not (the rest
    runs scalar). ``unroll=False`` keeps an outer loop with a static count rolled: fully
    unrolled nests of rows and taps cost seconds of compile time and gain nothing."""
    m = b.module
    hints = []
    if vectorize:
        hints.append(m.add_metadata([ir.MetaDataString(m, "llvm.loop.vectorize.enable"),
                                     ir.Constant(I1, 1)]))
    if width is not None:
        hints.append(m.add_metadata([ir.MetaDataString(m, "llvm.loop.vectorize.width"),
                                     ir.Constant(ir.IntType(32), width)]))
        hints.append(m.add_metadata([ir.MetaDataString(m, "llvm.loop.interleave.count"),
                                     ir.Constant(ir.IntType(32), 1)]))
    if not unroll:
        hints.append(m.add_metadata([ir.MetaDataString(m, "llvm.loop.unroll.disable")]))
    with for_range(b, count, name, start, _LoopID(m, hints) if hints else None) as idx:
        yield idx


def vector_range(b, count, name="v", start=None, width=None):
    """A loop LLVM must vectorize; ``width``: its lanes, not interleaved (row_lanes)."""
    return hinted_range(b, count, name, start, vectorize=True, width=width)


def row_lanes(n):
    """Lanes for a vectorized loop over a short row of ``n`` (a static int) elements,
    not interleaved: the vectorizer's own choice (8 lanes, interleaved twice) needs 16
    elements before its vector body runs at all, so the 14- and 7-wide rows of a CNN's
    pooling ran all scalar (a 2x2 max-pool gradient: 1.85 ms with it, 0.70 ms with 4
    lanes). Of 8 and 4 lanes, the one with fewer vector plus scalar iterations; None
    (LLVM's choice) for a symbolic or long row."""
    if type(n) is not int or n >= 64:
        return None
    return min((8, 4), key=lambda lanes: (n // lanes + n % lanes, -lanes))


def rolled_range(b, count, name="i", start=None):
    return hinted_range(b, count, name, start, unroll=False)


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
        op = ctx.graph.op(nid)
        kernel = getattr(op, "kernel_size", None) or "of the weights"
        ctx.fail_if(bad, f"{ctx.node_where(nid)}: the kernel span (kernel {kernel}, dilation "
                         f"{op.dilation}) does not fit the padded input (padding "
                         f"{op.padding}), so the output would have no pixels")


def geometry(op):
    return tuple(op.stride), tuple(op.padding), tuple(op.dilation)


def emit_col2im(b, dt, geo, out, src, rows, hw, khw, ohw, src_row, divisor=None,
                lanes=None):
    """out[r, ih, iw] += src[src_row(r, ki, kj) + oh*OW + ow] (/ divisor) over every tap
    (ki, kj) and output pixel (oh, ow) whose input pixel (ih, iw) is inside the image,
    for the rows r in ``rows`` (a count, or a (start, stop) pair).

    Taps outermost, as in the reference col2im, so each input pixel sums its terms in
    the same order. ``out`` must be zero on entry. ``lanes``: see row_lanes.
    """
    (sh, sw) = geo[0]
    (H, W), (OH, OW) = hw, ohw
    plane = b.mul(H, W)
    with window_taps(b, rows, geo, hw, ohw, khw) as (c, ki, kj, row_off, col_off,
                                                     (rlo, rhi), (lo, hi)):
        src0 = src_row(c, ki, kj)
        with rolled_range(b, rhi, name="oh", start=rlo) as oh:
            ih = b.add(b.mul(oh, i64(sh)), row_off)
            dst = b.add(b.add(b.mul(c, plane), b.mul(ih, W)), col_off)
            row = b.add(src0, b.mul(oh, OW))
            with vector_range(b, hi, name="ow", start=lo, width=lanes) as ow:
                at = b.add(dst, b.mul(ow, i64(sw)))
                v = load(b, src, b.add(row, ow), dt)
                if divisor is not None:
                    v = b.fdiv(v, divisor)
                store(b, b.fadd(load(b, out, at, dt), v), out, at, dt)
