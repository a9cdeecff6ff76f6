"""Whole models: an MLP and a small CNN training step and a scalar expression with its
gradient. Rewriting shrinks them, fuses them, leaves no multiplication by one, addition
of zero or repeated subexpression behind, and changes no value.

The builders are shared with benchmarks/bench_rewrite.py, which prints the figures of
docs/rewrites.md.
"""
import numpy as np
import pytest

import symgraph as sg
from symgraph.compiler.fused import Fused, ScalarConst
from symgraph.ops import elementwise as E
from symgraph.ops.leaves import Constant
from symgraph.ops.shape import BroadcastTo, Reshape, Transpose


def mlp_step(batch=None, seed=0):
    """784-512-256-10 ReLU MLP, softmax cross-entropy, SGD updates: (inputs, loss, updates)."""
    rng = np.random.default_rng(seed)
    x = sg.placeholder(shape=(batch, 784), dtype="float32", name="x")
    y = sg.placeholder(shape=(batch,), dtype="int64", name="y")
    sizes, params, h = [784, 512, 256, 10], [], x
    for k in range(3):
        w = sg.shared((rng.standard_normal(sizes[k:k + 2]) * 0.05).astype(np.float32), name=f"w{k}")
        b = sg.shared(np.zeros(sizes[k + 1], np.float32), name=f"b{k}")
        params += [w, b]
        h = h @ w + b
        if k < 2:
            h = sg.relu(h)
    loss = sg.nn.cross_entropy(h, y)
    grads = sg.grad(loss, params)
    return [x, y], loss, [(p, p - 0.1 * g) for p, g in zip(params, grads)]


def cnn_step(batch=None, seed=0):
    """conv 3x3 (8 channels) - ReLU - 2x2 max-pool - dense 10, softmax cross-entropy, SGD."""
    rng = np.random.default_rng(seed)
    x = sg.placeholder(shape=(batch, 1, 28, 28), dtype="float32", name="x")
    y = sg.placeholder(shape=(batch,), dtype="int64", name="y")
    w1 = sg.shared((rng.standard_normal((8, 1, 3, 3)) * 0.1).astype(np.float32), name="w1")
    b1 = sg.shared(np.zeros(8, np.float32), name="b1")
    w2 = sg.shared((rng.standard_normal((8 * 13 * 13, 10)) * 0.01).astype(np.float32), name="w2")
    b2 = sg.shared(np.zeros(10, np.float32), name="b2")
    h = sg.nn.max_pool2d(sg.relu(sg.nn.conv2d(x, w1, b1)), 2)
    logits = sg.reshape(h, (-1, 8 * 13 * 13)) @ w2 + b2
    loss = sg.nn.cross_entropy(logits, y)
    params = [w1, b1, w2, b2]
    grads = sg.grad(loss, params)
    return [x, y], loss, [(p, p - 0.1 * g) for p, g in zip(params, grads)]


def expression(seed=0):
    """sum(tanh(x*a+b)**2 + exp(-x)*sigmoid(x)) and its gradient wrt x, a and b."""
    rng = np.random.default_rng(seed)
    x = sg.placeholder(shape=(None, 64), dtype="float32", name="x")
    a = sg.shared(rng.standard_normal(64).astype(np.float32), name="a")
    b = sg.shared(rng.standard_normal(64).astype(np.float32), name="b")
    loss = sg.sum(sg.tanh(x * a + b) ** 2 + sg.exp(-x) * sg.sigmoid(x))
    return [x], [loss] + sg.grad(loss, [x, a, b]), []


def _is(value, g, n):
    """Whether node ``n`` is a constant (maybe broadcast/reshaped) equal to ``value``."""
    while isinstance(g.op(n), (BroadcastTo, Reshape, Transpose)):
        n = g.inputs(n)[0]
    op = g.op(n)
    return isinstance(op, Constant) and op.value.array.size > 0 and np.all(op.value.array == value)


def assert_clean(f):
    """No x * 1, x + 0, x - 0 and no repeated subexpression, in the graph or a kernel body."""
    g, keys = f.optimized.graph, set()
    for n in f.optimized.order():
        op, ins = g.op(n), g.inputs(n)
        label = f"%{n} {op}"
        if isinstance(op, E.Multiply):
            assert not any(_is(1, g, i) for i in ins), f"multiplication by one: {label}"
        if isinstance(op, (E.Add, E.Subtract)):
            assert not any(_is(0, g, i) for i in ins[1 if isinstance(op, E.Subtract) else 0:]), \
                f"addition of zero: {label}"
        if ins or isinstance(op, Constant):
            key = (op, tuple(sorted(ins)) if op.commutative else ins)
            assert key not in keys, f"repeated subexpression: {label}"
            keys.add(key)
        if isinstance(op, Fused):
            _assert_clean_body(op, label)


def _assert_clean_body(k, label):
    n, seen = k.n_inputs, set()
    consts = {n + j: o.value for j, (o, _) in enumerate(k.body) if isinstance(o, ScalarConst)}
    for o, args in k.body:
        if isinstance(o, E.Multiply):
            assert not any(consts.get(a) == 1 for a in args), f"x * 1 in {label}"
        if isinstance(o, E.Add):
            assert not any(consts.get(a) == 0 for a in args), f"x + 0 in {label}"
        key = (o, tuple(sorted(args)) if o.commutative else args)
        assert key not in seen, f"repeated instruction {o} in {label}"
        seen.add(key)


def _data(name, batch, rng):
    if name == "expr":
        return [rng.standard_normal((batch, 64)).astype(np.float32)]
    shape = (batch, 784) if name == "mlp" else (batch, 1, 28, 28)
    return [rng.standard_normal(shape).astype(np.float32), rng.integers(0, 10, batch)]


def _compile(name, **kw):
    with sg.Graph():
        if name == "expr":
            ins, outs, ups = expression()
        else:
            ins, loss, ups = (mlp_step if name == "mlp" else cnn_step)()
            outs = [loss]
        return sg.function(ins, outs, updates=ups, **kw, mode="reference"), [s for s, _ in ups]


@pytest.mark.parametrize("name", ["mlp", "cnn", "expr"])
def test_model_is_smaller_fused_clean_and_unchanged(name):
    plain, params = _compile(name, rewrites=False)
    f, fparams = _compile(name, rewrites={"verify": True})
    rep = f.rewrite_report
    assert rep.nodes_after < rep.nodes_before and rep.kernels["fused"] >= 3
    assert_clean(f)
    args = _data(name, 8, np.random.default_rng(1))
    want = plain(*args)
    got = f(*args)
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=1e-6)
    for p, q in zip(params, fparams):  # one SGD step moved both copies of the weights alike
        np.testing.assert_allclose(q.get_value(), p.get_value(), rtol=1e-5, atol=1e-7)


def test_clean_check_can_fail():
    with sg.Graph():
        x = sg.placeholder(shape=(3,), name="x")
        f = sg.function([x], [x * 1.0 + sg.exp(x) + sg.exp(x)], rewrites=False, mode="reference")
    with pytest.raises(AssertionError, match="multiplication by one"):
        assert_clean(f)
