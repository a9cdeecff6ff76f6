"""The graph and the Tensor handle: scoping, argument order, operators, metadata, dtypes."""
import threading

import networkx as nx
import numpy as np
import pytest

import symgraph as sg


def run(outputs, inputs=(), *arrays):
    return sg.function(list(inputs), outputs, mode="reference")(*arrays)


# -- graphs and scoping ----------------------------------------------------------------------
def test_with_graph_makes_it_the_default_and_restores_the_previous_one():
    outer = sg.get_default_graph()
    with sg.Graph("a") as a:
        assert sg.get_default_graph() is a
        x = sg.placeholder(shape=(2,), name="x")
        with sg.Graph("b") as b:
            assert sg.get_default_graph() is b
            y = sg.placeholder(shape=(2,), name="y")
        assert sg.get_default_graph() is a
    assert sg.get_default_graph() is outer
    assert x.graph is a and y.graph is b
    assert len(a) == 1 and len(b) == 1  # node ids are per graph


def test_an_op_goes_to_the_graph_of_its_inputs():
    with sg.Graph() as a:
        x = sg.placeholder(shape=(2,), name="x")
    y = sg.exp(x) + 1.0  # outside the with block: still graph a, constants included
    assert y.graph is a
    assert all(t.graph is a for t in y.inputs)


def test_with_graph_is_per_thread():
    seen = {}
    with sg.Graph() as g:
        t = threading.Thread(target=lambda: seen.setdefault("g", sg.get_default_graph()))
        t.start()
        t.join()
    assert seen["g"] is not g


def test_reset_default_graph_starts_a_new_graph_and_keeps_old_tensors_valid():
    old = sg.get_default_graph()
    x = sg.placeholder(shape=(2,), dtype="float64", name="x")
    new = sg.reset_default_graph()
    assert new is not old and sg.get_default_graph() is new
    assert x.graph is old
    np.testing.assert_array_equal(run(x * 2, [x], np.array([1.0, 2.0])), [2.0, 4.0])


def test_mixing_tensors_of_two_graphs_is_a_clear_graph_error():
    with sg.Graph("first"):
        x = sg.placeholder(shape=(2,), name="x")
    with sg.Graph("second"):
        y = sg.placeholder(shape=(2,), name="y")
    with pytest.raises(sg.GraphError) as e:
        x + y
    msg = str(e.value)
    assert "add" in msg and "two graphs" in msg
    assert "x:float32[2]" in msg and "y:float32[2]" in msg
    assert "'first'" in msg and "'second'" in msg
    assert f"{__file__}:" in msg  # the user's line


def test_tensors_are_hashable_handles_one_per_node():
    with sg.Graph() as g:
        x = sg.placeholder(shape=(2,), name="x")
        y = x + 1.0
        assert g.tensor(x.id) is x
        assert y.inputs[0] is x
        d = {x: 1, y: 2}
        assert d[x] == 1 and d[y] == 2


# -- argument order and repeated inputs ------------------------------------------------------
def test_x_times_x_keeps_the_repeated_input_in_the_node_and_the_edges():
    with sg.Graph() as g:
        x = sg.placeholder(shape=(3,), name="x")
        y = x * x
    assert y.inputs == [x, x]
    assert g.inputs(y.id) == (x.id, x.id)
    assert g.nx.has_edge(x.id, y.id)
    assert g.nx.edges[x.id, y.id]["positions"] == (0, 1)
    assert list(nx.topological_sort(g.nx)) == [x.id, y.id]


def test_argument_order_is_kept_for_non_commutative_ops():
    with sg.Graph() as g:
        a = sg.placeholder(shape=(2,), dtype="float64", name="a")
        b = sg.placeholder(shape=(2,), dtype="float64", name="b")
        d1, d2 = a - b, b - a
        w = sg.where(a > b, b, a)
    assert d1.inputs == [a, b] and d2.inputs == [b, a]
    assert g.nx.edges[a.id, d1.id]["positions"] == (0,)
    assert g.nx.edges[b.id, d1.id]["positions"] == (1,)
    assert g.nx.edges[b.id, w.id]["positions"] == (1,)
    assert g.nx.edges[a.id, w.id]["positions"] == (2,)
    av, bv = np.array([1.0, 5.0]), np.array([3.0, 2.0])
    r1, r2, rw = run([d1, d2, w], [a, b], av, bv)
    np.testing.assert_array_equal(r1, av - bv)
    np.testing.assert_array_equal(r2, bv - av)
    np.testing.assert_array_equal(rw, np.where(av > bv, bv, av))


def test_set_inputs_keeps_the_edges_in_step():
    with sg.Graph() as g:
        x = sg.placeholder(shape=(3,), name="x")
        y = sg.placeholder(shape=(3,), name="y")
        z = x * y
    g.set_inputs(z.id, (y.id, y.id))
    assert z.inputs == [y, y]
    assert not g.nx.has_edge(x.id, z.id)
    assert g.nx.edges[y.id, z.id]["positions"] == (0, 1)


def test_networkx_sees_every_input_as_an_edge():
    with sg.Graph() as g:
        x = sg.placeholder(shape=(3,), name="x")
        y = sg.sum(sg.exp(x) * x + x)
    for nid in g.nx.nodes:
        assert set(g.nx.predecessors(nid)) == set(g.inputs(nid))
        assert sum(len(d["positions"]) for _, _, d in g.nx.in_edges(nid, data=True)) \
            == len(g.inputs(nid))
    assert x.id in nx.ancestors(g.nx, y.id)


# -- operators ---------------------------------------------------------------------------------
A = np.array([[0.5, -1.5, 2.0], [1.0, 3.0, -0.25]])
B = np.array([[2.0, 0.5, -1.0], [4.0, -2.0, 1.5]])

BINARY = [
    ("add", lambda x, y: x + y),
    ("subtract", lambda x, y: x - y),
    ("multiply", lambda x, y: x * y),
    ("divide", lambda x, y: x / y),
    ("power", lambda x, y: abs(x) ** y),
]


@pytest.mark.parametrize("name,f", BINARY, ids=[n for n, _ in BINARY])
def test_binary_operators_and_their_reflected_forms_match_numpy(name, f):
    with sg.Graph():
        x = sg.placeholder(shape=(2, 3), dtype="float64", name="x")
        y = sg.placeholder(shape=(2, 3), dtype="float64", name="y")
        cases = [(f(x, y), f(A, B)),
                 (f(x, 1.5), f(A, 1.5)), (f(1.5, x), f(1.5, A)),   # Python scalars
                 (f(x, B), f(A, B)), (f(B, x), f(B, A)),            # numpy arrays
                 (f(x, B[0]), f(A, B[0]))]                           # broadcasting
        for t, _ in cases:
            assert isinstance(t, sg.Tensor)
        got = run([t for t, _ in cases], [x, y], A, B)
    for g, (_, want) in zip(got, cases):
        np.testing.assert_allclose(g, want, rtol=1e-12)


def test_reflected_operators_keep_the_operand_order():
    with sg.Graph():
        x = sg.placeholder(shape=(3,), name="x")
        for expr, op in [(2.0 - x, "subtract"), (2.0 / x, "divide"), (2.0 ** x, "power"),
                         (np.ones(3, np.float32) - x, "subtract")]:
            assert expr.op.name == op
            assert expr.inputs[1] is x and expr.inputs[0] is not x


def test_matmul_operator_and_its_reflected_form():
    with sg.Graph():
        x = sg.placeholder(shape=(2, 3), dtype="float64", name="x")
        w = sg.placeholder(shape=(3, 4), dtype="float64", name="w")
        m = np.arange(10.0).reshape(5, 2)
        W = np.arange(12.0).reshape(3, 4) / 7
        got = run([x @ w, m @ x, x @ W[:, 0]], [x, w], A, W)
    np.testing.assert_allclose(got[0], A @ W)
    np.testing.assert_allclose(got[1], m @ A)
    np.testing.assert_allclose(got[2], A @ W[:, 0])


def test_unary_operators_and_comparisons():
    with sg.Graph():
        x = sg.placeholder(shape=(2, 3), dtype="float64", name="x")
        y = sg.placeholder(shape=(2, 3), dtype="float64", name="y")
        comps = [x < y, x <= y, x > y, x >= y, x == y, x != y, 1.0 < x, B > x]
        for c in comps:
            assert c.dtype == np.dtype(bool) and c.shape == (2, 3)
        outs = [-x, abs(x), +x, ~(x < y), (x < y) & (x > 0.0), (x < y) | (x > 0.0)] + comps
        got = run(outs, [x, y], A, B.copy())
    want = [-A, np.abs(A), A, ~(A < B), (A < B) & (A > 0), (A < B) | (A > 0),
            A < B, A <= B, A > B, A >= B, A == B, A != B, 1.0 < A, B > A]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_numpy_functions_refuse_tensors_clearly_but_numpy_operators_defer():
    with sg.Graph():
        x = sg.placeholder(shape=(3,), name="x")
        assert isinstance(np.ones(3) * x, sg.Tensor)
        assert isinstance(np.float64(2.0) - x, sg.Tensor)
        with pytest.raises(TypeError, match="ufunc"):
            np.exp(x)
        with pytest.raises(TypeError, match="numpy.sum .*sg.sum"):
            np.sum(x)
        with pytest.raises(TypeError, match="no value until the graph runs"):
            np.asarray(x)


def test_python_equality_gives_a_tensor_not_a_bool():
    with sg.Graph():
        x = sg.placeholder(shape=(2,), name="x")
        assert isinstance(x == x, sg.Tensor)
        assert x in [x]  # identity first: containers still work


# -- metadata ------------------------------------------------------------------------------------
def test_shape_ndim_dtype_static_and_symbolic():
    with sg.Graph():
        x = sg.placeholder(shape=(None, 3), name="x")
        y = sg.placeholder(shape=("N", 3), name="y")
        z = sg.placeholder(shape=("N",), dtype="int32", name="z")
        u = sg.placeholder(shape=(None, 3), name="u")
        s = sg.placeholder(name="s")
    assert x.ndim == 2 and s.ndim == 0 and s.shape == ()
    assert x.shape[1] == 3 and type(x.shape[1]) is int
    assert isinstance(x.shape[0], sg.SymDim)
    assert y.shape[0] == z.shape[0]            # the same name is the same symbol
    assert x.shape[0] != u.shape[0]            # None is a fresh symbol each time
    assert x.shape[0] != y.shape[0]
    assert z.dtype == np.dtype("int32") and x.dtype == np.dtype("float32")
    assert (y * 2.0).shape == y.shape
    assert y.T.shape == (3, y.shape[0])
    assert x.T.T.shape == x.shape


def test_symbolic_dims_have_no_value_at_build_time():
    with sg.Graph():
        x = sg.placeholder(shape=(None, 3), name="x")
    with pytest.raises(TypeError, match="symbolic"):
        int(x.shape[0])
    with pytest.raises(TypeError, match="static first dim"):
        len(x)
    assert len(x.T) == 3


def test_numpy_named_methods_match_numpy():
    with sg.Graph():
        x = sg.placeholder(shape=(2, 3), dtype="float64", name="x")
        pos = abs(x) + 0.5
        outs = [x.sum(), x.sum(axis=0), x.mean(axis=1, keepdims=True), x.max(), x.min(axis=0),
                x.prod(axis=1), x.var(), x.std(axis=0), x.argmax(axis=1), x.argmin(),
                x.reshape(3, 2), x.reshape((6,)), x.reshape(-1, 2), x.transpose(),
                x.transpose(1, 0), x.T, x.flatten(), x.astype("int32"), x.astype("float32"),
                x.exp(), pos.log(), x.tanh(), pos.sqrt(), x.square(), x.sigmoid(), x.relu(),
                x.clip(-1.0, 1.0), x.reshape(1, 6).squeeze()]
        got = run(outs, [x], A)
    P = np.abs(A) + 0.5
    want = [A.sum(), A.sum(axis=0), A.mean(axis=1, keepdims=True), A.max(), A.min(axis=0),
            A.prod(axis=1), A.var(), A.std(axis=0), A.argmax(axis=1), A.argmin(),
            A.reshape(3, 2), A.reshape((6,)), A.reshape(-1, 2), A.transpose(), A.transpose(1, 0),
            A.T, A.flatten(), A.astype("int32"), A.astype("float32"), np.exp(A), np.log(P),
            np.tanh(A), np.sqrt(P), np.square(A), 1 / (1 + np.exp(-A)), np.maximum(A, 0),
            A.clip(-1, 1), A.reshape(1, 6).squeeze()]
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == np.shape(w), k
        assert g.dtype == np.asarray(w).dtype or g.dtype.kind == "i", k
        np.testing.assert_allclose(g, w, rtol=1e-6, err_msg=str(k))


def test_a_tensor_used_as_a_python_bool_is_a_clear_type_error():
    with sg.Graph():
        x = sg.placeholder(shape=(2,), name="x")
        y = sg.placeholder(shape=(2,), name="y")
    with pytest.raises(TypeError, match="truth value.*sg.where"):
        if x > 0:
            pass
    with pytest.raises(TypeError, match="truth value"):
        x and y
    with pytest.raises(TypeError, match="truth value"):
        not x
    with pytest.raises(TypeError, match="truth value"):
        0 < x < 1  # a chained comparison needs bool(0 < x)
    with pytest.raises(TypeError, match="not iterable"):
        list(x)
    with pytest.raises(TypeError):
        float(x)


# -- dtypes ----------------------------------------------------------------------------------------
def test_python_floats_default_to_float32_and_ints_to_int64():
    with sg.Graph():
        assert sg.constant(1.5).dtype == np.float32
        assert sg.constant([1.0, 2.0]).dtype == np.float32
        assert sg.constant(3).dtype == np.int64
        assert sg.constant(np.float64(1.5)).dtype == np.float64  # numpy data keeps its dtype
        assert sg.placeholder(shape=(2,)).dtype == np.float32
        assert sg.as_tensor(2.5).dtype == np.float32
        assert (sg.as_tensor(2.5) * 2).dtype == np.float32


TENSOR_DTYPES = ["float32", "float64", "int32", "int64", "bool"]
SCALARS = [2, 2.5, True]
SCALAR_OPS = [("mul", lambda p, q: p * q, True), ("rsub", lambda p, q: q - p, True),
              ("less", lambda p, q: p < q, False)]


@pytest.mark.parametrize("dtype", TENSOR_DTYPES)
@pytest.mark.parametrize("scalar", SCALARS, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("name,f,arith", SCALAR_OPS, ids=[n for n, _, _ in SCALAR_OPS])
def test_weak_python_scalars_follow_numpy_2(dtype, scalar, name, f, arith):
    """float32 * 2.5 stays float32, int32 + 1 stays int32, int32 * 0.5 is float64."""
    a = np.array([1, 0, 3]).astype(dtype)
    try:
        want = np.asarray(f(a, scalar))
    except TypeError:  # numpy refuses bool - bool: so do we
        want = None
    with sg.Graph():
        x = sg.placeholder(shape=(3,), dtype=dtype, name="x")
        if want is None or (arith and want.dtype == bool):
            # bool arithmetic (numpy: logical and/or) is refused: cast first
            with pytest.raises(sg.DTypeError, match="boolean"):
                f(x, scalar)
            return
        t = f(x, scalar)
        assert t.dtype == want.dtype
        got = run(t, [x], a)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("d1", TENSOR_DTYPES[:4])
@pytest.mark.parametrize("d2", TENSOR_DTYPES)
def test_tensor_tensor_promotion_is_numpys(d1, d2):
    with sg.Graph():
        x = sg.placeholder(shape=(2,), dtype=d1)
        y = sg.placeholder(shape=(2,), dtype=d2)
        assert (x * y).dtype == np.result_type(d1, d2)
        assert (x / y).dtype == (np.ones(1, d1) / np.ones(1, d2)).dtype
        assert (x < y).dtype == np.dtype(bool)


def test_the_three_rules_of_the_brief():
    with sg.Graph():
        f = sg.placeholder(shape=(2,), dtype="float32")
        i = sg.placeholder(shape=(2,), dtype="int32")
        assert (f * 2.5).dtype == np.float32
        assert (i + 1).dtype == np.int32
        assert (i * 0.5).dtype == np.float64
        assert (f * np.float64(2.5)).dtype == np.float64  # numpy scalars are strong
        assert (i / 2).dtype == np.float64


def test_weak_scalars_compute_in_the_tensor_dtype_like_numpy():
    a = np.array([3.0, 0.7, -1.3, 1e-3], np.float32)
    with sg.Graph():
        x = sg.placeholder(shape=(4,), dtype="float32", name="x")
        f = sg.function([x], [x * 0.1, x / 3.0, 0.1 - x], rewrites=False, mode="reference")
        got = f(a)
    for g, w in zip(got, [a * 0.1, a / 3.0, 0.1 - a]):
        assert g.dtype == np.float32
        np.testing.assert_array_equal(g, w)


def test_an_int_scalar_that_does_not_fit_raises_as_in_numpy():
    with sg.Graph():
        i = sg.placeholder(shape=(2,), dtype="int32")
        with pytest.raises(OverflowError):
            i + 2 ** 40


@pytest.mark.parametrize("dtype", ["float16", "complex64", "uint8", "int8", "str", "object"])
def test_unsupported_dtypes_are_refused_clearly(dtype):
    with sg.Graph():
        with pytest.raises(sg.DTypeError, match="not supported|not a dtype"):
            sg.placeholder(shape=(2,), dtype=dtype)
        x = sg.placeholder(shape=(2,))
        with pytest.raises(sg.DTypeError, match="not supported|not a dtype"):
            x.astype(dtype)


def test_complex_constants_are_refused():
    with sg.Graph():
        x = sg.placeholder(shape=(2,))
        with pytest.raises(TypeError, match="complex"):
            x + np.array([1j, 2j])
