"""Short rows of window loops (pooling, im2col, col2im) get explicit vector lanes
(window_loops.row_lanes): LLVM's own choice needs 16 elements before its vector body
runs, so a CNN's 14- and 7-wide rows would run scalar."""
import numpy as np
import pytest

import symgraph as sg
from symgraph.compiler.window_loops import row_lanes


@pytest.mark.parametrize("n, lanes", [(7, 4), (12, 4), (14, 4), (16, 8), (24, 8), (28, 8),
                                      (31, 8), (63, 8), (64, None), (1000, None),
                                      ("w", None)])
def test_lanes_of_a_row(n, lanes):
    assert row_lanes(n) == lanes


def test_short_pooling_rows_carry_their_lanes_and_compute_the_reference(monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", "off")
    rng = np.random.default_rng(3)
    x = sg.placeholder(shape=("n", 3, 14, 14), dtype=np.float32, name="x")
    w = sg.shared(rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3, name="w")
    h = sg.nn.max_pool2d(sg.nn.relu(sg.nn.conv2d(x, w, padding=1)), 2)
    loss = sg.sum(h * h)
    gw, = sg.grad(loss, [w])
    f = sg.function([x], [loss, gw])
    ref = sg.function([x], [loss, gw], mode="reference")
    text = f._full_artifact("ir").ir
    widths = [line for line in text.splitlines() if "llvm.loop.vectorize.width" in line]
    assert any("i32 4" in line for line in widths)     # the 14- and 7-wide rows
    for n in (1, 2, 5):
        xv = rng.standard_normal((n, 3, 14, 14)).astype(np.float32)
        for a, b in zip(f(xv), ref(xv)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
