"""Memory plan: where every value of a Program lives during one call.

Inputs, shared variables, constants and outputs live in buffers the runtime passes in;
every other value gets a slot in one scratch arena. Slots are reused once their value
is dead (liveness over the static schedule); a view op (reshape) shares its input's
buffer. A lowering may also ask for a temporary workspace (im2col columns) that lives
only while its node runs. Sizes may be symbolic, so slot sizes and offsets are dims,
and the peak scratch size is known, as an expression of the symbolic dims, before the
function runs.
"""
from __future__ import annotations

import functools

import numpy as np

from symgraph import dims as D
from symgraph.ops.leaves import Placeholder, Shared, Constant, DimValue

ALIGN = 64


class MemoryPlan:
    """Where each value lives (a plain class: a dataclass costs about a millisecond to
    create at import, on every cold compile)."""

    def __init__(self, home: dict, slots: list, offsets: list, scratch_bytes,
                 output_copies=None, steps=None, temps=None, inplace=None, groups=None):
        self.home = home                    # nid -> ("arg", k) or ("scratch", slot)
        self.slots = slots                  # slot sizes in bytes (dims)
        self.offsets = offsets              # slot offsets in bytes (dims)
        self.scratch_bytes = scratch_bytes  # total (dim)
        self.output_copies = output_copies if output_copies is not None else []  # (index, nid)
        self.steps = steps if steps is not None else []          # nids to lower, in order
        self.temps = temps if temps is not None else {}          # nid -> slot of its workspace
        self.inplace = inplace if inplace is not None else set()  # nodes written over an input
        self.groups = groups if groups is not None else {}        # nid -> its sibling group

    def __repr__(self):
        return (f"MemoryPlan({len(self.steps)} steps, {len(self.slots)} slots, "
                f"scratch {self.scratch_bytes})")

    def describe(self, env=None) -> str:
        total = D.evaluate(self.scratch_bytes, env) if env is not None else self.scratch_bytes
        return f"{len(self.slots)} scratch slots, {total} bytes at peak"


@functools.lru_cache(maxsize=4096)
def nbytes(type_) -> object:
    """The byte size of a value of this type (a dim); remembered, as graphs repeat a few
    types many times and symbolic products are slow to build."""
    n = D.product(type_.shape)
    return D.mul(n, np.dtype(type_.dtype).itemsize)


@functools.lru_cache(maxsize=4096)
def _aligned(size):
    if type(size) is int:
        return -(-size // ALIGN) * ALIGN
    if D.mod(size, ALIGN) == 0:     # batch * 2048 bytes: aligned already, no division
        return size
    return D.mul(D.floordiv(D.add(size, ALIGN - 1), ALIGN), ALIGN)


def plan_memory(program, arg_index: dict, is_view, temp_bytes=None,
                can_overwrite=None, groups=None, may_fail=None) -> MemoryPlan:
    """``arg_index`` maps leaf and output nids to argument positions; ``is_view(op)`` says
    whether a node reuses its first input's buffer; ``temp_bytes(nid)`` (optional) is the
    size of the workspace a node needs while it runs (0 or None: none);
    ``can_overwrite(op)`` says whether a node may write its result over an input of its
    own shape that dies there (an elementwise kernel reads each element before writing
    it at the same index), which then computes in place. ``groups`` (nid -> tuple of
    nids, see horizontal.py) are nodes computed by one loop: they run as one step, with
    all their outputs live at once and never in place. ``may_fail(op)``: whether a step
    may return an error (then no update before it goes straight into its shared
    variable: see _updates_in_place)."""
    g = program.graph
    order = program.order()
    if groups:
        from .horizontal import grouped_order
        order, groups = grouped_order(program, groups, order)
    groups = groups or {}
    outputs = list(program.outputs)
    first_output = {}
    for k, nid in enumerate(outputs):
        first_output.setdefault(nid, k)

    home: dict = {}
    base: dict = {}  # nid -> nid whose buffer it uses
    steps = []
    for nid in order:
        op = g.op(nid)
        if isinstance(op, (Placeholder, Shared, Constant)):
            home[nid] = ("arg", arg_index[nid])
            base[nid] = nid
        elif is_view(op):
            base[nid] = base[g.inputs(nid)[0]]
            steps.append(nid)
        else:
            base[nid] = nid
            steps.append(nid)

    # an output gets its own buffer unless its value lives elsewhere (a leaf, a view,
    # or an output listed twice): those are copied at the end.
    copies = []
    for k, nid in enumerate(outputs):
        if base[nid] == nid and nid not in home and first_output[nid] == k \
                and not isinstance(g.op(nid), DimValue):
            home[nid] = ("arg", arg_index[("out", k)])
        else:
            copies.append((k, nid))

    # a stage is one step, or a group's members (adjacent in ``steps``) run together
    stages, stage_of = [], {}
    for nid in steps:
        grp = groups.get(nid)
        if grp is None or grp[0] == nid:
            stages.append([])
        stages[-1].append(nid)
        stage_of[nid] = len(stages) - 1
    last = {}
    for nid in steps:
        for i in g.inputs(nid):
            last[base[i]] = stage_of[nid]
    keep_alive = {base[v] for _, v in program.updates} | {base[n] for _, n in copies}
    into_shared = _updates_in_place(program, base, home, copies, stages, stage_of, last,
                                    can_overwrite, may_fail)

    slots, free, temps, inplace = [], [], {}, set()
    for step, stage in enumerate(stages):
        donors = set()
        for nid in stage:
            donor = None
            if nid in into_shared:
                home[nid] = home[into_shared[nid]]
                inplace.add(nid)
            elif base[nid] == nid and nid not in home:
                if can_overwrite is not None and can_overwrite(g.op(nid)) and len(stage) == 1:
                    donor = _donor(g, nid, base, home, last, keep_alive, step)
                if donor is not None:
                    home[nid] = home[donor]
                    inplace.add(nid)
                    donors.add(donor)
                else:
                    size = _aligned(nbytes(g.type(nid)))
                    home[nid] = ("scratch", _take_slot(free, slots, size))
            tsize = temp_bytes(nid) if temp_bytes is not None else None
            if tsize is not None and not (type(tsize) is int and tsize == 0):
                # taken before the inputs are freed: overlaps neither inputs nor output
                temps[nid] = _take_slot(free, slots, _aligned(tsize))
        for b in {base[i] for nid in stage for i in g.inputs(nid)}:
            if b in donors:
                continue  # its slot now holds this node's value
            if last.get(b) == step and b not in keep_alive and home.get(b, ("arg",))[0] == "scratch":
                free.append(home[b][1])
        for nid in stage:
            if base[nid] == nid and nid not in last and nid not in keep_alive \
                    and home[nid][0] == "scratch":
                free.append(home[nid][1])  # computed but never read (kept for its side effects)
            if nid in temps:
                free.append(temps[nid])
    for nid in order:
        if nid not in home:
            home[nid] = home[base[nid]]

    offsets, total = [], 0
    for s in slots:
        offsets.append(total)
        total = D.add(total, s)
    return MemoryPlan(home, slots, offsets, total, copies, steps, temps, inplace, groups)


def _updates_in_place(program, base, home, copies, stages, stage_of, last, can_overwrite,
                      may_fail) -> dict:
    """{new value: its shared variable} for the updates whose new value is computed
    straight into the shared variable's buffer instead of scratch, then copied at the
    end (an MLP step's SGD updates: 2 MB of copies, 3 % of its time at batch 128).

    Safe when the value is an elementwise kernel's (read element k, write element k)
    of the variable's shape, alone in its step; no later step, nor the copy of an
    output, reads the variable's old value (Theano's semantics: every update from the
    old values); no view of it is read by that kernel; and no step from there on may
    fail (a failing call leaves every shared variable as it was)."""
    if can_overwrite is None or may_fail is None:
        return {}
    g = program.graph
    copied = {base[n] for _, n in copies}
    fallible = [any(may_fail(g.op(n)) for n in stage) for stage in stages]
    out = {}
    for s, v in program.updates:
        if v == s or base[v] != v or v in home or base[s] != s or s in copied \
                or v not in stage_of or len(stages[stage_of[v]]) != 1 \
                or not can_overwrite(g.op(v)):
            continue
        ts, tv = g.type(s), g.type(v)
        if tuple(ts.shape) != tuple(tv.shape) or ts.dtype.itemsize != tv.dtype.itemsize:
            continue
        step = stage_of[v]
        if last.get(s, -1) > step or any(fallible[step:]):
            continue
        if any(base[i] == s and i != s for i in g.inputs(v)):
            continue
        out[v] = s
    return out


def _donor(g, nid, base, home, last, keep_alive, step):
    """An input whose buffer ``nid`` may overwrite: scratch, dead after this step, of
    the same shape and item size, and not read through any other alias here."""
    t = g.type(nid)
    ins = g.inputs(nid)
    for i in ins:
        b = base[i]
        if b != i or home.get(b, ("arg",))[0] != "scratch" or last.get(b) != step \
                or b in keep_alive:
            continue
        ti = g.type(i)
        if tuple(ti.shape) != tuple(t.shape) or ti.dtype.itemsize != t.dtype.itemsize:
            continue
        if any(base[j] == b and j != i for j in ins):
            continue
        return b
    return None


def _take_slot(free, slots, size):
    """A free slot of the same size (or, statically, the smallest big enough), else a new one."""
    best = None
    for k in free:
        s = slots[k]
        if s == size:
            best = k
            break
        if type(s) is int and type(size) is int and s >= size and (
                best is None or slots[best] > s):
            best = k
    if best is not None:
        free.remove(best)
        return best
    slots.append(size)
    return len(slots) - 1
