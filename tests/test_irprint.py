"""The fast module printer (compiler/irprint.py) writes exactly llvmlite's ``str(module)``.

Every program is lowered once and printed by both; the corpus is the op table (values
in every dtype of the case, gradients in its first), whole models (MLP, CNN, GCN with Adam, a scalar
expression), a synthetic graph long enough to be lowered in segments, random programs
of the rewrite fuzzer, and hand-built modules with what symgraph never emits (escaped
names, attributes, cached text, instruction classes the printer leaves to llvmlite).
"""
import contextlib
import gc
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings
from llvmlite import ir

import symgraph as sg
from symgraph.compiler.codegen import compile_program, lower_program
from symgraph.compiler.gcpause import paused_gc
from symgraph.compiler import irprint, irtext, kernels
from symgraph.compiler.irprint import COVERED, module_text
from symgraph.compiler.irtext import text_function
from symgraph.errors import SymgraphError
from .opinfo import all_cases
from .test_rewrite_fuzz import _build, programs
from .test_rewrite_models import cnn_step, expression, mlp_step


def _assert_same_text(fn):
    """Lower ``fn``'s program and print it both ways (the fast printer first, so it sees
    a module no printing has touched). The kernels in vector form are written as text
    (compiler/irtext.py) for the fast printer, and by llvmlite's builder for
    ``str(module)``: so this also checks that the text is llvmlite's, byte for byte."""
    module, _ = lower_program(fn.optimized)
    fast = module_text(module)
    with _llvmlite_kernels():
        slow = str(lower_program(fn.optimized)[0])
    if fast != slow:
        for k, (a, b) in enumerate(zip(fast.splitlines(), slow.splitlines())):
            assert a == b, f"line {k + 1} differs"
        assert fast == slow
    return fast


@contextlib.contextmanager
def _llvmlite_kernels():
    kernels.TEXT_KERNELS = False
    try:
        yield
    finally:
        kernels.TEXT_KERNELS = True


def _function(inputs, outputs, updates=()):
    return sg.function(inputs, outputs, updates=list(updates), mode="reference")


# -- the op table -----------------------------------------------------------------------
CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_op_table_prints_as_llvmlite(case):
    for dtype in case.dtypes:
        arrays = case.draw(np.random.default_rng(0), case.shapes[0], dtype)
        with sg.Graph():
            xs = [sg.placeholder(shape=a.shape, dtype=a.dtype, name=f"x{i}")
                  for i, a in enumerate(arrays)]
            _assert_same_text(_function(xs, case.build(*xs)))
        positions = case.grad_positions(arrays)
        if positions and dtype == case.dtypes[0]:     # gradients: in one dtype
            with sg.Graph():
                xs = [sg.placeholder(shape=a.shape, dtype=a.dtype, name=f"x{i}")
                      for i, a in enumerate(arrays)]
                out = case.build(*xs)
                proj = sg.constant(np.random.default_rng(0).standard_normal(tuple(out.shape))
                                   .astype(out.dtype))
                grads = sg.grad(sg.sum(out * proj), [xs[j] for j in positions])
                _assert_same_text(_function(xs, grads))


# -- models -----------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [None, 64])
@pytest.mark.parametrize("model", [mlp_step, cnn_step])
def test_training_steps_print_as_llvmlite(model, batch):
    with sg.Graph():
        inputs, loss, updates = model(batch)
        _assert_same_text(_function(inputs, loss, updates))


def test_expression_and_gradients_print_as_llvmlite():
    with sg.Graph():
        inputs, outputs, updates = expression()
        _assert_same_text(_function(inputs, outputs, updates))


def test_gcn_adam_step_prints_as_llvmlite():
    """Two graph convolutions, log-softmax cross-entropy, Adam updates of shared state."""
    rng = np.random.default_rng(0)
    n, hidden = 12, 8
    a = (rng.random((n, n)) < 0.3).astype(np.float32) + np.eye(n, dtype=np.float32)
    with sg.Graph():
        adj = sg.constant(a / a.sum(axis=1, keepdims=True))
        feats = sg.placeholder(shape=(n, None), name="feats")
        targets = sg.constant(np.eye(n, 2, dtype=np.float32))
        w1 = sg.shared(rng.standard_normal((5, hidden)).astype(np.float32), name="w1")
        w2 = sg.shared(rng.standard_normal((hidden, 2)).astype(np.float32), name="w2")
        h = sg.relu(adj @ (feats @ w1))
        loss = -sg.sum(targets * sg.nn.log_softmax(adj @ (h @ w2), axis=1))
        t = sg.shared(np.float32(0), name="t")
        updates = [(t, t + 1)]
        for p, g in zip((w1, w2), sg.grad(loss, [w1, w2])):
            m = sg.shared(np.zeros(p.shape, np.float32))
            v = sg.shared(np.zeros(p.shape, np.float32))
            m1, v1 = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
            step = m1 / (1 - 0.9 ** (t + 1)) / (sg.sqrt(v1 / (1 - 0.999 ** (t + 1))) + 1e-8)
            updates += [(m, m1), (v, v1), (p, p - 0.01 * step)]
        _assert_same_text(_function([feats], loss, updates))


def _synthetic(n_ops, seed=0):
    """A random chain of elementwise ops and matmuls over a symbolic batch, ending in a sum."""
    rng = np.random.default_rng(seed)
    x = sg.placeholder(shape=("batch", 16), name="x")
    ws = [sg.shared(rng.standard_normal((16, 16)).astype(np.float32) / 16) for _ in range(3)]
    unary = (sg.tanh, sg.sigmoid, sg.relu, sg.sin, lambda t: sg.exp(-sg.abs(t)))
    binary = (lambda p, q: p + q, lambda p, q: p * q, lambda p, q: p - q, sg.maximum)
    pool = [x]
    for _ in range(n_ops):
        k, a = rng.integers(8), pool[-1]
        if k == 0:
            t = a @ ws[rng.integers(len(ws))]
        elif k < 4:
            t = unary[rng.integers(len(unary))](a)
        else:
            t = binary[rng.integers(len(binary))](a, pool[-1 - rng.integers(min(len(pool), 8))])
        pool.append(t)
    return x, sg.sum(pool[-1]) + sg.sum(pool[len(pool) // 2], axis=0)


def test_synthetic_graph_in_segments_prints_as_llvmlite():
    with sg.Graph():
        x, out = _synthetic(300)
        text = _assert_same_text(_function([x], out))
    assert "sg.seg.1" in text      # long enough for an entry in segments
    assert compile_program(_function([x], out).optimized)[0] == text
    # its segments and entry were written as text, and compared above
    module, _ = lower_program(_function([x], out).optimized)
    segs = [f for name, f in module.globals.items() if name.startswith("sg.seg.")]
    assert segs and all(text_function(f) is not None for f in segs)
    assert text_function(module.globals["sg_entry"]) is not None


def test_an_entry_without_segments_is_written_as_text_by_every_lowering():
    """An MLP step's entry (matrix products, softmax, one-hot labels, a dim as a value,
    the updates' copies) is text, byte for byte what llvmlite writes (compared in
    _assert_same_text for the models and the op table)."""
    with sg.Graph():
        inputs, loss, updates = mlp_step()
        fn = _function(inputs, loss, updates)
    module, _ = lower_program(fn.optimized)
    assert "sg.seg.0" not in module.globals
    assert text_function(module.globals["sg_entry"]) is not None
    _assert_same_text(fn)


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs())
def test_random_programs_print_as_llvmlite(prog):
    dtype, shapes, steps, grad, _ = prog
    with sg.Graph():
        xs = [sg.placeholder(shape=s, dtype=dtype, name=f"x{i}") for i, s in enumerate(shapes)]
        try:
            fn = _function(xs, _build(steps, grad)(*xs))
        except SymgraphError:
            reject()
        _assert_same_text(fn)


# -- hand-built modules -----------------------------------------------------------------
def _same(module):
    fast = module_text(module)
    assert fast == str(module)
    return fast


def test_names_that_need_escaping_and_attributes():
    m = ir.Module(name='odd "module"')
    f64 = ir.DoubleType()
    fnty = ir.FunctionType(f64, [f64, ir.IntType(8).as_pointer(), ir.IntType(32)])
    callee = ir.Function(m, fnty, name='callee"q\\')
    callee.attributes.add("readonly")
    callee.args[1].add_attribute("noalias")
    callee.args[1].attributes.align = 16
    callee.return_value.add_attribute("noundef")
    va = ir.Function(m, ir.FunctionType(ir.IntType(32), [ir.IntType(8).as_pointer()],
                                        var_arg=True), name="printf")
    none = ir.Function(m, ir.FunctionType(ir.VoidType(), [], var_arg=True), name="v")
    fn = ir.Function(m, fnty, name="main fn")
    fn.section = ".text.x"
    fn.calling_convention = "fastcc"
    fn.args[0].name = 'a"b'
    b = ir.IRBuilder(fn.append_basic_block('entry "1"'))
    x = b.fadd(fn.args[0], ir.Constant(f64, -0.0), name="x\\y", flags=("fast",))
    y = b.call(callee, [x, fn.args[1], fn.args[2]], name="r", tail=True, fastmath=("nnan",),
               attrs=("nounwind",), arg_attrs={1: ("noalias",)})
    b.call(va, [fn.args[1], fn.args[2]])
    b.call(none, [])
    c = b.fcmp_ordered("<", y, ir.Constant(f64, float("nan")), flags=("fast",))
    s = b.select(c, x, y, name="s")
    cast = b.fptosi(s, ir.IntType(32))
    b.store(cast, b.alloca(ir.IntType(32), size=ir.Constant(ir.IntType(32), 2)), align=4)
    with b.if_then(b.icmp_unsigned(">=", cast, ir.Constant(ir.IntType(32), 3))):
        b.unreachable()
    b.ret(s)
    _same(m)


def test_classes_left_to_llvmlite_and_cached_text():
    m = ir.Module()
    i32 = ir.IntType(32)
    g = ir.GlobalVariable(m, i32, name="counter")
    g.initializer = ir.Constant(i32, 7)
    g.align = 4
    fn = ir.Function(m, ir.FunctionType(i32, [i32]), name="f")
    entry, other, done = (fn.append_basic_block(n) for n in ("entry", "other", "done"))
    b = ir.IRBuilder(entry)
    b.comment("a comment")
    old = b.atomic_rmw("add", g, fn.args[0], "seq_cst", name="old")
    pair = b.cmpxchg(g, old, fn.args[0], "seq_cst", "monotonic", name="pair")
    ok = b.extract_value(pair, 1)
    sw = b.switch(b.zext(ok, i32), other)
    sw.add_case(0, done)
    b.position_at_end(other)
    vec = b.insert_element(ir.Constant(ir.VectorType(i32, 4), None), old, ir.Constant(i32, 0))
    lane = b.extract_element(vec, ir.Constant(i32, 0))
    b.branch(done)
    b.position_at_end(done)
    phi = b.phi(i32, name="p")
    phi.add_incoming(ir.Constant(i32, ir.Undefined), entry)
    phi.add_incoming(lane, other)
    hint = m.add_metadata([ir.MetaDataString(m, "llvm.loop.unroll.disable")])
    ret = b.ret(phi)
    ret.set_metadata("custom", hint)
    m.add_named_metadata("llvm.ident", ["symgraph test"])
    _same(m)
    # text llvmlite cached before a change is what llvmlite prints; so is the printer's
    str(phi)
    phi.add_incoming(ir.Constant(i32, 1), other)
    assert str(phi).count("[") == 2
    text = _same(m)
    assert str(phi) in text


def test_covered_classes_are_named():
    assert {"Instruction", "CallInstr", "GEPInstr", "LoadInstr", "StoreInstr",
            "PhiInstr"} <= set(COVERED)


def test_installed_llvmlite_passes_the_self_check_on_every_covered_class():
    """The printer is in use (not bypassed), and its check sees every class it covers."""
    assert irprint.agrees_with_llvmlite()
    sample = irprint._sample_module()
    seen = {type(i).__name__ for f in sample.functions for b in f.blocks for i in b.instructions}
    assert seen >= set(COVERED)


def test_a_disagreeing_llvmlite_gets_its_own_printing(monkeypatch):
    module = irprint._sample_module()
    monkeypatch.setattr(irprint, "_text", lambda m: "wrong")
    assert module_text(module) == "wrong"            # trusted: the fast path prints
    monkeypatch.setattr(irprint, "agrees_with_llvmlite", lambda: False)
    assert module_text(module) == str(module)       # not trusted: llvmlite prints


# -- the collector pause and the release of the module ----------------------------------
def test_compile_program_frees_its_module_without_the_collector():
    """With the collector off, next to nothing of the module outlives compile_program
    (its cycles were cut), and shared constants are intact for the next module."""
    with sg.Graph():
        x, out = _synthetic(120)
        program = _function([x], out).optimized
    first = compile_program(program)[0]
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        again = compile_program(program)[0]
        grown = len(gc.get_objects()) - before
        # nothing of its functions is left, those written as text included (irtext)
        left = [o for o in gc.get_objects()
                if isinstance(o, (ir.Function, irtext.TextFunction, irtext.Block))]
    finally:
        gc.enable()
    assert again == first
    assert grown < first.count("\n") // 4, grown      # a module holds about five per line
    assert "sg-light" in first and not left, left[:3]


def test_gc_pause_nests_and_restores():
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()        # off before: stays off
    finally:
        gc.enable()


def test_gc_pause_overlapping_threads_restore_it():
    """Two pauses that overlap across threads, ending in either order, turn it back on."""
    inside, release = threading.Event(), threading.Event()

    def other():
        with paused_gc():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other)
    t.start()
    inside.wait(10)
    with paused_gc():
        release.set()
        t.join(10)
        assert not gc.isenabled()        # the other pause ended first: still paused here
    assert gc.isenabled()
