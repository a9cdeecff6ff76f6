"""Code generation: a Program becomes ONE native entry point.

``int32 sg_entry(ptr args, ptr dims)``: ``args`` holds the buffer pointers in the
order of the manifest (inputs, shared variables, constants, outputs, scratch) and
``dims`` the values of the symbolic dims. Each node is lowered by the entry of the
lowering table for its op class; no Python runs between ops. A non-zero return is
an index into the manifest's error messages (e.g. an index out of range).
"""
from __future__ import annotations

import itertools

from llvmlite import ir

from symgraph import dims as D
from symgraph.errors import UnsupportedError
from symgraph.op import format_source
from symgraph.ops.elementwise import Elementwise
from symgraph.ops.leaves import Shared, Constant
from .fused import Fused
from .gcpause import paused_gc, release
from .irprint import module_text, module_texts
from .irutil import I32, I64, PTR, DimEmitter, i64, if_then, memcpy
from .memory import plan_memory, nbytes
from .parallel import DISPATCH
from .pyentry import PY_ENTRY

ENTRY = "sg_entry"
LOWERINGS: dict = {}
VIEW_OPS: set = set()
TEMPS: dict = {}


def lowers(*classes):
    """Register ``fn(ctx, nid)`` as the lowering of these op classes."""
    def deco(fn):
        for c in classes:
            LOWERINGS[c] = fn
        return fn
    return deco


def lowering_for(op):
    for cls in type(op).__mro__:
        fn = LOWERINGS.get(cls)
        if fn is not None:
            return fn
    return None


def temp_bytes(*classes):
    """Register ``fn(op, in_types, out_type) -> dim``: the workspace (bytes) the lowering of
    these op classes needs while its node runs; the lowering reaches it as ``ctx.temp(nid)``."""
    def deco(fn):
        for c in classes:
            TEMPS[c] = fn
        return fn
    return deco


def _temp_size(graph, nid):
    op = graph.op(nid)
    for cls in type(op).__mro__:
        fn = TEMPS.get(cls)
        if fn is not None:
            return fn(op, [graph.type(i) for i in graph.inputs(nid)], graph.type(nid))
    return None


class LowerContext:
    """What a lowering sees: the graph, buffers, dims and a way to report errors."""

    def __init__(self, module, builder, program, plan, args_ptr, dims_ptr, symbols, arg_dtypes):
        self.module = module
        self.builder = builder
        self.program = program
        self.graph = program.graph
        self.plan = plan
        self.args_ptr = args_ptr
        self.dim = DimEmitter(builder, dims_ptr, {s: k for k, s in enumerate(symbols)},
                              at_entry=self._at_entry)
        self.errors: list = []
        self._names = itertools.count()
        self._scratch = None
        self._ptr_cache: dict = {}
        self.blas_symbols: set = set()   # external symbols (BLAS, libgomp) by name
        self.kernel_cache: dict = {}     # identical kernels are emitted once
        self.exit_block = None
        self._in_prologue = False
        self.threads_symbol = None       # the module's thread-count word (parallel.py)
        self.light = None                # where text kernels of a big module go (build.py)
        self.early = None                # the early part of a small one (early_part.py)

    def begin_function(self, fn) -> None:
        """Lower into ``fn`` (``i32 (ptr args, ptr dims)``: the entry or a segment of it)
        from now on: a fresh prologue, and no value of another function reused; its
        body is written as kernels are (kernels.body_builder)."""
        from .kernels import body_builder
        b, args = body_builder(fn)
        entry = b.block
        body = b.append_basic_block("body")
        self.builder = b
        self.args_ptr = args[0]
        self.dim = DimEmitter(b, b.bitcast(args[1], I64.as_pointer()), self.dim.symbol_index,
                              at_entry=self._at_entry)
        self._scratch = None
        self._ptr_cache = {}
        self.exit_block = None
        self.entry_block = entry
        self.prologue_end = b.branch(body)
        b.position_at_end(body)

    def name(self, prefix: str) -> str:
        return f"{prefix}.{next(self._names)}"

    def arg(self, k: int):
        b = self.builder
        slot = b.gep(b.bitcast(self.args_ptr, PTR.as_pointer()), [i64(k)], inbounds=True)
        return b.load(slot, name=f"arg{k}")

    def buffer(self, nid: int):
        """An i8* to node ``nid``'s value."""
        if nid in self._ptr_cache:
            return self._ptr_cache[nid]
        kind, k = self.plan.home[nid]
        b = self.builder
        if kind == "arg":
            p = self._at_entry(lambda: self.arg(k))
        else:
            off = self.plan.offsets[k]
            p = self._at_entry(lambda: b.gep(self.scratch(), [self.dim(off)], inbounds=True))
        self._ptr_cache[nid] = p
        return p

    def _at_entry(self, make):
        """Emit address computations once, in the prologue, so every block can use them."""
        if self._in_prologue:
            return make()
        b = self.builder
        saved = b.block
        b.position_before(self.prologue_end)
        self._in_prologue = True
        try:
            v = make()
        finally:
            self._in_prologue = False
            b.position_at_end(saved)
        return v

    def temp(self, nid: int):
        """An i8* to node ``nid``'s workspace (sized by its ``temp_bytes`` entry)."""
        off = self.plan.offsets[self.plan.temps[nid]]
        b = self.builder
        return self._at_entry(lambda: b.gep(self.scratch(), [self.dim(off)], inbounds=True))

    def scratch(self):
        if self._scratch is None:
            self._scratch = self.arg(self.scratch_arg)
        return self._scratch

    def type(self, nid):
        return self.graph.type(nid)

    def inputs(self, nid):
        return self.graph.inputs(nid)

    def fail_if(self, pred, message: str) -> None:
        """Return error ``message`` from the entry when ``pred`` (i1) holds."""
        self.errors.append(message)
        code = len(self.errors)
        with if_then(self.builder, pred, name="check"):
            self.builder.ret(ir.Constant(I32, code))

    def node_where(self, nid) -> str:
        node = self.graph.node(nid)
        return f"{node['op'].name} (node %{nid}, created at {format_source(node['source'])})"


def compile_program(program, *, name="sg", light=None, early=None):
    """Lower ``program`` to an LLVM module; returns (module IR text, layout dict).
    ``light`` (a light_stream.LightStream): kernels in vector form of a big module go
    to it as they are written; the text it has left to compile is then
    ``light.main_text``. ``early`` (an early_part.EarlyPart): a small module's first
    kernels go to it; the text left is then ``early.rest_text``."""
    with paused_gc():
        module, layout = lower_program(program, name=name, light=light, early=early)
        if light is not None and light.started:
            light.flush(last=True)
            text, light.main_text = module_texts(module, light.shipped)
        elif early is not None and early.started:
            text, early.rest_text = module_texts(module, early.shipped)
        else:
            text = module_text(module)
        release(module)
    return text, layout


def lower_program(program, *, name="sg", light=None, early=None):
    """``program`` as an llvmlite.ir Module; returns (module, layout dict)."""
    from . import lowerings  # noqa: F401  (fills the lowering table)
    program = _legalize(_materialize_leaf_updates(program))
    g = program.graph
    order = program.order()
    inputs = list(program.inputs)
    shared = [nid for nid in order if isinstance(g.op(nid), Shared)]
    consts = [nid for nid in order if isinstance(g.op(nid), Constant)]
    arg_index = {}
    for k, nid in enumerate(inputs + shared + consts):
        arg_index[nid] = k
    n_leaf = len(arg_index)
    for k in range(len(program.outputs)):
        arg_index[("out", k)] = n_leaf + k
    scratch_arg = n_leaf + len(program.outputs)

    for nid in order:
        op = g.op(nid)
        if not op.is_leaf and not isinstance(op, Constant) and lowering_for(op) is None \
                and type(op) not in VIEW_OPS:
            raise UnsupportedError(f"no native lowering for op {op.name} "
                                   f"(node %{nid}, created at "
                                   f"{format_source(g.node(nid)['source'])}); use "
                                   "mode='reference' for this graph")
    from .horizontal import sibling_groups
    plan = plan_memory(program, arg_index, lambda op: type(op) in VIEW_OPS,
                       lambda nid: _temp_size(g, nid), can_overwrite=_elementwise_kernel,
                       groups=sibling_groups(program), may_fail=_may_fail)
    symbols = sorted({s for nid in order for d in g.type(nid).shape for s in D.symbols(d)}
                     | {s for nid in inputs for d in g.type(nid).shape for s in D.symbols(d)})

    module = ir.Module(name=name)
    entry_type = ir.FunctionType(I32, [PTR, PTR])
    fn = ir.Function(module, entry_type, name=ENTRY)
    fn.args[0].name, fn.args[1].name = "args", "dims"
    _mark_glue(fn)
    ctx = LowerContext(module, None, program, plan, fn.args[0], None, symbols, None)
    ctx.scratch_arg = scratch_arg
    ctx.light = light
    ctx.early = early
    chunks = segments(plan.steps)
    if len(chunks) == 1:
        ctx.begin_function(fn)
        _lower_steps(ctx, chunks[0])
    else:
        segs = []
        for k, steps in enumerate(chunks):
            seg = ir.Function(module, entry_type, name=f"{SEGMENT}.{k}")
            seg.linkage = "internal"
            seg.attributes.add("noinline")
            # straight-line glue around kernel calls: LLVM's pipeline on it cost more
            # than a tenth of a 1,000-op graph's LLVM time, to save nanoseconds a call
            seg.attributes.add("optnone")
            seg.args[0].name, seg.args[1].name = "args", "dims"
            ctx.begin_function(seg)
            _lower_steps(ctx, steps)
            ctx.builder.ret(ir.Constant(I32, 0))
            segs.append(seg)
        ctx.begin_function(fn)
        b = ctx.builder
        for seg in segs:  # a segment returns its error code: the entry returns it
            code = b.call(seg, list(fn.args), name="code")
            with if_then(b, b.icmp_signed("!=", code, ir.Constant(I32, 0)), name="failed"):
                b.ret(code)
    b = ctx.builder
    for k, nid in plan.output_copies:
        _copy(ctx, ctx.buffer(nid), ctx.arg(arg_index[("out", k)]), nbytes(g.type(nid)))
    for s, v in program.updates:
        if v != s and plan.home[v] != plan.home[s]:   # else computed in place
            _copy(ctx, ctx.buffer(v), ctx.buffer(s), nbytes(g.type(s)))
    b.ret(ir.Constant(I32, 0))
    _emit_object_entry(module, fn, n_leaf - len(consts), len(consts), len(program.outputs))
    from .pyentry import emit_for_program
    python_entry = emit_for_program(module, fn, program, inputs, shared, len(consts), symbols,
                                    plan.scratch_bytes)

    layout = {
        "inputs": inputs, "shared": shared, "constants": consts,
        "outputs": list(program.outputs), "symbols": symbols,
        "scratch_bytes": plan.scratch_bytes, "errors": list(ctx.errors),
        "plan": plan, "blas": sorted(ctx.blas_symbols), "python_entry": python_entry,
        "threads_symbol": ctx.threads_symbol,
    }
    # the context is a cycle (its DimEmitter holds its bound method) holding every
    # kernel: emptied now, it is freed now, not by a collection (gcpause.py)
    ctx.__dict__.clear()
    return module, layout


# A program of SEGMENTED_FROM steps or more is lowered in segments: functions
# ``sg.seg.<k>(args, dims)`` of at most SEGMENT_STEPS steps (at least MIN_SEGMENTS of
# them), which the entry calls in order. A module in segments can be compiled in
# parts, in parallel (compiler/partition.py), and the entry of a 10,000-op graph is
# not one function of thousands of lines.
SEGMENT = "sg.seg"
# what partition.separate_glue takes out of a module for the fast code generator:
# the segments, the parallel dispatchers and the entry points (all optnone)
GLUE = (SEGMENT, DISPATCH)
SEGMENT_STEPS = 32
SEGMENTED_FROM = 64
MIN_SEGMENTS = 8


def _mark_glue(fn) -> None:
    """An entry point is straight-line code around kernel calls, run once per call:
    the O3 pipeline and code generator took 20 ms on an MLP step's three (of about
    200 ms of LLVM) to save nanoseconds per call; they go to the fast code generator
    (partition.separate_glue)."""
    fn.attributes.add("noinline")
    fn.attributes.add("optnone")


def segments(steps) -> list:
    """``steps`` in the chunks the entry calls as segments (one chunk: no segments)."""
    if len(steps) < SEGMENTED_FROM:
        return [list(steps)]
    size = max(1, min(SEGMENT_STEPS, -(-len(steps) // MIN_SEGMENTS)))
    return [list(steps[k:k + size]) for k in range(0, len(steps), size)]


def _lower_steps(ctx, steps) -> None:
    g = ctx.graph
    early = ctx.early
    for nid in steps:
        lower = lowering_for(g.op(nid))
        if lower is not None:
            lower(ctx, nid)
            if early is not None:
                early.after_step(ctx, nid)


ARRAY_ENTRY = "sg_call_arrays"
GLUE_ENTRIES = (ENTRY, ARRAY_ENTRY, PY_ENTRY)   # glue too (_mark_glue)
ARRAY_DATA_OFFSET = 16  # offsetof(PyArrayObject, data) in CPython's numpy


def _emit_object_entry(module, entry, n_arrays, n_consts, n_outputs):
    """``int32 sg_call_arrays(PyArrayObject* a0.., ptr consts, ptr scratch, ptr dims)``:
    the fast call path. It reads each array's data pointer itself, so the caller passes
    the ndarrays as they are; the runtime uses it only after checking the offset."""
    n = n_arrays + n_outputs
    fn = ir.Function(module, ir.FunctionType(I32, [PTR] * (n + 3)), name=ARRAY_ENTRY)
    _mark_glue(fn)
    from .kernels import body_builder
    b, params = body_builder(fn)
    table = b.alloca(ir.ArrayType(PTR, n_arrays + n_consts + n_outputs + 1), name="args")
    consts, scratch, dims = params[n:]

    def put(k, value):
        b.store(value, b.gep(table, [i64(0), i64(k)], inbounds=True))

    def data_of(arr):
        field = b.bitcast(b.gep(arr, [i64(ARRAY_DATA_OFFSET)], inbounds=True), PTR.as_pointer())
        return b.load(field)

    for k in range(n_arrays):
        put(k, data_of(params[k]))
    cptrs = b.bitcast(consts, PTR.as_pointer())
    for j in range(n_consts):
        put(n_arrays + j, b.load(b.gep(cptrs, [i64(j)], inbounds=True)))
    for j in range(n_outputs):
        put(n_arrays + n_consts + j, data_of(params[n_arrays + j]))
    put(n_arrays + n_consts + n_outputs, scratch)
    b.ret(b.call(entry, [b.bitcast(table, PTR), dims]))


def _copy(ctx, src, dst, size):
    memcpy(ctx.builder, dst, src, ctx.dim(size))


def _materialize_leaf_updates(program):
    """An update whose new value is another leaf (``a <- b``) copies it into scratch
    first, so no shared buffer is overwritten before every update has read it."""
    from symgraph.ops.elementwise import StopGradient
    g = program.graph
    leafy = [(s, v) for s, v in program.updates
             if v != s and (g.op(v).is_leaf or type(g.op(v)) in VIEW_OPS)]
    if not leafy:
        return program
    program = program.copy()
    g = program.graph
    new = []
    for s, v in program.updates:
        if (s, v) in leafy:
            v = g.add_node(StopGradient(), (v,), g.type(v), source=g.node(v)["source"])
        new.append((s, v))
    program.updates = new
    return program


def _may_fail(op) -> bool:
    """Whether a step of ``op`` may return an error code (an index out of range, a max
    of an empty axis, ...): anything but elementwise kernels, sums and products,
    matrix products and views."""
    from symgraph.ops.linalg import MatMul
    from symgraph.ops import reductions as R
    if isinstance(op, Fused):
        return op.reduce not in (None, "sum", "prod")
    return not isinstance(op, (Elementwise, MatMul, R.Sum, R.Prod)) and type(op) not in VIEW_OPS


def _elementwise_kernel(op) -> bool:
    """Ops lowered as one elementwise loop (read element k, write element k)."""
    return isinstance(op, Elementwise) or (isinstance(op, Fused) and op.reduce is None)


def _legalize(program):
    """Insert the casts some lowerings need: matmul operands in the result dtype."""
    from symgraph.ops.linalg import MatMul
    from symgraph.ops.elementwise import Cast
    g = program.graph
    todo = [nid for nid in program.order() if isinstance(g.op(nid), MatMul)
            and any(g.type(i).dtype != g.type(nid).dtype for i in g.inputs(nid))]
    if not todo:
        return program
    program = program.copy()
    g = program.graph
    for nid in todo:
        dt = g.type(nid).dtype
        new_inputs = []
        for i in g.inputs(nid):
            if g.type(i).dtype != dt:
                i = g.add_node(Cast(dtype=dt), (i,), g.type(i).with_dtype(dt),
                               source=g.node(nid)["source"])
            new_inputs.append(i)
        g.set_inputs(nid, new_inputs)
    return program
