"""Each rule: a graph it fires on, the values unchanged, and the shape of the result."""
import numpy as np
import pytest

import symgraph as sg
from symgraph.compiler.pipeline import all_rules
from symgraph.compiler.rewrite import Rule
from symgraph.ops import elementwise as E
from symgraph.ops import reductions as R
from symgraph.ops.leaves import DimValue
from symgraph.ops.linalg import MatMul
from symgraph.ops.nn import LogSoftmax, Softmax
from symgraph.ops.shape import BroadcastTo, Reshape, Transpose

from .test_rewrite_util import assert_same, check_rule, count, constants

rng = np.random.default_rng(0)
F = rng.standard_normal((3, 4)).astype(np.float32)
G = rng.standard_normal((3, 4)).astype(np.float32)
P = rng.uniform(0.5, 2.0, (3, 4)).astype(np.float32)
I = rng.integers(-5, 5, (3, 4)).astype(np.int32)
J = rng.integers(-5, 5, (3, 4)).astype(np.int32)
V = rng.standard_normal(4).astype(np.float32)
M = rng.standard_normal((4, 5)).astype(np.float32)
B = np.array([[True, False, True, False]] * 3)
FINITE = {"verify": True, "finite_math": True, "exclude": ["fuse_elementwise"]}


def none_of(*classes):
    return lambda f: all(count(f, c) == 0 for c in classes)


# (rule, build, arrays, check on the optimized function, rewrites)
CASES = [
    ("fold_constants", lambda x: x + sg.constant(2.0) * sg.constant(3.0), [F],
     lambda f: count(f, E.Multiply) == 0, None),
    ("canonicalize_weak_constants", lambda x: x * 2.5, [F],
     lambda f: all(c.dtype == np.float32 for c in constants(f)), None),
    ("remove_stop_gradient", lambda x: sg.stop_gradient(x) * x, [F],
     none_of(E.StopGradient), None),
    ("merge_common_subexpressions", lambda x, y: sg.exp(x * y) + sg.exp(y * x), [F, G],
     lambda f: count(f, E.Exp) == 1 and count(f, E.Multiply) == 1, None),
    ("remove_double_negation", lambda x: -(-x) + 1.0, [F], none_of(E.Negative), None),
    ("canonicalize_subtract_negative", lambda x, y: x - (-y), [F, G],
     none_of(E.Negative, E.Subtract), None),
    ("canonicalize_add_negative", lambda x, y: (-x) + y, [F, G],
     none_of(E.Negative, E.Add), None),
    ("canonicalize_multiply_by_minus_one", lambda x: x * -1.0, [F], none_of(E.Multiply), None),
    ("remove_negations_in_product", lambda x, y: (-x) * (-y), [F, G],
     none_of(E.Negative), None),
    ("remove_multiply_by_one", lambda x: x * 1.0 + sg.ones_like(x) * x, [F],
     none_of(E.Multiply), None),
    ("remove_add_zero", lambda x: (x + 0.0) * (sg.zeros_like(x) + x), [F],
     none_of(E.Add), None),
    ("remove_subtract_zero", lambda x, y: (x - 0.0) * (0.0 - y), [F, G],
     none_of(E.Subtract), None),
    ("remove_divide_by_one", lambda x: x / 1.0, [F], none_of(E.Divide), None),
    ("fold_multiply_by_zero", lambda i: i * 0 + 3, [I], none_of(E.Multiply), None),
    ("fold_multiply_by_zero", lambda x: x * 0.0 + 3.0, [F], none_of(E.Multiply), FINITE),
    ("fold_subtract_self", lambda i: (i - i) * 2, [I], none_of(E.Subtract), None),
    ("fold_subtract_self", lambda x: sg.exp(x - x), [F], none_of(E.Subtract), FINITE),
    ("remove_idempotent_self", lambda x: sg.maximum(x, x) * 2.0, [F], none_of(E.Maximum), None),
    ("combine_constants", lambda x: (x * 2.0) * 3.0, [F],
     lambda f: count(f, E.Multiply) == 1, None),
    ("move_negation_out_of_product", lambda x, y: (1.0 + x * (-y)) - (-x) / y, [F, P],
     none_of(E.Negative), None),
    ("move_constant_out_of_product", lambda x, y: (x * 2.0) * y * 1.5, [F, G],
     lambda f: count(f, E.Multiply) == 2 and 3.0 in [float(c) for c in constants(f)], None),
    ("factor_common_multiplicand", lambda x, y, z: (x * y - x * z) * (y * z + z * x), [F, G, P],
     lambda f: count(f, E.Multiply) == 3, None),
    ("simplify_product_with_complement", lambda x, y: (x * (1.0 - y) - x) + (x - x * (1.0 - y)),
     [F, G], lambda f: count(f, E.Subtract) == 1 and count(f, E.Multiply) == 1, None),
    ("simplify_exp_of_log", lambda x: sg.exp(sg.log(x)), [F], none_of(E.Exp, E.Log), None),
    ("simplify_log_of_exp", lambda x: sg.log(sg.exp(x)) * 2.0, [F], none_of(E.Exp, E.Log), None),
    ("remove_cast_to_same_dtype", lambda x: sg.cast(x, "float32") * 2.0, [F],
     none_of(E.Cast), None),
    ("merge_lossless_casts", lambda x: sg.cast(sg.cast(x, "float64"), "float32") * 2.0, [F],
     none_of(E.Cast), None),
    ("merge_lossless_casts", lambda i: sg.cast(sg.cast(i, "int64"), "float32"), [I],
     lambda f: count(f, E.Cast) == 1, None),
    ("remove_double_logical_not", lambda x: sg.where(~~(x > 0), x, 1.0), [F],
     none_of(E.LogicalNot), None),
    ("invert_negated_comparison", lambda x, y: ~(x == y), [F, G],
     lambda f: count(f, E.LogicalNot) == 0 and count(f, E.NotEqual) == 1, None),
    ("invert_negated_comparison", lambda i, j: ~(i < j), [I, J],
     lambda f: count(f, E.LogicalNot) == 0 and count(f, E.GreaterEqual) == 1, None),
    ("remove_negations_in_comparison", lambda x, y: (-x) < (-y), [F, G],
     lambda f: count(f, E.Negative) == 0 and count(f, E.Greater) == 1, None),
    ("fold_where_constant_condition", lambda x, y: sg.where(sg.constant(True), x, y) + sg.where(x > y, x, x),
     [F, G], none_of(E.Where), None),
    ("swap_where_negated_condition", lambda c, x, y: sg.where(~c, x, y), [B, F, G],
     none_of(E.LogicalNot), None),
    ("remove_broadcast_into_elementwise", lambda x: x + sg.broadcast_to(sg.constant(2.0), x.shape),
     [rng.standard_normal((30, 40)).astype(np.float32)], none_of(BroadcastTo), None),
    ("specialize_power", lambda x: x ** 2 + x ** 0.5 + x ** 1 + x ** -1 + x ** 0, [P],
     none_of(E.Power), None),
    ("merge_transposes", lambda x: sg.transpose(x).T * 2.0, [F], none_of(Transpose), None),
    ("merge_transposes", lambda t: sg.transpose(sg.transpose(t, (1, 2, 0)), (1, 2, 0)),
     [rng.standard_normal((2, 3, 4)).astype(np.float32)],
     lambda f: count(f, Transpose) == 1, None),
    ("move_scalar_broadcast_out", lambda x: sg.transpose(sg.broadcast_to(sg.constant(2.0), x.shape)),
     [rng.standard_normal((30, 40)).astype(np.float32)], none_of(Transpose), None),
    ("remove_transpose_of_size_one_axes", lambda t: sg.transpose(t, (1, 0, 2)),
     [rng.standard_normal((3, 1, 4)).astype(np.float32)], none_of(Transpose), None),
    ("merge_reshapes", lambda x: sg.reshape(sg.reshape(x, (6, 2)), (2, 6)), [F],
     lambda f: count(f, Reshape) == 1, None),
    ("merge_broadcasts", lambda v: sg.broadcast_to(sg.broadcast_to(v, (3, 4)), (2, 3, 4)), [V],
     lambda f: count(f, BroadcastTo) == 1, None),
    ("remove_reshape_under_broadcast", lambda v: sg.broadcast_to(sg.reshape(v, (1, 4)), (3, 4)),
     [V], none_of(Reshape), None),
    ("remove_reduction_over_size_one_axes", lambda t: sg.sum(t, axis=1),
     [rng.standard_normal((3, 1, 4)).astype(np.float32)], none_of(R.Sum), None),
    ("fold_sum_of_broadcast", lambda v: sg.sum(sg.broadcast_to(v, (3, 4)), axis=0), [V],
     none_of(R.Sum, BroadcastTo), None),
    ("merge_nested_reductions", lambda x: sg.sum(sg.sum(x, axis=1), axis=0), [F],
     lambda f: count(f, R.Sum) == 1, None),
    ("stabilize_log_softmax", lambda x: sg.log(sg.nn.softmax(x)), [F],
     lambda f: count(f, LogSoftmax) == 1 and count(f, E.Log) == 0, None),
    ("stabilize_log_sigmoid", lambda x: sg.log(sg.sigmoid(x)), [F], none_of(E.Log), None),
    ("stabilize_log_one_minus_sigmoid", lambda x: sg.log(1 - sg.sigmoid(x)) * sg.sigmoid(x), [F],
     none_of(E.Log), None),
    ("stabilize_one_minus_sigmoid", lambda x: (1.0 - sg.sigmoid(x)) * 2.0, [F],
     lambda f: count(f, E.Subtract) == 0, None),
    ("stabilize_softplus", lambda x: sg.log(1.0 + sg.exp(x)), [F], none_of(E.Log, E.Exp), None),
    ("stabilize_log1p", lambda x: sg.log(1.0 + x), [P], none_of(E.Log), None),
    ("stabilize_expm1", lambda x: sg.exp(x) - 1.0, [F], none_of(E.Exp), None),
    ("stabilize_logsumexp", lambda x: sg.log(sg.sum(sg.exp(x), axis=1)), [F],
     lambda f: count(f, R.Max) == 1, None),
    ("stabilize_softmax", lambda x: sg.exp(x) / sg.sum(sg.exp(x), axis=1, keepdims=True), [F],
     lambda f: count(f, Softmax) == 1 and count(f, E.Exp) == 0, None),
    ("stabilize_softmax_gradient",
     lambda x: sg.grad(sg.sum(sg.log(sg.sum(sg.exp(x), axis=1))), [x])[0], [F],
     lambda f: count(f, Softmax) == 1, None),
    ("cancel_positive_factors", lambda x, y: (y / sg.exp(x)) * sg.exp(x), [F, G],
     none_of(E.Divide), None),
    ("cancel_positive_factors", lambda x, y: (y / (1.0 + sg.exp(x))) * sg.exp(x), [F, G],
     lambda f: count(f, E.Sigmoid) == 1 and count(f, E.Divide) == 0, None),
    ("fold_transpose_into_matmul", lambda a, b: a.T @ b, [M, M],
     none_of(Transpose), None),
    ("fold_transpose_of_matmul", lambda a, b: (a @ b).T, [F, M], none_of(Transpose), None),
    ("specialize_inner_product", lambda u, v: sg.dot(u, v), [V, V * 2],
     none_of(MatMul), None),
    ("specialize_vector_matrix", lambda v, m: sg.dot(v, m), [V, M],
     lambda f: all(not op.transpose_b for op in f.optimized.graph.nx.nodes(data="op")
                   if isinstance(op, MatMul)), None),
    ("fuse_elementwise", lambda x, y: sg.exp(x) * y + 1.0, [F, G],
     lambda f: count(f, E.Elementwise, bodies=False) == 0, {"verify": True}),
]


@pytest.mark.parametrize("rule,build,arrays,check,rewrites", CASES,
                         ids=[f"{c[0]}-{k}" for k, c in enumerate(CASES)])
def test_rule_fires_and_keeps_values(rule, build, arrays, check, rewrites):
    f = check_rule(rule, build, arrays, rewrites=rewrites)
    assert check(f), f"{rule}: unexpected graph\n{f.describe()}"


def test_every_rule_has_a_case():
    tested = {c[0] for c in CASES}
    missing = sorted(set(all_rules()) - tested)
    assert not missing, f"rules without a before/after test: {missing}"


def test_every_rule_says_what_it_does():
    for name, rule in all_rules().items():
        assert rule.doc and rule.doc != name, f"{name} has no docstring"
        if isinstance(rule, Rule):
            assert "->" in rule.doc, f"{name}: the docstring should start with the rewrite"


def test_float_x_minus_x_is_kept_by_default():
    """inf - inf is nan: without finite_math, x - x stays."""
    x = np.array([1.0, np.inf, np.nan], np.float32)
    from .test_rewrite_util import compile_pair
    plain, opt = compile_pair(lambda t: t - t, [x])
    assert opt.rewrite_report.fired["fold_subtract_self"] == 0
    np.testing.assert_array_equal(opt(x), plain(x))


def test_sum_of_broadcast_over_a_symbolic_dim_multiplies_by_its_value():
    with sg.Graph():
        x = sg.placeholder(shape=(None, 4), name="x")
        v = sg.placeholder(shape=(4,), name="v")
        out = sg.sum(sg.broadcast_to(v, x.shape), axis=0) + sg.sum(x, axis=0)
        f = sg.function([x, v], out, rewrites={"verify": True}, mode="reference")
        ref = sg.function([x, v], out, rewrites=False, mode="reference")
    assert f.rewrite_report.fired["fold_sum_of_broadcast"] == 1
    assert any(isinstance(op, DimValue) for _, op in f.graph.nodes(data="op"))
    for n in (1, 5):
        xs = np.ones((n, 4), np.float32)
        np.testing.assert_allclose(f(xs, V), ref(xs, V), rtol=1e-6)


def test_exp_of_log_keeps_the_domain():
    x = np.array([-1.0, 0.0, 2.0, np.nan], np.float32)
    from .test_rewrite_util import compile_pair
    plain, opt = compile_pair(lambda t: sg.exp(sg.log(t)), [x])
    np.testing.assert_array_equal(opt(x), plain(x))


PRODUCT_RULES = ["move_negation_out_of_product", "move_constant_out_of_product",
                 "factor_common_multiplicand", "simplify_product_with_complement"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((1, 4), (3, 1)),
                                    ((0, 4), (4,)), ((1,), (1,))])
def test_product_rules_keep_values_with_broadcasting(dtype, shapes):
    """The product rules on broadcast operands of both float dtypes, native vs unrewritten
    reference: a * b - a * c, x * (1 - y) - x, (c * x) * y, x * (-y)."""
    def build(x, y):
        return (x * y - x * sg.exp(y) + (x * (1.0 - y) - x) * 2.0
                + (sg.tanh(x) * 2.0) * y * 1.5 + x * (-y))
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    with sg.Graph():
        xs = [sg.placeholder(shape=a.shape, dtype=dtype, name=f"x{i}") for i, a in enumerate(arrays)]
        out = build(*xs)
        plain = sg.function(xs, out, rewrites=False, mode="reference")
        opt = sg.function(xs, out, rewrites={"verify": True})
    fired = opt.rewrite_report.fired
    assert all(fired[r] > 0 for r in PRODUCT_RULES), {r: fired[r] for r in PRODUCT_RULES}
    tol = 2e-5 if dtype == np.float32 else 1e-12
    assert_same(plain(*arrays), opt(*arrays), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_of_exp_neg_times_sigmoid_becomes_minus_product_of_squares(dtype):
    """d/dx [e^-x sigmoid(x)] = e^-x s (1 - s) - e^-x s is rewritten to -(e^-x s^2): one
    product and no cancellation, so it matches the closed form where the unrewritten
    graph loses every digit (x << 0)."""
    x = np.concatenate([rng.standard_normal(1000) * 4, [-30.0, -15.0, 0.0, 15.0, 30.0]])
    x = x.astype(dtype)
    with sg.Graph():
        xp = sg.placeholder(shape=(None,), dtype=dtype, name="x")
        (gx,) = sg.grad(sg.sum(sg.exp(-xp) * sg.sigmoid(xp)), [xp])
        f = sg.function([xp], gx, rewrites={"verify": True})
    fired = f.rewrite_report.fired
    assert fired["factor_common_multiplicand"] and fired["simplify_product_with_complement"]
    xl = x.astype(np.longdouble)
    s = 1 / (1 + np.exp(-xl))
    want = -np.exp(-xl) * s * s
    np.testing.assert_allclose(f(x), want.astype(dtype), rtol=2e-6 if dtype == np.float32 else 1e-14)
