"""Lowerings of the joining ops: Pad and Concatenate as strided copies into the output.

Both write each input into a box of the output (the ``View`` of a slice with step 1),
so the axes after the padded or joined one merge into one contiguous run per row.
"""
from __future__ import annotations

import numpy as np

from symgraph import dims as D
from symgraph.ops import joining as J
from .codegen import lowers
from .lower_indexing import View, dense, dense_strides, fill, strided_copy


def _box(out_shape, corner) -> View:
    """The output elements at ``corner + i`` (per axis), for a box of any size."""
    strides = dense_strides(out_shape)
    offset = 0
    for c, s in zip(corner, strides):
        offset = D.add(offset, D.mul(c, s))
    return View(offset, strides)


@lowers(J.Pad)
def lower_pad(ctx, nid):
    """Fill the whole output with the value, then copy the input into its box."""
    op = ctx.graph.op(nid)
    (x,) = ctx.inputs(nid)
    t, xt = ctx.type(nid), ctx.type(x)
    out = ctx.buffer(nid)
    try:
        with np.errstate(all="ignore"):   # the value exactly as the reference casts it
            value = np.pad(np.zeros(0, t.dtype), (0, 1), constant_values=op.value)[0]
    except OverflowError as e:
        raise OverflowError(f"{ctx.node_where(nid)}: {e}") from None
    fill(ctx, out, t.dtype, D.product(t.shape), value)
    box = _box(t.shape, [before for before, _ in op.widths])
    strided_copy(ctx, xt.shape, (out, t.dtype, box), (ctx.buffer(x), xt.dtype, dense(xt.shape)),
                 name="k.pad")


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
