"""Symbolic gradients: structure of results, errors, zero gradients, higher order, vjp,
and sg.testing.check_grad itself (it must pass good gradients and catch a wrong one)."""
from dataclasses import dataclass

import numpy as np
import pytest

import symgraph as sg
from symgraph.op import Op, apply
from symgraph.types import TensorType

RNG = np.random.default_rng(7)


def run(outputs, inputs, *arrays):
    return sg.function(list(inputs), outputs, mode="reference")(*arrays)


def numeric_grad(f, x, eps=1e-6):
    """Central differences of a float function of one float64 array."""
    g = np.zeros_like(x)
    for k in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[k] = eps
        g[k] = (f(x + d) - f(x - d)) / (2 * eps)
    return g


# -- the classic example -------------------------------------------------------------------------
def test_classic_example_sum_exp_a_times_b():
    a = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    b = np.array([[1.0, 2.0, 3.0]])
    with sg.Graph():
        A = sg.placeholder(shape=(2, 3), dtype="float64", name="A")
        B = sg.placeholder(shape=(1, 3), dtype="float64", name="B")
        E = sg.sum(sg.exp(A * B))
        gA, gB = sg.grad(E, [A, B])
        assert gA.shape == (2, 3) and gB.shape == (1, 3)
        e, da, db = run([E, gA, gB], [A, B], a, b)
    np.testing.assert_allclose(e, np.exp(a * b).sum())
    np.testing.assert_allclose(da, b * np.exp(a * b))
    np.testing.assert_allclose(db, (a * np.exp(a * b)).sum(axis=0, keepdims=True))
    sg.testing.check_grad(lambda p, q: sg.sum(sg.exp(p * q)), [a, b])


# -- structure of wrt --------------------------------------------------------------------------
def test_wrt_structure_is_kept():
    with sg.Graph():
        x = sg.placeholder(shape=(3,), dtype="float64", name="x")
        y = sg.placeholder(shape=(2,), dtype="float64", name="y")
        c = sg.sum(x * x) + sg.sum(3.0 * y)
        single = sg.grad(c, x)
        as_list = sg.grad(c, [x, y])
        as_tuple = sg.grad(c, (y, x))
        as_dict = sg.grad(c, {"x": x, "y": y})
        assert isinstance(single, sg.Tensor)
        assert isinstance(as_list, list) and len(as_list) == 2
        assert isinstance(as_tuple, tuple) and len(as_tuple) == 2
        assert isinstance(as_dict, dict) and list(as_dict) == ["x", "y"]
        xv, yv = np.array([1.0, 2.0, 3.0]), np.array([5.0, 6.0])
        got = run([single, *as_list, *as_tuple, as_dict["x"], as_dict["y"]], [x, y], xv, yv)
    for g, w in zip(got, [2 * xv, 2 * xv, [3, 3], [3, 3], 2 * xv, 2 * xv, [3, 3]]):
        np.testing.assert_allclose(g, w)


def test_grad_of_the_cost_itself_and_of_a_repeated_wrt():
    with sg.Graph():
        x = sg.placeholder(shape=(2,), dtype="float64", name="x")
        c = sg.sum(sg.sin(x))
        one, gx1, gx2 = sg.grad(c, [c, x, x])
        got = run([one, gx1, gx2], [x], np.array([0.0, 1.0]))
    assert got[0] == 1.0
    np.testing.assert_allclose(got[1], np.cos([0.0, 1.0]))
    np.testing.assert_allclose(got[2], got[1])


def test_gradients_keep_the_wrt_dtype():
    with sg.Graph():
        x = sg.placeholder(shape=(2,), dtype="float32", name="x")
        w = sg.shared(np.ones(2, np.float64), name="w")
        c = sg.sum(x * w)  # float64 cost
        gx, gw = sg.grad(c, [x, w])
        assert gx.dtype == np.float32 and gw.dtype == np.float64


# -- errors --------------------------------------------------------------------------------------
def test_a_non_scalar_cost_is_a_clear_gradient_error():
    with sg.Graph():
        x = sg.placeholder(shape=(2, 3), name="x")
        with pytest.raises(sg.GradientError, match=r"scalar.*\(2, 3\).*sg.vjp"):
            sg.grad(x * 2.0, [x])
        with pytest.raises(sg.GradientError, match="float"):
            sg.grad(sg.argmax(x), [x])


def test_disconnected_raise_names_the_variable_and_zero_gives_zeros():
    with sg.Graph():
        x = sg.placeholder(shape=(2,), dtype="float64", name="x")
        lonely = sg.placeholder(shape=(3,), dtype="float64", name="lonely")
        c = sg.sum(x * x)
        with pytest.raises(sg.GradientError, match="'lonely'.*disconnected='zero'"):
            sg.grad(c, [x, lonely])
        gx, gl = sg.grad(c, [x, lonely], disconnected="zero")
        assert gl.shape == (3,) and gl.dtype == np.float64
        got = run([gx, gl], [x, lonely], np.array([1.0, 2.0]), np.zeros(3))
    np.testing.assert_allclose(got[0], [2.0, 4.0])
    np.testing.assert_array_equal(got[1], np.zeros(3))
    with pytest.raises(ValueError, match="disconnected"):
        sg.grad(c, [x], disconnected="ignore")


def test_integer_wrt_is_refused():
    with sg.Graph():
        i = sg.placeholder(shape=(2,), dtype="int64", name="i")
        with pytest.raises(sg.GradientError, match="'i'.*int64.*float"):
            sg.grad(sg.sum(sg.cast(i, "float32")), [i])


@pytest.mark.parametrize("build", [
    lambda x: sg.cast(sg.argmax(x), "float64"),
    lambda x: sg.cast(x > 0.5, "float64") * 3.0,
    lambda x: sg.cast(sg.cast(x * 10.0, "int32"), "float64"),
    lambda x: sg.cast(sg.equal(x, x), "float64"),
    lambda x: sg.stop_gradient(x) * 2.0,
    lambda x: sg.sign(x),
], ids=["argmax", "comparison", "int-cast", "equal", "stop_gradient", "sign"])
def test_gradients_through_piecewise_constant_ops_are_zero(build):
    with sg.Graph():
        x = sg.placeholder(shape=(4,), dtype="float64", name="x")
        (gx,) = sg.grad(sg.sum(build(x)), [x])  # connected: no disconnected error
        got = run(gx, [x], np.array([0.1, 0.9, -0.3, 0.6]))
    np.testing.assert_array_equal(got, np.zeros(4))


def test_a_mixed_path_keeps_the_differentiable_part():
    xv = np.array([1.5, 3.0, 2.0, 0.5])
    with sg.Graph():
        x = sg.placeholder(shape=(4,), dtype="float64", name="x")
        idx = sg.cast(sg.argmax(x), "float64")
        (gx,) = sg.grad(sg.sum(idx * x + sg.cast(x > 1.0, "float64") * x), [x])
        got = run(gx, [x], xv)
    np.testing.assert_allclose(got, np.argmax(xv) + (xv > 1.0))


# -- higher order ----------------------------------------------------------------------------------
def test_grad_of_grad():
    xv = np.array([0.5, -1.0, 2.0])
    with sg.Graph():
        x = sg.placeholder(shape=(3,), dtype="float64", name="x")
        g1 = sg.grad(sg.sum(x ** 3), x)
        g2 = sg.grad(sg.sum(g1), x)
        g3 = sg.grad(sg.sum(g2), x)
        got = run([g1, g2, g3], [x], xv)
    np.testing.assert_allclose(got[0], 3 * xv ** 2)
    np.testing.assert_allclose(got[1], 6 * xv)
    np.testing.assert_allclose(got[2], np.full(3, 6.0))


def test_hessian_vector_product_matches_finite_differences():
    m = RNG.standard_normal((4, 3))
    xv, vv = RNG.standard_normal(3), RNG.standard_normal(3)
    with sg.Graph():
        x = sg.placeholder(shape=(3,), dtype="float64", name="x")
        v = sg.placeholder(shape=(3,), dtype="float64", name="v")
        f = sg.sum(sg.tanh(m @ x) ** 2) + sg.sum(sg.exp(x) * x)
        gx = sg.grad(f, x)
        hv = sg.grad(sg.sum(gx * v), x)
        grad_fn = sg.function([x], gx, mode="reference")
        hv_fn = sg.function([x, v], hv, mode="reference")
    eps = 1e-5
    want = (grad_fn(xv + eps * vv) - grad_fn(xv - eps * vv)) / (2 * eps)
    np.testing.assert_allclose(hv_fn(xv, vv), want, rtol=1e-6, atol=1e-8)


# -- vjp -----------------------------------------------------------------------------------------
def test_vjp_of_a_non_scalar_output_is_the_transposed_jacobian_times_v():
    m = RNG.standard_normal((2, 3))
    xv, vv = RNG.standard_normal(3), RNG.standard_normal(2)
    with sg.Graph():
        x = sg.placeholder(shape=(3,), dtype="float64", name="x")
        v = sg.placeholder(shape=(2,), dtype="float64", name="v")
        y = sg.sin(m @ x) * 2.0
        (jv,) = sg.vjp(y, [x], v)
        const = sg.vjp(y, x, np.ones(2))  # a numpy cotangent becomes a constant
        got, got_ones = run([jv, const], [x, v], xv, vv)
    jac = 2 * np.cos(m @ xv)[:, None] * m
    np.testing.assert_allclose(got, jac.T @ vv)
    np.testing.assert_allclose(got_ones, jac.T @ np.ones(2))


def test_vjp_of_several_outputs_sums_their_contributions():
    xv = np.array([0.3, -0.7])
    with sg.Graph():
        x = sg.placeholder(shape=(2,), dtype="float64", name="x")
        y1, y2 = sg.exp(x), x * x
        gx = sg.vjp([y1, y2], x, [np.array([1.0, 2.0]), np.array([3.0, 4.0])])
        got = run(gx, [x], xv)
    np.testing.assert_allclose(got, np.exp(xv) * [1, 2] + 2 * xv * [3, 4])


def test_vjp_checks_cotangents():
    with sg.Graph():
        x = sg.placeholder(shape=(3,), dtype="float64", name="x")
        y = sg.exp(x)
        with pytest.raises(sg.GradientError, match=r"cotangent shape \(4,\).*\(3,\)"):
            sg.vjp(y, x, np.ones(4))
        with pytest.raises(sg.GradientError, match="2 cotangents"):
            sg.vjp(y, x, [np.ones(3), np.ones(3)])


def test_vjp_with_a_symbolic_cotangent_shape_is_checked_at_call_time():
    with sg.Graph():
        x = sg.placeholder(shape=("N",), dtype="float64", name="x")
        v = sg.placeholder(shape=("M",), dtype="float64", name="v")
        f = sg.function([x, v], sg.vjp(x * 2.0, x, v), mode="reference")
    np.testing.assert_allclose(f(np.ones(3), np.arange(3.0)), [0.0, 2.0, 4.0])
    with pytest.raises(sg.InputError, match="N = 3 but M = 2|M = 2 but N = 3"):
        f(np.ones(3), np.ones(2))


# -- check_grad and custom ops ---------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class SquarePlusOne(Op):
    """x**2 + 1 with a correct or a deliberately wrong vjp (2x versus 3x)."""

    factor: float = 2.0
    elementwise = True

    def infer(self, x):
        return TensorType(x.dtype, x.shape)

    def reference(self, x):
        return x * x + 1

    def vjp(self, inputs, output, g):
        return [g * inputs[0] * self.factor]


def test_check_grad_passes_on_a_correct_gradient():
    arrays = [RNG.standard_normal((2, 3))]
    got = sg.testing.check_grad(lambda x: apply(SquarePlusOne(), x), arrays)
    assert got[0].shape == (2, 3)
    sg.testing.check_grad(lambda x, y: sg.tanh(x) * sg.sum(y ** 2),
                          [RNG.standard_normal(3), RNG.standard_normal(4)])


def test_check_grad_raises_on_a_wrong_gradient():
    with pytest.raises(AssertionError, match="gradient of input 0 differs"):
        sg.testing.check_grad(lambda x: apply(SquarePlusOne(factor=3.0), x),
                              [RNG.standard_normal((2, 3))])


def test_a_vjp_returning_the_wrong_number_of_cotangents_names_the_op():
    @dataclass(frozen=True, kw_only=True)
    class Broken(SquarePlusOne):
        def vjp(self, inputs, output, g):
            return [g, g]

    with sg.Graph():
        x = sg.placeholder(shape=(2,), dtype="float64", name="x")
        with pytest.raises(sg.GradientError, match="broken.*2 cotangents for 1 inputs"):
            sg.grad(sg.sum(apply(Broken(), x)), x)


def test_a_vjp_returning_the_wrong_shape_names_the_op():
    @dataclass(frozen=True, kw_only=True)
    class Sloppy(SquarePlusOne):
        def vjp(self, inputs, output, g):
            return [sg.sum(g)]

    with sg.Graph():
        x = sg.placeholder(shape=(2,), dtype="float64", name="x")
        with pytest.raises(sg.GradientError, match=r"sloppy.*shape \(\).*\(2,\)"):
            sg.grad(sg.sum(apply(Sloppy(), x)), x)
