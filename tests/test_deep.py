"""Deep graphs: every walk is iterative, so a chain of 100,000 ops builds, differentiates,
prints and runs at the default recursion limit, and the cost grows linearly with size."""
import gc
import io
import sys
import time

import numpy as np

import symgraph as sg

X0 = np.array([0.3, -1.2, 2.5])


def build_chain(n):
    """y = -sin(-sin(... x)): n ops alternating sin and negative."""
    with sg.Graph() as g:
        x = sg.placeholder(shape=(3,), dtype="float64", name="x")
        y = x
        for i in range(n):
            y = sg.sin(y) if i % 2 == 0 else -y
    return g, x, y


def numpy_chain(n, x):
    """The chain's value and its derivative (elementwise, by the chain rule)."""
    y, d = x.copy(), np.ones_like(x)
    for i in range(n):
        if i % 2 == 0:
            d, y = d * np.cos(y), np.sin(y)
        else:
            d, y = -d, -y
    return y, d


def test_a_chain_of_100000_ops_builds_differentiates_prints_and_runs():
    limit = sys.getrecursionlimit()
    n = 100_000
    g, x, y = build_chain(n)
    assert len(g) == n + 1
    with g:
        c = sg.sum(y)
        (gx,) = sg.grad(c, [x])
        out = io.StringIO()
        text = sg.debugprint([c, gx], file=out)
        assert out.getvalue() == text
        assert text.count("\n") >= n
        f = sg.function([x], [c, gx], rewrites=False, mode="reference")
    got_c, got_g = f(X0)
    want_y, want_d = numpy_chain(n, X0)
    np.testing.assert_allclose(got_c, want_y.sum(), rtol=1e-10)
    np.testing.assert_allclose(got_g, want_d, rtol=1e-8, atol=1e-300)
    assert sys.getrecursionlimit() == limit


def test_a_deep_chain_through_the_default_rewrite_pipeline():
    """Far deeper than the recursion limit, small enough to keep the suite quick."""
    n = 6_000
    g, x, y = build_chain(n)
    with g:
        c = sg.sum(y)
        (gx,) = sg.grad(c, [x])
        f = sg.function([x], [c, gx], mode="reference")
    got_c, got_g = f(X0)
    want_y, want_d = numpy_chain(n, X0)
    np.testing.assert_allclose(got_c, want_y.sum(), rtol=1e-10)
    np.testing.assert_allclose(got_g, want_d, rtol=1e-8)


def _cost(n):
    """CPU seconds to build a chain of n ops, and then to differentiate, compile and run it."""
    gc.collect()
    t0 = time.process_time()
    g, x, y = build_chain(n)
    t1 = time.process_time()
    with g:
        (gx,) = sg.grad(sg.sum(y), [x])
        sg.function([x], gx, rewrites=False, mode="reference")(X0)
    return np.array([t1 - t0, time.process_time() - t1])


def test_cost_grows_linearly_with_the_number_of_nodes():
    """4x the nodes: about 4x the time when linear, 16x if quadratic. The bound is loose and
    a pair is measured again before failing: this checks complexity, not speed, and must
    not flake on a busy machine."""
    _cost(2_000)  # warm up imports and caches
    for attempt in range(3):
        small, large = _cost(20_000), _cost(80_000)
        ratio = large / small
        if (ratio < 10).all():
            return
    raise AssertionError(f"20k vs 80k nodes: build {small[0]:.2f}s vs {large[0]:.2f}s, "
                         f"grad+compile+run {small[1]:.2f}s vs {large[1]:.2f}s")
