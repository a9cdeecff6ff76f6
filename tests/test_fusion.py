"""Fusion: elementwise chains and the reductions they feed become Fused kernels; expensive
values are stored once, cheap ones recomputed; nothing fuses across GEMMs or reshapes."""
import numpy as np
import pytest

import symgraph as sg
from symgraph.compiler.fused import Fused
from symgraph.ops import elementwise as E
from symgraph.ops import reductions as R

from .test_rewrite_util import assert_same, compile_pair, count

rng = np.random.default_rng(3)
X = rng.standard_normal((5, 6)).astype(np.float32)
Y = rng.standard_normal((5, 6)).astype(np.float32)
ROW = rng.standard_normal(6).astype(np.float32)


def _kernels(f):
    return [op for _, op in f.graph.nodes(data="op") if isinstance(op, Fused)]


def _check(build, arrays, **kw):
    plain, f = compile_pair(build, arrays, **kw)
    assert_same(plain(*arrays), f(*arrays))
    return f


def test_a_chain_becomes_one_kernel():
    f = _check(lambda x, y, r: sg.tanh(x * y + r) * 2.0 - sg.exp(-x), [X, Y, ROW])
    assert len(_kernels(f)) == 1 and count(f, E.Elementwise, bodies=False) == 0
    (k,) = _kernels(f)
    assert k.n_inputs == 3 and k.space == (5, 6)
    assert f.rewrite_report.kernels["loops"] == 1


def test_a_reduction_of_a_chain_is_the_same_kernel():
    f = _check(lambda x, y: sg.sum(sg.square(x - y), axis=1), [X, Y])
    (k,) = _kernels(f)
    assert k.reduce == "sum" and k.axes == (1,)
    assert count(f, R.Sum, bodies=False) == 0


def test_an_expensive_value_used_twice_is_stored_once():
    f = _check(lambda x: [sg.sin(x) * 2.0 + 1.0, sg.sum(sg.sin(x) * 3.0)], [X])
    assert count(f, E.Sin) == 1  # in one kernel or standalone, never recomputed
    assert len(f.optimized.outputs) == 2


def test_vector_math_is_recomputed_rather_than_stored():
    """exp/tanh/sigmoid cost less to recompute with vectorized math than a memory round trip:
    a value and its gradient over the same elements read only the input."""
    f = _check(lambda x: [sg.exp(x) * 2.0 + 1.0, sg.sum(sg.exp(x) * 3.0)], [X])
    assert count(f, E.Exp) == 2
    kernels = [n for n in f.optimized.graph.nx if type(f.optimized.graph.op(n)).__name__ == "Fused"]
    assert len(kernels) == 2


def test_a_cheap_value_used_twice_is_recomputed_not_stored():
    f = _check(lambda x, y: [sg.tanh(x * y + 1.0), sg.relu(x * y + 1.0) * 2.0], [X, Y])
    bodies = _kernels(f)
    assert len(bodies) == 2
    assert all(any(isinstance(op, E.Add) for op, _ in k.body) for k in bodies)
    assert not any(isinstance(op, (E.Add, E.Multiply)) for _, op in f.graph.nodes(data="op"))


def test_recomputation_is_bounded():
    """A long cheap chain read by two kernels is recomputed by each only up to a budget."""
    from symgraph.compiler.fusion import DUP_BUDGET

    def build(x, y):
        t = x
        for _ in range(40):
            t = t * y + 1.0
        return [sg.sin(t), sg.cos(t)]
    f = _check(build, [X * 0.1, Y * 0.1])
    assert 80 < count(f, E.Multiply) + count(f, E.Add) <= 80 + 2 * DUP_BUDGET


def test_no_fusion_across_a_matrix_product():
    w = rng.standard_normal((6, 3)).astype(np.float32)
    f = _check(lambda x, w: sg.tanh(sg.exp(x) @ w), [X, w])
    assert all(not (any(isinstance(o, E.Exp) for o, _ in k.body)
                    and any(isinstance(o, E.Tanh) for o, _ in k.body)) for k in _kernels(f))
    assert count(f, E.Exp) == 1 and count(f, E.Tanh) == 1


@pytest.mark.parametrize("reorder", [lambda t: sg.transpose(t), lambda t: sg.reshape(t, (6, 5))])
def test_no_fusion_across_a_change_of_memory_order(reorder):
    f = _check(lambda x: sg.tanh(reorder(sg.exp(x))), [X])
    kinds = [{type(o) for o, _ in k.body} for k in _kernels(f)]
    assert not any({E.Exp, E.Tanh} <= s for s in kinds)


def test_fused_kernels_are_generic_over_symbolic_dims():
    with sg.Graph():
        x = sg.placeholder(shape=(None, 6), name="x")
        r = sg.placeholder(shape=(6,), name="r")
        out = sg.sum(sg.exp(x * r) - x, axis=0)
        f = sg.function([x, r], out, rewrites={"verify": True}, mode="reference")
        plain = sg.function([x, r], out, rewrites=False, mode="reference")
    assert len(_kernels(f)) == 1
    for n in (1, 4, 9):
        xs = rng.standard_normal((n, 6)).astype(np.float32)
        assert_same(plain(xs, ROW), f(xs, ROW))


def test_an_integer_sum_that_widens_is_left_to_the_reduction():
    i = rng.integers(-9, 9, (4, 5)).astype(np.int32)
    f = _check(lambda t: sg.sum(t * 3, axis=1), [i])
    assert f(i).dtype == np.int64 and count(f, R.Sum, bodies=False) == 1


def _forward_backward():
    with sg.Graph():
        x = sg.placeholder(shape=(None, 16), name="x")
        a = sg.shared(rng.standard_normal(16).astype(np.float32), name="a")
        b = sg.shared(rng.standard_normal(16).astype(np.float32), name="b")
        loss = sg.sum(sg.tanh(x * a + b) ** 2 + sg.exp(-x) * sg.sigmoid(x))
        grads = sg.grad(loss, [x, a, b])
        return ([x], [loss] + grads)


def test_forward_and_backward_end_in_few_loops():
    ins, outs = _forward_backward()
    plain = sg.function(ins, outs, rewrites=False, mode="reference")
    f = sg.function(ins, outs, rewrites={"verify": True}, mode="reference")
    k = f.rewrite_report.kernels
    assert k["loops"] <= 5, f.describe()
    before = sum(isinstance(op, (E.Elementwise, R.Sum)) for _, op in plain.graph.nodes(data="op"))
    assert before >= 3 * k["loops"]
    xs = rng.standard_normal((7, 16)).astype(np.float32)
    assert_same(plain(xs), f(xs), rtol=1e-5, atol=1e-5)


def test_native_code_runs_the_fused_graph():
    ins, outs = _forward_backward()
    ref = sg.function(ins, outs, rewrites=False, mode="reference")
    native = sg.function(ins, outs, mode="native")
    assert native.rewrite_report.kernels["fused"] >= 3
    xs = rng.standard_normal((7, 16)).astype(np.float32)
    for a, b in zip(ref(xs), native(xs)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
