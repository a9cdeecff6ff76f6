"""Remembered misses (compiler/misses.py) change how long rewriting takes, never its
result: every graph optimized with them is the graph trying every rule at every visit
gives, node for node (ids, ops, inputs, types, names, size checks, source lines), with
the same report. Also: the graph's cached topological order follows every edit, and
a large random graph still computes, natively, what the reference executor computes.
"""
import gc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings

import symgraph as sg
from symgraph.compiler import rewrite as rewrite_module
from symgraph.compiler.pipeline import RewriteOptions, optimize
from symgraph.compiler.rewrite import Rewriter, RewriteReport, rewrite
from symgraph.errors import SymgraphError
from symgraph.function import _as_update_pairs
from symgraph.graph import Graph
from symgraph.ops import elementwise as E
from symgraph.program import build_program, gc_paused

from . import test_rewrite_fuzz as fuzz
from .opinfo import all_cases
from .test_rewrite_models import cnn_step, expression, mlp_step


def fingerprint(program, report) -> tuple:
    """Everything rewriting decides, in a comparable form."""
    g = program.graph
    nodes = tuple((n, repr(g.op(n)), g.inputs(n), repr(g.type(n)), g.node(n)["name"],
                   g.node(n).get("requires", ()), repr(g.node(n)["source"]))
                  for n in program.order())
    phases = tuple((p.name, p.nodes_before, p.nodes_after) for p in report.phases)
    return (nodes, sorted(g.nx.nodes), tuple(program.outputs), tuple(program.updates),
            g._next_id, sorted(report.fired.items()), phases, report.kernels)


def both_ways(program, rewrites=None):
    """(fingerprint remembering misses, fingerprint trying every rule every time)."""
    out = []
    for remember in (True, False):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(Rewriter, "remember_misses", remember)
            opt, report = optimize(program, rewrites)
        out.append(fingerprint(opt, report))
    return out


def program_of(inputs, outputs, updates=()):
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return build_program(list(inputs), [sg.as_tensor(o) for o in outputs],
                         _as_update_pairs(list(updates)))


def random_graph(n_ops, seed=0, dtype="float32", width=16):
    """(inputs, outputs, updates): a random DAG of about ``n_ops`` ops over a symbolic
    batch: elementwise chains drawing on recent values, bias broadcasts, matmuls,
    reductions broadcast back, identities the rules remove, and the SGD update of
    every weight from the gradient of the sum."""
    rng = np.random.default_rng(seed)
    x = sg.placeholder(shape=("batch", width), dtype=dtype, name="x")
    ws = [sg.shared((rng.standard_normal((width, width)) / width).astype(dtype), name=f"w{k}")
          for k in range(3)]
    b = sg.shared(rng.standard_normal(width).astype(dtype), name="b")
    unary = (sg.tanh, sg.sigmoid, sg.relu, lambda t: sg.exp(-sg.abs(t)), lambda t: t * 1.0,
             lambda t: -(-t), lambda t: sg.log(1.0 + sg.exp(t * 0.1)), sg.square)
    binary = (lambda p, q: p + q, lambda p, q: p * q, lambda p, q: p - q, sg.maximum,
              lambda p, q: p - (-q), lambda p, q: p / (sg.abs(q) + 1.0))
    pool, graph = [x], x.graph
    start = len(graph)
    while len(graph) - start < n_ops:
        a, k = pool[-1], rng.integers(10)
        if k == 0:
            t = a @ ws[rng.integers(len(ws))]
        elif k == 1:
            t = a + b
        elif k == 2:
            t = a - sg.sum(a, axis=1, keepdims=True) * 0.5
        elif k < 6:
            t = unary[rng.integers(len(unary))](a)
        else:
            t = binary[rng.integers(len(binary))](a, pool[-1 - rng.integers(min(len(pool), 12))])
        pool.append(t)
    loss = sg.sum(pool[-1] * pool[-1]) * 1e-3
    params = ws + [b]
    grads = sg.grad(loss, params)
    return [x], [loss, pool[-1]], [(p, p - 0.01 * g) for p, g in zip(params, grads)]


MODELS = {"mlp": lambda: mlp_step("batch"), "mlp-static": lambda: mlp_step(4),
          "cnn": lambda: cnn_step("batch"), "expression": expression,
          "random-500": lambda: random_graph(500), "random-300-f64": lambda: random_graph(
              300, seed=3, dtype="float64")}
OPTIONS = [None, {"finite_math": True}, {"exclude": ["fuse_elementwise"]},
           {"exclude": ["merge_common_subexpressions"]}]


@pytest.mark.parametrize("rewrites", OPTIONS, ids=["default", "finite", "nofuse", "nomerge"])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_models_rewrite_to_the_same_graph(model, rewrites):
    with sg.Graph():
        program = program_of(*MODELS[model]())
    remembered, plain = both_ways(program, rewrites)
    assert remembered == plain


def _op_programs():
    for case in all_cases():
        for dtype in case.dtypes:
            arrays = case.draw(np.random.default_rng(0), case.shapes[0], dtype)
            yield pytest.param(case, arrays, id=f"{case.name}-{dtype}")


@pytest.mark.parametrize("case,arrays", list(_op_programs()))
def test_op_table_graphs_and_gradients_rewrite_to_the_same_graph(case, arrays):
    with sg.Graph():
        xs = [sg.placeholder(shape=a.shape, dtype=a.dtype, name=f"x{i}")
              for i, a in enumerate(arrays)]
        out = case.build(*xs)
        programs = [program_of(xs, out)]
        positions = case.grad_positions(arrays)
        if positions:
            proj = sg.constant(np.random.default_rng(0).standard_normal(tuple(out.shape))
                               .astype(out.dtype))
            programs.append(program_of(xs, sg.grad(sg.sum(out * proj),
                                                   [xs[k] for k in positions])))
    for program in programs:
        remembered, plain = both_ways(program)
        assert remembered == plain


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(fuzz.programs())
def test_random_programs_rewrite_to_the_same_graph(prog):
    dtype, shapes, steps, grad, _ = prog
    with sg.Graph():
        xs = [sg.placeholder(shape=s, dtype=dtype, name=f"x{i}") for i, s in enumerate(shapes)]
        try:
            outs = fuzz._build(steps, grad)(*xs)
        except SymgraphError:
            reject()
        program = program_of(xs, outs)
    for rewrites in (None, {"finite_math": True}):
        remembered, plain = both_ways(program, rewrites)
        assert remembered == plain


def test_remembered_misses_save_most_rule_calls(monkeypatch):
    calls = {True: 0, False: 0}
    original = Rewriter._try

    def counting(self, rule, n):
        calls[self.remember_misses] += 1
        return original(self, rule, n)
    monkeypatch.setattr(Rewriter, "_try", counting)
    with sg.Graph():
        program = program_of(*random_graph(400, seed=1))
    remembered, plain = both_ways(program)
    assert remembered == plain
    assert 0 < calls[True] < calls[False] / 2


@rewrite("test", E.Exp)
def peek_two_levels(rw, n):
    """exp((-a) + b) -> exp(b - a): reads the inputs of its input"""
    (y,) = rw.ins(n)
    if rw.isa(y, E.Add) and rw.isa(rw.ins(y)[0], E.Negative):
        a, b = rw.ins(rw.ins(y)[0])[0], rw.ins(y)[1]
        return rw.make(E.Exp(), rw.make(E.Subtract(), b, a))


@rewrite("test", E.Tanh)
def tanh_to_negative(rw, n):
    """tanh(x) -> -x: wrong, and only here to change a node two levels down"""
    return rw.make(E.Negative(), rw.ins(n)[0])


@pytest.mark.parametrize("remember", [True, False])
def test_a_miss_is_forgotten_when_a_node_it_read_two_levels_down_changes(remember):
    """peek_two_levels misses at exp(tanh(x) + x); in the next run tanh(x) becomes -x,
    which rewires the add but not the exp: the exp's note must be void."""
    with sg.Graph():
        x = sg.placeholder(shape=(3,), name="x")
        program = program_of([x], sg.exp(sg.tanh(x) + x))
    rw = Rewriter(program, RewriteOptions(verify=True), RewriteReport())
    rw.remember_misses = remember
    assert rw.run([peek_two_levels]) == 0
    assert rw.run([peek_two_levels, tanh_to_negative]) == 2
    assert rw.report.fired["peek_two_levels"] == 1
    (out,) = program.outputs
    assert isinstance(program.graph.op(program.graph.inputs(out)[0]), E.Subtract)


# -- the graph's cached topological order ------------------------------------------------
def _fresh_order(g, roots):
    return g._walk(tuple(roots))


def test_topological_order_follows_every_edit():
    with Graph() as graph:
        x = sg.placeholder(shape=(2,), name="x")
        y = sg.exp(x) + x
        z = sg.tanh(y) * y
    g = graph
    roots = [z.id]
    first = g.topo_order(roots)
    assert first == _fresh_order(g, roots)
    first.append(-1)                      # the caller's list is its own
    assert g.topo_order(roots) == _fresh_order(g, roots)
    g.set_inputs(z.id, (x.id, y.id))      # rewire: tanh(y) is no longer read
    assert g.topo_order(roots) == _fresh_order(g, roots)
    assert len(g.topo_order(roots)) == len(first) - 2
    extra = g.add_node(E.Negative(), (x.id,), g.type(x.id))
    g.set_inputs(z.id, (extra, y.id))
    assert g.topo_order(roots) == _fresh_order(g, roots)
    g.set_inputs(z.id, (x.id, y.id))
    g.remove_node(extra)
    assert extra not in g and g.topo_order(roots) == _fresh_order(g, roots)
    assert g.topo_order([y.id]) == _fresh_order(g, [y.id])


def test_graph_edits_keep_networkx_consistent():
    with Graph() as g:
        x = sg.placeholder(shape=(2,), name="x")
        y = x * x
        z = y + x
    nx_graph = g.nx
    assert nx_graph[x.id][y.id]["positions"] == (0, 1)
    g.set_inputs(z.id, (y.id, y.id))
    assert set(nx_graph.predecessors(z.id)) == {y.id}
    assert nx_graph[y.id][z.id]["positions"] == (0, 1)
    assert set(nx_graph.successors(x.id)) == {y.id}
    g.remove_node(z.id)
    assert z.id not in nx_graph and set(nx_graph.successors(y.id)) == set()
    assert nx_graph.number_of_edges() == 1


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_and_then_restored(enabled):
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with pytest.raises(KeyError):
            with gc_paused():
                assert not gc.isenabled()
                raise KeyError
        assert gc.isenabled() == enabled
    finally:
        (gc.enable if was else gc.disable)()


# -- values -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_large_random_graph_runs_natively_as_the_reference_does(dtype):
    with sg.Graph():
        inputs, outputs, updates = random_graph(250, seed=7, dtype=dtype)
        fns = [sg.function(inputs, outputs, updates=updates, mode=mode)
               for mode in ("reference", "native")]
    shared = [s for s, _ in updates]
    start = [s.get_value().copy() for s in shared]
    tol = 2e-4 if dtype == "float32" else 1e-9
    for batch in (0, 1, 5):
        x = np.random.default_rng(batch).standard_normal((batch, 16)).astype(dtype)
        results = []
        for f in fns:
            for s, v in zip(shared, start):
                s.set_value(v.copy())
            outs = f(x)
            results.append((outs, [s.get_value().copy() for s in shared]))
        (want, want_state), (got, got_state) = results
        for w, v in zip(want + want_state, got + got_state):
            assert w.shape == v.shape and w.dtype == v.dtype
            np.testing.assert_allclose(v, w, rtol=tol, atol=tol)


def test_rewrite_module_reexports_the_rule_api():
    from symgraph.compiler import rule
    assert rewrite_module.Rule is rule.Rule and rewrite_module.rewrite is rule.rewrite
