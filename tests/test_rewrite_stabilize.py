"""Stabilization: with inputs of magnitude 1000 the naive graph's loss or gradient is inf
or nan, the optimized graph's are finite and agree with a stable float64 answer."""
import numpy as np
import pytest

import symgraph as sg

rng = np.random.default_rng(7)
LOGITS = (rng.standard_normal((6, 5)) * 1000).astype(np.float32)
LABELS = rng.integers(0, 5, 6)
ONE_HOT = np.eye(5, dtype=np.float32)[LABELS]
BIG = np.array([-1000.0, -50.0, -1.0, 0.0, 2.0, 60.0, 1000.0], np.float32)


def _softmax(x):
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _log_softmax(x):
    z = x - x.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


def _ce(x):
    return -np.sum(ONE_HOT * _log_softmax(x)) / len(x)


# name: (loss builder, input, float64 loss, float64 gradient)
CASES = {
    "cross_entropy_of_softmax": (
        lambda x: -sg.sum(sg.constant(ONE_HOT) * sg.log(sg.nn.softmax(x))) / 6.0, LOGITS,
        _ce, lambda x: (_softmax(x) - ONE_HOT) / len(x)),
    "log_sigmoid": (
        lambda x: sg.sum(sg.log(sg.sigmoid(x))), BIG,
        lambda x: np.sum(-np.logaddexp(0.0, -x)), lambda x: _sigmoid(-x)),
    "log_one_minus_sigmoid": (
        lambda x: sg.sum(sg.log(1 - sg.sigmoid(x))), BIG,
        lambda x: np.sum(-np.logaddexp(0.0, x)), lambda x: -_sigmoid(x)),
    "log_one_plus_exp": (
        lambda x: sg.sum(sg.log(1.0 + sg.exp(x))), BIG,
        lambda x: np.sum(np.logaddexp(0.0, x)), _sigmoid),
    "logsumexp": (
        lambda x: sg.sum(sg.log(sg.sum(sg.exp(x), axis=1))), LOGITS,
        lambda x: np.sum(np.log(np.exp(x - x.max(1, keepdims=True)).sum(1)) + x.max(1)),
        _softmax),
}


def _compile(build, x, rewrites):
    with sg.Graph():
        t = sg.placeholder(shape=x.shape, dtype=x.dtype, name="x")
        loss = build(t)
        (g,) = sg.grad(loss, [t])
        return sg.function([t], [loss, g], rewrites=rewrites, mode="reference")


@pytest.mark.parametrize("name", sorted(CASES))
def test_naive_overflows_and_optimized_is_finite_and_correct(name):
    build, x, want_loss, want_grad = CASES[name]
    naive_loss, naive_grad = _compile(build, x, False)(x)
    assert not (np.isfinite(naive_loss) and np.all(np.isfinite(naive_grad))), \
        "the naive graph should overflow on this input (else the test shows nothing)"
    f = _compile(build, x, {"verify": True})
    loss, grad = f(x)
    assert np.isfinite(loss) and np.all(np.isfinite(grad)), f.describe()
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(loss, want_loss(x64), rtol=1e-5)
    np.testing.assert_allclose(grad, want_grad(x64), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_stabilized_graph_agrees_on_moderate_inputs(name):
    build, x, _, _ = CASES[name]
    small = (x / np.abs(x).max() * 3).astype(np.float32)
    naive = _compile(build, small, False)(small)
    opt = _compile(build, small, {"verify": True})(small)
    for a, b in zip(naive, opt):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_log1p_and_expm1_keep_tiny_values():
    x = np.array([1e-10, -3e-9, 2e-8], np.float32)
    with sg.Graph():
        t = sg.placeholder(shape=(3,), dtype="float32", name="x")
        outs = [sg.log(1.0 + t), sg.exp(t) - 1.0]
        naive = sg.function([t], outs, rewrites=False, mode="reference")(x)
        f = sg.function([t], outs, rewrites={"verify": True}, mode="reference")
    assert np.all(naive[0] == 0) and np.all(naive[1] == 0)  # 1 + x rounds to 1 in float32
    got = f(x)
    np.testing.assert_allclose(got[0], np.log1p(x.astype(np.float64)), rtol=1e-6)
    np.testing.assert_allclose(got[1], np.expm1(x.astype(np.float64)), rtol=1e-6)
    assert {"stabilize_log1p", "stabilize_expm1"} <= set(f.rewrite_report.fired)


def test_a_ratio_over_the_wrong_axis_is_not_a_softmax():
    """exp(x) / sum(exp(x), axis=1) without keepdims divides row i, column j by the sum of
    row j (right-aligned broadcasting): not a softmax, so it must not become one."""
    x = (np.arange(9, dtype=np.float32).reshape(3, 3) / 4)
    from .test_rewrite_util import compile_pair
    plain, f = compile_pair(lambda t: sg.exp(t) / sg.sum(sg.exp(t), axis=1), [x])
    assert f.rewrite_report.fired["stabilize_softmax"] == 0
    np.testing.assert_allclose(f(x), plain(x), rtol=1e-6)
    plain, f = compile_pair(lambda t: sg.exp(t) / sg.sum(sg.exp(t), axis=0), [x])
    assert f.rewrite_report.fired["stabilize_softmax"] == 1  # axis 0 aligns by itself
    np.testing.assert_allclose(f(x), plain(x), rtol=1e-6)
