"""Lowerings of the joining ops: Pad and Concatenate as strided copies into the output.

Both write each input into a box of the output (the ``View`` of a slice with step 1),
so the axes after the padded or joined one merge into one contiguous run per row.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from symgraph import dims as D
from symgraph.ops import joining as J
from .codegen import lowers
from .irutil import I8, PTR
from .lower_indexing import View, dense, dense_strides, strided_copy


def _box(out_shape, corner) -> View:
    """The output elements at ``corner + i`` (per axis), for a box of any size."""
    strides = dense_strides(out_shape)
    offset = 0
    for c, s in zip(corner, strides):
        offset = D.add(offset, D.mul(c, s))
    return View(offset, strides)


def _pad_value(ctx, nid, dtype, value):
    """The value exactly as the reference casts it, as a one-element constant buffer."""
    try:
        with np.errstate(all="ignore"):
            cell = np.pad(np.zeros(0, dtype), (0, 1), constant_values=value)
    except OverflowError as e:
        raise OverflowError(f"{ctx.node_where(nid)}: {e}") from None
    data = ir.Constant(ir.ArrayType(I8, dtype.itemsize), bytearray(cell.tobytes()))
    gv = ir.GlobalVariable(ctx.module, data.type, name=ctx.name("pad.value"))
    gv.linkage, gv.global_constant, gv.initializer = "internal", True, data
    gv.align = dtype.itemsize
    return gv.bitcast(PTR)


@lowers(J.Pad)
def lower_pad(ctx, nid):
    """Like np.pad: copy the input into its box, then fill the slabs around it, axis by
    axis (before and after the box along axis a, within the box on the axes before a,
    whole on the axes after it). Every output element is written once, in runs."""
    op = ctx.graph.op(nid)
    (x,) = ctx.inputs(nid)
    t, xt = ctx.type(nid), ctx.type(x)
    dt = np.dtype(t.dtype)
    out = ctx.buffer(nid)
    corner = [before for before, _ in op.widths]
    strided_copy(ctx, xt.shape, (out, dt, _box(t.shape, corner)),
                 (ctx.buffer(x), xt.dtype, dense(xt.shape)), name="k.pad")
    value = None
    for a, (before, after) in enumerate(op.widths):
        for start, width in ((0, before), (D.add(before, xt.shape[a]), after)):
            if width == 0:
                continue
            if value is None:
                value = _pad_value(ctx, nid, dt, op.value)
            counts = list(xt.shape[:a]) + [width] + list(t.shape[a + 1:])
            box = _box(t.shape, corner[:a] + [start] + [0] * (len(t.shape) - a - 1))
            strided_copy(ctx, counts, (out, dt, box), (value, dt, View(0, [0] * len(counts))),
                         name="k.pad_fill")


@lowers(J.Concatenate)
def lower_concatenate(ctx, nid):
    """One copy per input, each into the box starting at its offset along the axis."""
    op = ctx.graph.op(nid)
    t = ctx.type(nid)
    out = ctx.buffer(nid)
    offset = 0
    for x in ctx.inputs(nid):
        xt = ctx.type(x)
        corner = [offset if a == op.axis else 0 for a in range(len(t.shape))]
        strided_copy(ctx, xt.shape, (out, t.dtype, _box(t.shape, corner)),
                     (ctx.buffer(x), xt.dtype, dense(xt.shape)), name="k.concatenate")
        offset = D.add(offset, xt.shape[op.axis])
