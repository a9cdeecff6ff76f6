"""The rewrite framework: options, the report, inspection, source lines, call-time checks,
dead code, merging, folding limits, the verifier and the driver's safety nets."""
import numpy as np
import pytest

import symgraph as sg
from symgraph.compiler.pipeline import RewriteOptions, optimize
from symgraph.compiler.rewrite import Rewriter, RewriteError, RewriteReport, rewrite
from symgraph.compiler.verify import VerifyError, verify
from symgraph.errors import InputError
from symgraph.ops import elementwise as E
from symgraph.ops.leaves import Constant, Placeholder

from .test_rewrite_util import compile_pair, count

X = np.arange(12, dtype=np.float32).reshape(3, 4) / 7


def _f(build, rewrites=None, shape=(3, 4)):
    with sg.Graph():
        x = sg.placeholder(shape=shape, name="x")
        return sg.function([x], build(x), rewrites=rewrites, mode="reference")


@pytest.mark.parametrize("off", [False, "none"])
def test_rewrites_can_be_turned_off(off):
    f = _f(lambda x: x * 1.0 + 0.0, rewrites=off)
    assert f.rewrite_report is None and f.optimized is f.program
    assert count(f, E.Multiply) == 1 and count(f, E.Add) == 1


def test_exclude_a_rule_by_name():
    f = _f(lambda x: x * 1.0, rewrites={"exclude": ["remove_multiply_by_one"]})
    assert f.rewrite_report.fired["remove_multiply_by_one"] == 0
    assert count(f, E.Multiply) == 1
    assert "remove_multiply_by_one" in str(f.rewrite_report)  # listed as excluded
    g = _f(lambda x: x * 1.0, rewrites=RewriteOptions(exclude=frozenset({"fuse_elementwise"})))
    assert g.rewrite_report.fired["remove_multiply_by_one"] == 1


def test_bad_rewrite_options_are_refused_clearly():
    with pytest.raises(ValueError, match="no rule named.*remove_multiply_by_two"):
        _f(lambda x: x, rewrites={"exclude": ["remove_multiply_by_two"]})
    with pytest.raises(ValueError, match="unknown keys"):
        _f(lambda x: x, rewrites={"exclud": []})
    with pytest.raises(TypeError):
        _f(lambda x: x, rewrites=3)


def test_report_counts_nodes_per_phase_and_rule_firings():
    f = _f(lambda x: sg.exp(x * 1.0) + sg.exp(x) * 0.0 + 0.0)
    rep = f.rewrite_report
    names = [p.name for p in rep.phases]
    assert names == ["canonicalize", "simplify", "stabilize", "specialize", "fuse"]
    assert rep.nodes_before == len(f.program.graph) > rep.nodes_after == len(f.optimized.graph)
    assert rep.fired["remove_multiply_by_one"] == 1 and rep.fired["remove_add_zero"] >= 1
    text = str(rep)
    assert "remove_multiply_by_one" in text and "canonicalize" in text and "kernels" in text


def test_the_graph_before_rewriting_stays_available():
    with sg.Graph() as g:
        x = sg.placeholder(shape=(3, 4), name="x")
        y = sg.exp(x * 1.0)
        before = len(g)
        f = sg.function([x], y, mode="reference")
    assert len(g) == before and len(f.program.graph) == 4 and len(f.optimized.graph) == 2
    assert "multiply" in f.describe(optimized=False) and "multiply" not in f.describe()
    assert sg.debugprint(f, file=_Null()) == f.describe()
    assert f.graph is f.optimized.graph.nx


class _Null:
    def write(self, text):
        pass


def test_replacements_keep_the_users_source_line():
    with sg.Graph():
        x = sg.placeholder(shape=(3, 4), name="x")
        y = sg.log(sg.nn.softmax(x)); line = _line()  # noqa: E702
        f = sg.function([x], y, rewrites={"exclude": ["fuse_elementwise"]}, mode="reference")
    (out,) = f.optimized.outputs
    node = f.optimized.graph.node(out)
    assert type(node["op"]).__name__ == "LogSoftmax"
    assert node["source"] == (__file__, line)


def _line():
    import sys
    return sys._getframe(1).f_lineno


def test_call_time_size_checks_survive_rewriting():
    """x * 0 drops x, but the rule that x and y have one size must still be checked."""
    with sg.Graph():
        x = sg.placeholder(shape=(None,), name="x")
        y = sg.placeholder(shape=(None,), name="y")
        f = sg.function([x, y], (x + y) * 0.0 + 1.0, rewrites={"finite_math": True}, mode="reference")
    assert f.rewrite_report.fired["fold_multiply_by_zero"] == 1
    assert not any(isinstance(op, E.Add) for _, op in f.graph.nodes(data="op"))
    np.testing.assert_array_equal(f(np.ones(3, np.float32), np.ones(3, np.float32)), np.ones(3))
    with pytest.raises(InputError, match="must agree"):
        f(np.ones(3, np.float32), np.ones(4, np.float32))


def test_unused_inputs_stay_arguments_and_dead_nodes_go():
    with sg.Graph():
        x = sg.placeholder(shape=(3,), name="x")
        unused = sg.placeholder(shape=(2,), name="unused")
        f = sg.function([x, unused], (x - x * 1.0) + x, mode="reference")
    assert [a.name for a in f.signature.args] == ["x", "unused"]
    assert f.rewrite_report.fired["remove_dead_nodes"] > 0
    assert all(n in f.optimized.order() or n in f.optimized.inputs for n in f.graph.nodes)
    np.testing.assert_array_equal(f(np.ones(3, np.float32), np.ones(2, np.float32)), np.ones(3))


def test_placeholders_are_never_merged_and_constants_are():
    with sg.Graph():
        a = sg.placeholder(shape=(3,), name="a")
        b = sg.placeholder(shape=(3,), name="b")
        out = sg.exp(a) * 2.0 + sg.exp(b) * 2.0
        f = sg.function([a, b], out, rewrites={"exclude": ["fuse_elementwise"]}, mode="reference")
    g = f.optimized.graph
    assert sum(isinstance(op, Placeholder) for _, op in g.nx.nodes(data="op")) == 2
    twos = [n for n, op in g.nx.nodes(data="op") if isinstance(op, Constant)]
    assert len(twos) == 1  # the two weak 2.0 became one float32 constant


def test_weak_scalars_take_the_dtype_of_the_op():
    i32 = np.array([1, 2, 3], np.int32)
    plain, f = compile_pair(lambda i: (i + 2) * 2.5, [i32])
    assert f(i32).dtype == plain(i32).dtype == np.float64
    g = f.optimized.graph
    consts = {str(op.value.array.dtype) for _, op in g.nx.nodes(data="op") if isinstance(op, Constant)}
    assert consts <= {"int32", "float64"}
    np.testing.assert_array_equal(f(i32), plain(i32))


def test_folding_never_materializes_a_big_broadcast():
    f = _f(lambda x: x + sg.broadcast_to(sg.constant(2.0) * 3.0, (1000, 1000)), shape=(1000, 1000))
    sizes = [op.value.array.size for _, op in f.graph.nodes(data="op") if isinstance(op, Constant)]
    assert sizes and max(sizes) == 1


def test_verifier_names_the_broken_node():
    with sg.Graph():
        x = sg.placeholder(shape=(3, 4), name="x")
        f = sg.function([x], sg.exp(x) + 1.0, rewrites=False, mode="reference")
    p = f.program.copy()
    verify(p)
    (out,) = p.outputs
    node = p.graph.node(out)
    node["type"] = node["type"].with_dtype("float64")
    with pytest.raises(VerifyError, match=rf"%{out}.*stored type float64\[3, 4\]"):
        verify(p, "test")
    node["type"] = node["type"].with_dtype("float32")
    node["inputs"] = node["inputs"][::-1]
    with pytest.raises(VerifyError, match="argument positions"):
        verify(p)


def test_a_rule_that_changes_a_type_is_named():
    @rewrite("test", E.Exp)
    def bad_rule(rw, n):
        """exp(x) -> cast(x): wrong on purpose"""
        return rw.make(E.Cast(dtype=np.dtype("float64")), rw.ins(n)[0])

    with pytest.raises(RewriteError, match="bad_rule"):
        _run([bad_rule], lambda x: sg.exp(x))


def test_a_rule_that_never_converges_is_stopped():
    @rewrite("test", E.Exp)
    def looping_rule(rw, n):
        """exp(x) -> exp(--x): forever"""
        (x,) = rw.ins(n)
        return rw.make(E.Exp(), rw.make(E.Negative(), rw.make(E.Negative(), x)))

    with pytest.raises(RewriteError, match="does not converge.*looping_rule"):
        _run([looping_rule], lambda x: sg.exp(x))


def _run(rules, build):
    f = _f(build, rewrites=False)
    p = f.program.copy()
    Rewriter(p, RewriteOptions(verify=True), RewriteReport()).run(rules)
    return p


def test_optimize_does_not_touch_its_input():
    f = _f(lambda x: sg.exp(x * 1.0), rewrites=False)
    before = {n: dict(a) for n, a in f.program.graph.nx.nodes(data=True)}
    opt, rep = optimize(f.program)
    after = {n: dict(a) for n, a in f.program.graph.nx.nodes(data=True)}
    assert before == after and opt.graph is not f.program.graph
    assert rep.nodes_after < rep.nodes_before


def test_a_rule_that_raises_is_skipped_with_a_warning_or_raised_in_verify_mode():
    @rewrite("test", E.Exp)
    def broken_rule(rw, n):
        """exp(x) -> ...: raises on purpose"""
        raise ValueError("boom")

    f = _f(lambda x: sg.exp(x), rewrites=False)
    p = f.program.copy()
    with pytest.warns(UserWarning, match="broken_rule.*boom"):
        Rewriter(p, RewriteOptions(verify=False), RewriteReport()).run([broken_rule])
    with pytest.raises(ValueError, match="boom"):
        _run([broken_rule], lambda x: sg.exp(x))
