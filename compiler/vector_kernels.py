"""Fused kernels written in vector form: the innermost loop works on whole registers
(<L x T>, L lanes of the host's widest vectors) and ends with one masked step, instead
of a scalar loop that LLVM's loop vectorizer widens.

Why: LLVM's time is mostly per loop, and most of it went to making vector code out of
scalar loops (the vectorizer, the scalar remainder loop it leaves, the O2/O3 passes
cleaning up after it: about 9 ms per elementwise kernel here). A kernel that is already
vector code needs a light pipeline only (inlining its vector math, instcombine,
simplifycfg: llvm_job.optimize_light), which target.py runs on these kernels apart
from the rest of the module (partition.separate) before linking the two.

Which kernels: those whose operands (inputs and outputs) all have one float dtype,
float32 or float64, and whose intermediate values are floats or booleans; anything
else (integers, bool arrays, mixed dtypes) goes to kernels.emit_group's scalar loops.
Along the innermost (collapsed) axis every operand is contiguous or broadcast
(kernels.plan_loops), so a register is one vector load or one splat. Outputs reduced
along that axis keep a vector accumulator per row, folded lane by lane at the row's
end (sums in a fixed tree order: deterministic, like the loop vectorizer's
reassociation they replace).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from symgraph.ops import elementwise as E
from .irtext import TextBuilder, define
from .irutil import (I32, I64, i64, for_range, if_then, is_zero, load, memcpy, offsets_at,
                     store)
from .lower_scalar import EMITTERS, constant, splat, vector_lanes
from .fused import ScalarConst

# The function attribute that marks a kernel for the light pipeline (partition.separate).
LIGHT_ATTRIBUTE = '"sg-light"'
BODY_PREFIX = "vbody"      # a kernel's body function (not "k.": no unit of partition.split)
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def lanes_for(members, in_dtypes, out_dtypes, extents) -> int:
    """Lanes of a kernel written in vector form, or 0 when it stays scalar."""
    if not extents:
        return 0
    dts = {np.dtype(d) for d in (*in_dtypes, *out_dtypes)}
    if len(dts) != 1 or next(iter(dts)) not in _FLOATS:
        return 0
    for m in members:
        for (op, _), dt in zip(m.fused.body, m.fused.dtypes):
            if np.dtype(dt).kind not in "fb":
                return 0
            if not isinstance(op, ScalarConst) and type(op) not in EMITTERS:
                return 0
            if isinstance(op, E.Cast) and np.dtype(op.dtype).kind not in "fb":
                return 0
    return lanes_for_dtype(next(iter(dts)))


def lanes_for_dtype(dt) -> int:
    """Lanes of the host's widest vectors of float dtype ``dt`` (0 for other dtypes)."""
    dt = np.dtype(dt)
    if dt not in _FLOATS:
        return 0
    from .vecmath_lib import vector_widths
    return max(vector_widths()) // (8 * dt.itemsize)


def no_vectorizer_loop(module):
    """Loop metadata for loops that are vector code already (or that stay scalar)."""
    from .window_loops import _LoopID
    return _LoopID(module, [
        module.add_metadata([ir.MetaDataString(module, "llvm.loop.vectorize.enable"),
                             ir.Constant(ir.IntType(1), 0)]),
        module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")])])


class VectorNest:
    """The loop nest of one vector-form kernel: scalar loops over the outer axes, and per
    row the vector loop, the masked tail and the row's reductions.

    ``compact`` (big modules): the row's last, partial vector goes through the loop's
    own body on copies in stack buffers (_row_compact) instead of a masked copy of it.

    ``emit(builder, input_value, write)`` is kernels.emit_members bound to the kernel's
    members: it asks ``input_value(u)`` for input u's register and hands output k's register to
    ``write(k, value)``. It is emitted once, as an ``alwaysinline`` function of the
    input registers returning the output registers (``vbody.<kernel>``), which the vector
    loop and the masked tail both call: the light pipeline inlines it, and building and
    printing the body twice would have cost most of what a kernel costs to lower. A
    compact row (one step in its code) has the body written into that step."""

    def __init__(self, b, lanes, dt, ins, outs, strides, n_in, reduce_kinds, emit, *,
                 compact: bool = False):
        self.b, self.lanes, self.dt = b, lanes, np.dtype(dt)
        self.compact = compact
        self.vty = ir.VectorType(constant(dt, 0).type, lanes)
        self.vptr = self.vty.as_pointer()    # one type object: its text is made once
        self.ins, self.outs, self.strides, self.n_in = ins, outs, strides, n_in
        self.reduce_kinds = reduce_kinds      # per output: None, or its reduction kind
        # loop metadata keeps O2/O3 from vectorizing these loops again; a big module's
        # vector kernels only ever see the light pipeline (no loop passes): none there
        self.hints = None if compact else no_vectorizer_loop(b.module)
        self.emit = emit
        self._body = None           # the body function, made on first use

    def _body_function(self, kernel_name, emit):
        n_out = len(self.outs)
        ret = self.vty if n_out == 1 else ir.LiteralStructType([self.vty] * n_out)
        fn = ir.Function(self.b.module, ir.FunctionType(ret, [self.vty] * self.n_in),
                         name=f"{BODY_PREFIX}.{kernel_name}")
        fn.linkage = "internal"
        fn.attributes.add("alwaysinline")
        if isinstance(self.b, TextBuilder):     # the kernel is written as text: so is this
            b, args = define(fn, getattr(self.b, "outliner", None))
        else:
            b, args = ir.IRBuilder(fn.append_basic_block("entry")), fn.args
        results = [None] * n_out

        def write(k, v):
            results[k] = v
        with vector_lanes(self.lanes):
            emit(b, lambda u: args[u], write)
        if n_out == 1:
            b.ret(results[0])
        else:
            agg = ir.Constant(ret, ir.Undefined)
            for k, v in enumerate(results):
                agg = b.insert_value(agg, v, k)
            b.ret(agg)
        return fn

    # -- the nest ------------------------------------------------------------------
    def run(self, extents, lo, hi):
        self._level(extents, [i64(0)] * len(self.strides), 0, (lo, hi))

    def _level(self, extents, offsets, level, bounds):
        b = self.b
        start, stop = bounds if bounds else (i64(0), extents[level])
        if level == len(extents) - 1:
            static = extents[level] if not bounds and type(extents[level]) is int else None
            self._row(offsets, start, stop, static)
            return
        with for_range(b, stop, name=f"l{level}", start=start, loop_metadata=self.hints) as i:
            self._level(extents, offsets_at(b, offsets, self.strides, level, i), level + 1,
                        None)

    def _dense(self, k) -> bool:
        return not is_zero(self.strides[k][-1])

    # -- one row: vector loop, masked tail, reductions --------------------------------
    def _row(self, offsets, start, stop, static=None):
        """``static``: the row's length when it is known here (rows of a nest's inner
        levels): a multiple of L needs no tail, and a row of fixed length keeps the
        masked tail even in a compact nest (short rows would pay for the copies in
        every row)."""
        b, n_in, L = self.b, self.n_in, self.lanes
        kinds = self.reduce_kinds
        # operands broadcast along the row: one scalar load, splat, before the loop
        self._row_splats = {u: self._splat(load(b, self.ins[u], offsets[u], self.dt))
                            for u in range(n_in) if not self._dense(u)}
        folded = [k for k in range(len(self.outs))
                  if kinds[k] is not None and not self._dense(n_in + k)]
        idents = {k: self._identity(kinds[k]) for k in folded}
        count = b.sub(stop, start)
        full_end = b.add(start, b.and_(count, i64(-L)))
        if self.compact and static is None:
            self._row_compact(offsets, start, stop, full_end, folded, idents)
            return

        def address(k, idx):
            base = self.ins[k] if k < n_in else self.outs[k - n_in]
            at = idx if is_zero(offsets[k]) else b.add(offsets[k], idx)
            return b.bitcast(b.gep(base, [at], inbounds=True), self.vptr)

        cond = b.append_basic_block("v.cond")
        body = b.append_basic_block("v.body")
        after = b.append_basic_block("v.end")
        idx, accs = self._enter_loop(cond, start, full_end, folded, idents, body, after)
        b.position_at_end(body)
        new_accs = self._step(lambda k: address(k, idx), None, None, accs, idents)
        self._next_vector(cond, idx, accs, new_accs)

        b.position_at_end(after)
        if static is not None and static % L == 0:       # no rest
            self._end_row(offsets, [(accs, after)])
            return
        # the rest of the row (fewer than L elements): one masked vector
        tail = b.append_basic_block("v.tail")
        done = b.append_basic_block("v.done")
        rem = b.sub(stop, full_end)
        b.cbranch(b.icmp_signed(">", rem, i64(0)), tail, done)
        b.position_at_end(tail)
        mask = _first_lanes(b, rem, L)
        tail_accs = self._step(lambda k: address(k, full_end), mask, mask, accs, idents)
        tail_end = b.block
        b.branch(done)
        b.position_at_end(done)
        self._end_row(offsets, [(accs, after), (tail_accs, tail_end)])

    def _row_compact(self, offsets, start, stop, full_end, folded, idents):
        """The row with one copy of the body: the loop's step runs on the whole vectors,
        then once more on the last ``rem`` elements copied into stack buffers of L
        lanes (outputs copied back, reduced ones copied in first).

        Why: in a big module LLVM's instruction selection was most of its time, and a
        masked copy of the body made 60 % of it (measured on the kernels of a 10,000-op
        graph); memcpy calls and a few phis cost little. The lanes past ``rem`` hold
        whatever the stack held: the body works lane by lane on floats (lanes_for),
        which never trap, their results are never copied out, and outputs folded along
        the row mask them with the identity, by a mask that is all-true in the loop."""
        b, n_in, L, dt = self.b, self.n_in, self.lanes, self.dt
        kinds = self.reduce_kinds
        n_ops = n_in + len(self.outs)
        dense = [k for k in range(n_ops) if self._dense(k)]   # folded outputs are not
        bases = {k: (self.ins[k] if k < n_in else self.outs[k - n_in]) for k in dense}
        rows = {k: bases[k] if is_zero(offsets[k]) else b.gep(bases[k], [offsets[k]],
                                                               inbounds=True) for k in dense}
        with b.goto_entry_block():
            buffers = {k: b.bitcast(b.alloca(self.vty), bases[k].type) for k in dense}
        rem = b.sub(stop, full_end)
        size = b.mul(rem, i64(dt.itemsize))
        cond = b.append_basic_block("v.cond")
        last = b.append_basic_block("v.last")
        fill = b.append_basic_block("v.fill")
        step = b.append_basic_block("v.step")
        nxt = b.append_basic_block("v.next")
        back = b.append_basic_block("v.back")
        done = b.append_basic_block("v.done")
        idx, accs = self._enter_loop(cond, start, full_end, folded, idents, step, last)

        b.position_at_end(last)
        b.cbranch(b.icmp_signed(">", rem, i64(0)), fill, done)

        b.position_at_end(fill)
        for k in dense:
            if k < n_in or kinds[k - n_in] is not None:
                memcpy(b, buffers[k], b.gep(rows[k], [full_end], inbounds=True), size)
        mask = _first_lanes(b, rem, L) if folded else None
        b.branch(step)

        b.position_at_end(step)
        at = b.phi(I64, name="v.at")
        at.add_incoming(idx, cond)
        at.add_incoming(i64(0), fill)
        is_last = b.phi(ir.IntType(1), name="v.is_last")
        is_last.add_incoming(ir.Constant(ir.IntType(1), 0), cond)
        is_last.add_incoming(ir.Constant(ir.IntType(1), 1), fill)
        ptrs = {}
        for k in dense:
            ptrs[k] = b.phi(rows[k].type, name=f"p{k}")
            ptrs[k].add_incoming(rows[k], cond)
            ptrs[k].add_incoming(buffers[k], fill)
        lanes_in = None
        if folded:
            lanes_in = b.phi(mask.type, name="v.lanes")
            lanes_in.add_incoming(ir.Constant(mask.type, [1] * L), cond)
            lanes_in.add_incoming(mask, fill)
        new_accs = self._step(
            lambda k: b.bitcast(b.gep(ptrs[k], [at], inbounds=True), self.vptr),
            None, lanes_in, accs, idents, inline=True)
        b.cbranch(is_last, back, nxt)

        b.position_at_end(nxt)
        self._next_vector(cond, idx, accs, new_accs)

        b.position_at_end(back)
        for k in dense:
            if k >= n_in:
                memcpy(b, b.gep(rows[k], [full_end], inbounds=True), buffers[k], size)
        b.branch(done)

        b.position_at_end(done)
        self._end_row(offsets, [(accs, last), (new_accs, back)])

    def _enter_loop(self, cond, start, full_end, folded, idents, more, rest):
        """Branch from the current block to ``cond``, which heads the row's loop: the
        element index and the accumulators of the outputs ``folded`` along the row
        (phis, from ``start`` and the identities ``idents``), then on to ``more``
        while a whole vector remains, else to ``rest``. Returns (index, accumulators)."""
        b = self.b
        pre = b.block
        b.branch(cond)
        b.position_at_end(cond)
        idx = b.phi(I64, name="v")
        idx.add_incoming(start, pre)
        accs = {}
        for k in folded:
            accs[k] = b.phi(self.vty, name=f"acc{k}")
            accs[k].add_incoming(idents[k], pre)
        b.cbranch(b.icmp_signed("<", idx, full_end), more, rest)
        return idx, accs

    def _next_vector(self, cond, idx, accs, new_accs) -> None:
        """From the current block back to the loop head ``cond``, a vector further on,
        with the accumulators ``new_accs``."""
        b = self.b
        here = b.block
        idx.add_incoming(b.add(idx, i64(self.lanes), flags=["nsw", "nuw"]), here)
        for k, acc in accs.items():
            acc.add_incoming(new_accs[k], here)
        edge = b.branch(cond)
        if self.hints is not None:
            edge.set_metadata("llvm.loop", self.hints)

    def _end_row(self, offsets, ways) -> None:
        """At the row's end (the current block), each output folded along the row
        combined with its accumulator: ``ways`` lists (accumulators, block) of the
        blocks that lead here, merged by phis when there are several."""
        b = self.b
        accs = ways[0][0]
        if len(ways) > 1:
            merged = {}
            for k in accs:     # phis first: they head the block
                merged[k] = b.phi(self.vty, name=f"acc{k}.row")
                for way, block in ways:
                    merged[k].add_incoming(way[k], block)
            accs = merged
        for k, acc in accs.items():
            self._fold_into_output(k, acc, offsets)

    def _fold_into_output(self, k, acc, offsets) -> None:
        """Output k (reduced along the row) combined with the lanes of its accumulator."""
        b, kind = self.b, self.reduce_kinds[k]
        total = self._fold_lanes(kind, acc)
        out, off = self.outs[k], offsets[self.n_in + k]
        store(b, _combine(b, kind, load(b, out, off, self.dt), total, self.dt), out, off,
              self.dt)

    def _step(self, address, mask, fold_mask, accs, idents, *, inline: bool = False):
        """One vector of the row: operand k at ``address(k)``, loaded and stored under
        ``mask`` when given; ``fold_mask`` keeps the lanes that outputs folded along
        the row take in; ``inline``: the body written here (a compact row's one step),
        not called. Returns the outputs' new accumulators."""
        b, n_in = self.b, self.n_in
        kinds = self.reduce_kinds
        new_accs = dict(accs)

        def input_value(u):
            return (self._row_splats[u] if u in self._row_splats
                    else self._load(address(u), mask))

        def write(k, v):
            kind = kinds[k]
            if kind is not None and not self._dense(n_in + k):
                if fold_mask is not None:
                    v = b.select(fold_mask, v, idents[k])
                new_accs[k] = _combine(b, kind, accs[k], v, self.dt)
                return
            ptr = address(n_in + k)
            if kind is not None:
                v = _combine(b, kind, self._load(ptr, mask), v, self.dt)
            self._store(v, ptr, mask)

        if inline:
            with vector_lanes(self.lanes):
                self.emit(b, input_value, write)
            return new_accs
        if self._body is None:
            self._body = self._body_function(b.function.name, self.emit)
        res = b.call(self._body, [input_value(u) for u in range(n_in)])
        for k in range(len(self.outs)):
            write(k, res if len(self.outs) == 1 else b.extract_value(res, k))
        return new_accs

    # -- vector helpers ------------------------------------------------------------
    def _splat(self, v, ty=None):
        return _splat(self.b, v, ty or self.vty)

    def _identity(self, kind):
        return splat(self.vty, _identity_scalar(kind, self.dt))

    def _load(self, ptr, mask):
        return _vload(self.b, ptr, self.vty, self.dt, mask)

    def _store(self, v, ptr, mask):
        _vstore(self.b, v, ptr, self.dt, mask)

    def _fold_lanes(self, kind, v):
        return _fold_lanes(self.b, kind, v, self.dt)


def mark_light(fn) -> None:
    """Mark a kernel (already noinline) written in vector form for the light pipeline."""
    from .vecmath_lib import _Attributes
    attrs = _Attributes()
    for a in fn.attributes:
        attrs.add(a)
    attrs.add(LIGHT_ATTRIBUTE)
    fn.attributes = attrs


def softmax_rows(b, log: bool, dt, out, src, n_rows, n, lanes: int) -> None:
    """softmax (or log_softmax) of ``n_rows`` contiguous rows of ``n`` elements, three
    passes over each row in steps of ``lanes`` with a masked last step: the max, the
    sum of exponentials, the write. As lowerings' scalar form: a non-finite max is
    taken as 0, so rows of infinities give NaN like numpy's."""
    from . import vecmath_lib
    dt = np.dtype(dt)
    scalar_ty = constant(dt, 0).type
    vty = ir.VectorType(scalar_ty, lanes)
    hints = no_vectorizer_loop(b.module)
    with for_range(b, n_rows, name="o", loop_metadata=hints) as o:
        row = _Row(b, vty, dt, b.mul(o, n), n, hints)
        m = row.fold("max", src, lambda x: x)
        finite = b.fcmp_ordered("<", _fabs(b, m), constant(dt, np.inf))
        m = b.select(finite, m, constant(dt, 0.0))
        m_vec = row.splat(m)
        s = row.fold("sum", src, lambda x: vecmath_lib.call(b, "exp", [b.fsub(x, m_vec)], dt))
        if log:
            lse = row.splat(b.fadd(vecmath_lib.call(b, "log", [s], dt), m))
            row.map(src, out, lambda x: b.fsub(x, lse))
        else:
            inv = row.splat(b.fdiv(constant(dt, 1.0), s))
            row.map(src, out, lambda x: b.fmul(
                vecmath_lib.call(b, "exp", [b.fsub(x, m_vec)], dt), inv))


def _fabs(b, v):
    from .irutil import call_intrinsic
    return call_intrinsic(b, "llvm.fabs", [v])


class _Row:
    """Passes over one contiguous row [base, base + n) of a typed array, L lanes at a
    time, the last step masked."""

    def __init__(self, b, vty, dt, base, n, hints):
        self.b, self.vty, self.dt, self.base, self.n, self.hints = b, vty, dt, base, n, hints
        self.L = vty.count
        self.full_end = b.and_(n, i64(-self.L))

    def splat(self, v):
        return _splat(self.b, v, self.vty)

    def _ptr(self, arr, i):
        b = self.b
        return b.bitcast(b.gep(arr, [b.add(self.base, i)], inbounds=True),
                         self.vty.as_pointer())

    def _mask(self, i):
        return _first_lanes(self.b, self.b.sub(self.n, i), self.L)

    def _load(self, arr, i, mask):
        return _vload(self.b, self._ptr(arr, i), self.vty, self.dt, mask)

    def _steps(self, step):
        """``step(i, mask)`` for every whole vector (mask None), then for the rest."""
        b = self.b
        with for_range(b, self.full_end, name="v", loop_metadata=self.hints,
                       step=self.L) as i:
            step(i, None)
        with if_then(b, b.icmp_signed("<", self.full_end, self.n), name="v.tail"):
            step(self.full_end, self._mask(self.full_end))

    def fold(self, kind, arr, value):
        """The ``kind`` reduction of ``value(x)`` over the row, as a scalar."""
        b = self.b
        ident = splat(self.vty, _identity_scalar(kind, self.dt))
        with b.goto_entry_block():       # promoted to a register by the light pipeline
            slot = b.alloca(self.vty)
        b.store(ident, slot)

        def step(i, mask):
            v = value(self._load(arr, i, mask))
            if mask is not None:
                v = b.select(mask, v, ident)
            b.store(_combine(b, kind, b.load(slot), v, self.dt), slot)
        self._steps(step)
        return _fold_lanes(b, kind, b.load(slot), self.dt)

    def map(self, arr, dst, value):
        def step(i, mask):
            _vstore(self.b, value(self._load(arr, i, mask)), self._ptr(dst, i), self.dt, mask)
        self._steps(step)


def _identity_scalar(kind, dt):
    from .kernels import identity
    return identity(kind, dt)


def _splat(b, v, ty):
    """A register of type ``ty`` with ``v`` in every lane."""
    one = b.insert_element(ir.Constant(ty, ir.Undefined), v, ir.Constant(I32, 0))
    return b.shuffle_vector(one, ir.Constant(ty, ir.Undefined),
                            ir.Constant(ir.VectorType(I32, ty.count), [0] * ty.count))


def _vload(b, ptr, vty, dt, mask):
    """A vector load, masked (zeros in the masked-off lanes) when ``mask`` is given."""
    if mask is None:
        return b.load(ptr, align=dt.itemsize)
    return b.call(_masked(b.module, "load", vty),
                  [ptr, ir.Constant(I32, dt.itemsize), mask, splat(vty, constant(dt, 0.0))])


def _vstore(b, v, ptr, dt, mask):
    if mask is None:
        b.store(v, ptr, align=dt.itemsize)
    else:
        b.call(_masked(b.module, "store", v.type), [v, ptr, ir.Constant(I32, dt.itemsize), mask])


def _first_lanes(b, rem, lanes: int):
    """The mask of a vector's first ``rem`` (i64, below ``lanes``) lanes."""
    iota = _iota(lanes)
    return b.icmp_signed("<", iota, _splat(b, b.trunc(rem, I32), iota.type))


def _fold_lanes(b, kind, v, dt):
    """The lanes of ``v`` combined pairwise, halves first: log2(L) vector steps."""
    n = v.type.count
    while n > 1:
        half = n // 2
        undef = ir.Constant(v.type, ir.Undefined)
        low = b.shuffle_vector(v, undef, ir.Constant(ir.VectorType(I32, half), list(range(half))))
        high = b.shuffle_vector(v, undef, ir.Constant(ir.VectorType(I32, half),
                                                      list(range(half, n))))
        v = _combine(b, kind, low, high, dt)
        n = half
    return b.extract_element(v, ir.Constant(I32, 0))


_IOTAS: dict = {}


def _iota(lanes: int) -> ir.Constant:
    """<0, 1, ..., lanes-1> as i32, made (and formatted) once."""
    c = _IOTAS.get(lanes)
    if c is None:
        ty = ir.VectorType(I32, lanes)
        c = _IOTAS[lanes] = ir.Constant(ty, list(range(lanes)))
        c.get_reference()
    return c


def _combine(b, kind, acc, v, dt):
    from .kernels import _combine as combine
    return combine(b, kind, acc, v, dt)


def _masked(module, what, vty):
    """The declaration of ``llvm.masked.load``/``llvm.masked.store`` on ``vty``."""
    elem = "f32" if vty.element == ir.FloatType() else "f64"
    name = f"llvm.masked.{what}.v{vty.count}{elem}.p0"
    fn = module.globals.get(name)
    if fn is not None:
        return fn
    mask = ir.VectorType(ir.IntType(1), vty.count)
    if what == "load":
        fnty = ir.FunctionType(vty, [vty.as_pointer(), I32, mask, vty])
    else:
        fnty = ir.FunctionType(ir.VoidType(), [vty, vty.as_pointer(), I32, mask])
    return ir.Function(module, fnty, name=name)
