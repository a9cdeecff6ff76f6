"""Shared harness of the rewrite tests: compile a graph with and without rewrites and
compare, and walk an optimized graph (fused kernel bodies included).

No tests here; the test_rewrite_*.py and test_fusion*.py modules import it.
"""
from __future__ import annotations

import numpy as np

import symgraph as sg
from symgraph.compiler.fused import Fused
from symgraph.ops.leaves import Constant

UNFUSED = {"verify": True, "exclude": ["fuse_elementwise"]}


def compile_pair(build, arrays, *, rewrites=None, names=None):
    """(f without rewrites, f with ``rewrites`` and the verifier) of ``build(*placeholders)``."""
    opts = dict(rewrites if rewrites is not None else {"verify": True})
    opts.setdefault("verify", True)
    with sg.Graph():
        xs = [sg.placeholder(shape=np.shape(a), dtype=np.asarray(a).dtype,
                             name=(names[i] if names else f"x{i}")) for i, a in enumerate(arrays)]
        outs = build(*xs)
        plain = sg.function(xs, outs, rewrites=False, mode="reference")
        opt = sg.function(xs, outs, rewrites=opts, mode="reference")
    return plain, opt


def assert_same(want, got, *, rtol=1e-5, atol=1e-6):
    """Equal values, dtypes and shapes (nan where nan); floats up to rounding."""
    if not isinstance(want, (list, tuple)):
        want, got = [want], [got]
    assert len(want) == len(got)
    for w, g in zip(want, got):
        w, g = np.asarray(w), np.asarray(g)
        assert w.dtype == g.dtype and w.shape == g.shape, (w.dtype, w.shape, g.dtype, g.shape)
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
        else:
            np.testing.assert_array_equal(g, w)


def check_rule(rule, build, arrays, *, rewrites=None, rtol=1e-5, atol=1e-6):
    """Assert ``rule`` fires on ``build``'s graph and the values do not change, both with
    fusion excluded (returned, for structural checks) and with the whole pipeline."""
    plain, opt = compile_pair(build, arrays, rewrites=rewrites or UNFUSED)
    report = opt.rewrite_report
    assert report.fired[rule] > 0, f"{rule} did not fire:\n{report}\n{opt.describe()}"
    want = plain(*arrays)
    assert_same(want, opt(*arrays), rtol=rtol, atol=atol)
    if rewrites is None:
        _, full = compile_pair(build, arrays)
        assert_same(want, full(*arrays), rtol=rtol, atol=atol)
    return opt


def ops(f, *, bodies=True) -> list:
    """The ops of ``f``'s optimized graph; with ``bodies``, fused instructions too."""
    g = f.optimized.graph
    out = []
    for n in f.optimized.order():
        op = g.op(n)
        out.append(op)
        if bodies and isinstance(op, Fused):
            out.extend(o for o, _ in op.body)
    return out


def count(f, cls, **kw) -> int:
    return sum(isinstance(op, cls) for op in ops(f, **kw))


def constants(f) -> list:
    g = f.optimized.graph
    return [g.op(n).value.array for n in f.optimized.order() if isinstance(g.op(n), Constant)]
