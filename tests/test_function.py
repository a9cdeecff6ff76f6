"""sg.function: argument checking at call time, outputs, updates and shared state,
graph errors at compile time, and build-time errors that point at the user's line."""
import inspect

import numpy as np
import pytest

import symgraph as sg


def line_of_next_statement() -> int:
    return inspect.currentframe().f_back.f_lineno + 1


@pytest.fixture(params=["reference", "native"])
def mode(request):
    """Every execution mode must check arguments and apply updates the same way."""
    return request.param


@pytest.fixture
def add_xy(mode):
    """f(x: float32[N, 3], y: float32[3]) = x + y."""
    with sg.Graph():
        x = sg.placeholder(shape=("N", 3), dtype="float32", name="x")
        y = sg.placeholder(shape=(3,), dtype="float32", name="y")
        return sg.function([x, y], x + y, mode=mode)


# -- call-time validation ------------------------------------------------------------------------
def test_wrong_argument_count(add_xy):
    with pytest.raises(sg.InputError, match=r"expected 2 arguments \(x, y\), got 1"):
        add_xy(np.ones((2, 3)))
    with pytest.raises(sg.InputError, match=r"expected 2 arguments \(x, y\), got 3"):
        add_xy(np.ones((2, 3)), np.ones(3), np.ones(3))


def test_same_kind_conversion_of_argument_dtypes(add_xy):
    out = add_xy(np.ones((2, 3), np.float64), np.arange(3))  # float64 and int64 into float32
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.ones((2, 3)) + np.arange(3))
    np.testing.assert_array_equal(add_xy([[1, 2, 3]], [True, False, True]), [[2, 2, 4]])


def test_float_into_int_or_bool_is_refused(mode):
    with sg.Graph():
        i = sg.placeholder(shape=(2,), dtype="int32", name="i")
        b = sg.placeholder(shape=(2,), dtype="bool", name="b")
        f = sg.function([i, b], sg.where(b, i, 0), mode=mode)
    np.testing.assert_array_equal(f(np.array([5, 6], np.int64), [True, False]), [5, 0])
    with pytest.raises(sg.InputError, match=r"argument 0 \(i\): expected int32, got float64"):
        f(np.array([1.0, 2.0]), [True, False])
    with pytest.raises(sg.InputError, match=r"argument 1 \(b\): expected bool, got int64"):
        f([1, 2], np.array([1, 0]))
    with pytest.raises(sg.InputError, match=r"argument 1 \(b\): expected bool, got float32"):
        f([1, 2], np.array([1, 0], np.float32))
    with pytest.raises(sg.InputError, match="argument 0 .*complex128"):
        f(np.array([1j, 2j]), [True, False])
    with pytest.raises(sg.InputError, match="argument 0 .*<U"):
        f(["a", "b"], [True, False])


def test_arguments_that_are_not_arrays(add_xy):
    with sg.Graph():
        t = sg.placeholder(shape=(3,), name="t")
    with pytest.raises(sg.InputError, match=r"argument 1 \(y\): got the symbolic tensor"):
        add_xy(np.ones((1, 3)), t)
    with pytest.raises(sg.InputError, match=r"argument 0 \(x\): cannot be converted"):
        add_xy([[1.0, 2.0, 3.0], [1.0]], np.ones(3))
    with pytest.raises(sg.InputError, match=r"argument 1 \(y\): expected float32 data, got object"):
        add_xy(np.ones((1, 3)), None)


def test_rank_mismatch(add_xy):
    with pytest.raises(sg.InputError,
                       match=r"argument 1 \(y\): expected rank 1 \(float32\[3\]\), got shape "
                             r"\(1, 3\)"):
        add_xy(np.ones((2, 3)), np.ones((1, 3)))


def test_static_dim_mismatch(add_xy):
    with pytest.raises(sg.InputError,
                       match=r"argument 0 \(x\): dim 1 must be 3 \(float32\[N, 3\]\), got shape "
                             r"\(2, 4\)"):
        add_xy(np.ones((2, 4)), np.ones(3))


def test_a_symbolic_dim_bound_inconsistently_by_two_arguments(mode):
    with sg.Graph():
        x = sg.placeholder(shape=("N", 2), name="x")
        y = sg.placeholder(shape=("N",), name="y")
        f = sg.function([x, y], sg.sum(x) + sg.sum(y), mode=mode)
    assert f(np.ones((4, 2)), np.ones(4)) == 12
    assert f(np.ones((0, 2)), np.ones(0)) == 0  # a new size does not need recompiling
    with pytest.raises(sg.InputError) as e:
        f(np.ones((3, 2)), np.ones(4))
    msg = str(e.value)
    assert "argument 1 (y)" in msg and "argument 0 (x)" in msg and "'N'" in msg
    assert "3" in msg and "4" in msg


def test_two_symbolic_dims_that_broadcast_must_agree_at_call_time(mode):
    with sg.Graph():
        a = sg.placeholder(shape=("N",), dtype="float64", name="a")
        b = sg.placeholder(shape=("M",), dtype="float64", name="b")
        line = line_of_next_statement()
        c = a * b
        f = sg.function([a, b], c, mode=mode)
    np.testing.assert_array_equal(f([1.0, 2.0], [3.0, 4.0]), [3.0, 8.0])
    for bad in ([5.0, 6.0, 7.0], [5.0]):  # a size 1 is not stretched: N and M are not 1 statically
        with pytest.raises(sg.InputError) as e:
            f([1.0, 2.0], bad)
        msg = str(e.value)
        assert "N = 2" in msg and f"M = {len(bad)}" in msg
        assert "multiply" in msg and f"{__file__}:{line}" in msg


def test_non_contiguous_and_read_only_inputs_work(add_xy):
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    x = base[:, ::2]                 # strided
    y = np.arange(6, dtype=np.float32)[::2]
    assert not x.flags.c_contiguous
    np.testing.assert_array_equal(add_xy(x, y), x + y)
    xt = np.asfortranarray(np.ones((2, 3), np.float32))
    ro = np.ones(3, np.float32)
    ro.flags.writeable = False
    np.testing.assert_array_equal(add_xy(xt, ro), xt + ro)


# -- outputs -------------------------------------------------------------------------------------
def test_outputs_are_fresh_arrays(mode):
    with sg.Graph():
        x = sg.placeholder(shape=(2,), dtype="float64", name="x")
        w = sg.shared(np.array([1.0, 2.0]), name="w")
        c = sg.constant(np.array([5.0, 6.0]))
        f = sg.function([x], [x, w, c, x * 1.0, x * 1.0], mode=mode)
    arg = np.array([3.0, 4.0])
    outs = f(arg)
    assert all(isinstance(o, np.ndarray) for o in outs)
    assert outs[3] is not outs[4]
    for o in outs:
        o[...] = -1.0
    np.testing.assert_array_equal(arg, [3.0, 4.0])
    np.testing.assert_array_equal(w.get_value(), [1.0, 2.0])
    again = f(arg)
    for o, want in zip(again, [[3, 4], [1, 2], [5, 6], [3, 4], [3, 4]]):
        np.testing.assert_array_equal(o, want)


def test_single_output_list_of_outputs_and_no_outputs(mode):
    with sg.Graph():
        x = sg.placeholder(shape=(), dtype="float64", name="x")
        assert isinstance(sg.function([x], x * 2.0, mode=mode)(3.0), np.ndarray)
        assert sg.function([x], [x * 2.0], mode=mode)(3.0) == [6.0]
        assert sg.function(x, (x, x + 1.0), mode=mode)(3.0) == [3.0, 4.0]
        w = sg.shared(0.0, name="w")
        assert sg.function([], updates=[(w, w + 1.0)], mode=mode)() == []
        assert w.get_value() == 1.0


# -- updates and shared variables -----------------------------------------------------------------
def test_updates_as_a_list_or_a_dict(mode):
    with sg.Graph():
        w = sg.shared(np.zeros(2, np.float32), name="w")
        x = sg.placeholder(shape=(2,), name="x")
        f_list = sg.function([x], w * 1.0, updates=[(w, w + x)], mode=mode)
        f_dict = sg.function([x], w * 1.0, updates={w: w - x}, mode=mode)
    np.testing.assert_array_equal(f_list([1, 2]), [0, 0])  # outputs see the old value
    np.testing.assert_array_equal(w.get_value(), [1, 2])
    np.testing.assert_array_equal(f_list([1, 2]), [1, 2])
    np.testing.assert_array_equal(f_dict([0.5, 0.5]), [2, 4])
    np.testing.assert_array_equal(w.get_value(), [1.5, 3.5])


def test_all_updates_are_computed_from_old_values(mode):
    with sg.Graph():
        a = sg.shared(np.array([1.0, 2.0]), name="a")
        b = sg.shared(np.array([3.0, 4.0]), name="b")
        c = sg.shared(np.array([0.0, 0.0]), name="c")
        swap = sg.function([], [], updates=[(a, b), (b, a), (c, a * 10.0)], mode=mode)
    swap()
    np.testing.assert_array_equal(a.get_value(), [3, 4])
    np.testing.assert_array_equal(b.get_value(), [1, 2])
    np.testing.assert_array_equal(c.get_value(), [10, 20])
    swap()
    np.testing.assert_array_equal(a.get_value(), [1, 2])
    np.testing.assert_array_equal(b.get_value(), [3, 4])
    np.testing.assert_array_equal(c.get_value(), [30, 40])


def test_update_dtype_is_cast_when_same_kind_allows(mode):
    with sg.Graph():
        w = sg.shared(np.array([1.0, 2.0], np.float32), name="w")
        n = sg.shared(np.array([1, 2], np.int32), name="n")
        sg.function([], [], updates=[(w, w * np.float64(2.0)), (n, n + np.int64(5))], mode=mode)()
        assert w.get_value().dtype == np.float32 and n.get_value().dtype == np.int32
        np.testing.assert_array_equal(w.get_value(), [2.0, 4.0])
        np.testing.assert_array_equal(n.get_value(), [6, 7])
        with pytest.raises(sg.DTypeError, match="'n'.*float64.*int32"):
            sg.function([], [], updates=[(n, n * 0.5)], mode=mode)
        with pytest.raises(sg.ShapeError, match=r"'w'.*\(3,\).*\(2,\)"):
            sg.function([], [], updates=[(w, np.ones(3, np.float32))], mode=mode)
        with pytest.raises(sg.GraphError, match="updated twice"):
            sg.function([], [], updates=[(w, w), (w, w + 1.0)], mode=mode)
        x = sg.placeholder(shape=(2,), name="x")
        with pytest.raises(sg.GraphError, match="not a shared variable"):
            sg.function([x], [], updates=[(x, x + 1.0)], mode=mode)
        with pytest.raises(sg.GraphError, match="pair"):
            sg.function([], [], updates=[w], mode=mode)


def test_shared_get_value_and_set_value_copy_unless_borrowed(mode):
    init = np.array([1.0, 2.0], np.float32)
    with sg.Graph():
        w = sg.shared(init, name="w")
        bump = sg.function([], [], updates=[(w, w + 1.0)], mode=mode)
    init[0] = 100.0                       # shared() copied its value
    v = w.get_value()
    v[0] = 50.0                           # get_value() returns a copy
    np.testing.assert_array_equal(w.get_value(), [1.0, 2.0])
    new = np.array([7.0, 8.0], np.float32)
    w.set_value(new)
    new[0] = 0.0                          # set_value() copied
    np.testing.assert_array_equal(w.get_value(), [7.0, 8.0])
    w.set_value([3, 4])                   # converted under same_kind
    assert w.get_value().dtype == np.float32
    mine = np.array([1.0, 1.0], np.float32)
    w.set_value(mine, borrow=True)
    assert w.get_value(borrow=True) is mine
    bump()                                # updates write into the borrowed array
    np.testing.assert_array_equal(mine, [2.0, 2.0])
    with pytest.raises(sg.ShapeError, match=r"'w'.*\(3,\).*\(2,\)"):
        w.set_value(np.ones(3, np.float32))
    with pytest.raises(sg.DTypeError, match="'w'.*complex"):
        w.set_value(np.ones(2, np.complex64))
    bump()
    np.testing.assert_array_equal(w.get_value(), [3.0, 3.0])  # the refused sets changed nothing


def test_a_shared_value_set_between_calls_is_seen_by_the_next_call(mode):
    with sg.Graph():
        w = sg.shared(np.zeros(3), name="w")
        x = sg.placeholder(shape=(3,), dtype="float64", name="x")
        f = sg.function([x], sg.sum(w * x), mode=mode)
    assert f(np.ones(3)) == 0.0
    w.set_value(np.array([1.0, 2.0, 3.0]))
    assert f(np.ones(3)) == 6.0


# -- graph errors at compile time -------------------------------------------------------------
def test_a_placeholder_missing_from_inputs_is_named():
    with sg.Graph():
        x = sg.placeholder(shape=(2,), name="x")
        line = line_of_next_statement()
        forgotten = sg.placeholder(shape=(2,), name="forgotten")
        with pytest.raises(sg.GraphError) as e:
            sg.function([x], x + forgotten)
    msg = str(e.value)
    assert "'forgotten'" in msg and "not among the inputs" in msg
    assert f"{__file__}:{line}" in msg


def test_a_shared_variable_listed_as_an_input_is_refused():
    with sg.Graph():
        w = sg.shared(np.zeros(2, np.float32), name="w")
        with pytest.raises(sg.GraphError, match="'w'.*shared variable"):
            sg.function([w], w * 2.0)


def test_other_bad_inputs_are_refused():
    with sg.Graph():
        x = sg.placeholder(shape=(2,), name="x")
        y = x * 2.0
        with pytest.raises(TypeError, match="input 0 is a ndarray"):
            sg.function([np.ones(2)], y)
        with pytest.raises(sg.GraphError, match="not a placeholder"):
            sg.function([y], y * 2.0)
        with pytest.raises(sg.GraphError, match="listed twice"):
            sg.function([x, x], y)
    with sg.Graph():
        other = sg.placeholder(shape=(2,), name="other")
    with pytest.raises(sg.GraphError, match="different graphs"):
        sg.function([x], other)


def test_an_input_the_outputs_do_not_use_is_still_an_argument(mode):
    with sg.Graph():
        x = sg.placeholder(shape=(2,), dtype="float64", name="x")
        unused = sg.placeholder(shape=("K",), dtype="int32", name="unused")
        f = sg.function([x, unused], x * 2.0, mode=mode)
    np.testing.assert_array_equal(f([1.0, 2.0], [1, 2, 3]), [2.0, 4.0])
    with pytest.raises(sg.InputError, match="argument 1"):
        f([1.0, 2.0], [1.5])


# -- build-time errors --------------------------------------------------------------------------
def test_a_broadcast_error_names_op_arguments_shapes_and_line():
    with sg.Graph():
        a = sg.placeholder(shape=(2, 3), name="a")
        b = sg.placeholder(shape=(4,), name="b")
        with pytest.raises(sg.ShapeError) as e:
            line = line_of_next_statement()
            a + b
    msg = str(e.value)
    assert msg.startswith("add:")
    assert "argument 0" in msg and "argument 1" in msg
    assert "(2, 3)" in msg and "(4,)" in msg and "a:float32[2, 3]" in msg and "b:float32[4]" in msg
    assert f"{__file__}:{line}" in msg


def test_other_build_errors_point_at_the_users_line():
    with sg.Graph():
        a = sg.placeholder(shape=(2, 3), name="a")
        w = sg.placeholder(shape=(4, 5), name="w")
        with pytest.raises(sg.ShapeError) as matmul_error:
            line_matmul = line_of_next_statement()
            a @ w
        with pytest.raises(sg.ShapeError) as reshape_error:
            line_reshape = line_of_next_statement()
            sg.reshape(a, (4, 2))
        with pytest.raises(sg.DTypeError) as where_error:
            line_where = line_of_next_statement()
            sg.where(a, a, a)
    for e, op, line in [(matmul_error, "matmul", line_matmul),
                        (reshape_error, "reshape", line_reshape),
                        (where_error, "where", line_where)]:
        msg = str(e.value)
        assert msg.startswith(op + ":")
        assert "a:float32[2, 3]" in msg  # the argument, with its shape
        assert f"{__file__}:{line}" in msg


# -- the loss goes down ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradient_descent_recovers_the_weights_of_a_linear_model(dtype, mode):
    rng = np.random.default_rng(3)
    true_w = np.array([[2.0], [-3.0], [0.5]])
    true_b = np.array([1.25])
    data = rng.standard_normal((256, 3))
    target = data @ true_w + true_b
    with sg.Graph():
        x = sg.placeholder(shape=(None, 3), dtype=dtype, name="x")
        y = sg.placeholder(shape=(None, 1), dtype=dtype, name="y")
        w = sg.shared(np.zeros((3, 1), dtype), name="w")
        b = sg.shared(np.zeros(1, dtype), name="b")
        loss = sg.mean((x @ w + b - y) ** 2)
        gw, gb = sg.grad(loss, [w, b])
        step = sg.function([x, y], loss, updates=[(w, w - 0.1 * gw), (b, b - 0.1 * gb)], mode=mode)
        predict = sg.function([x], x @ w + b, mode=mode)
    losses = []
    for epoch in range(60):
        for k in range(0, 256, 32):  # minibatches: the batch size is a symbolic dim
            losses.append(float(step(data[k:k + 32], target[k:k + 32])))
    assert losses[-1] < 1e-3 * losses[0]
    assert all(later <= 1.5 * earlier for earlier, later in zip(losses[::8], losses[8::8]))
    assert w.get_value().dtype == np.dtype(dtype)
    np.testing.assert_allclose(w.get_value(), true_w, atol=1e-3)
    np.testing.assert_allclose(b.get_value(), true_b, atol=1e-3)
    np.testing.assert_allclose(predict(data[:5]), target[:5], atol=1e-2)
