"""Indexing and linalg beyond the op table: symbolic dims (compile once, call with many
sizes), every error message, negative steps, gradients of gradients, and property tests
of slicing against numpy."""
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

import symgraph as sg
from symgraph import dims as D
from symgraph.errors import DTypeError, InputError, ShapeError, UnsupportedError
from symgraph.op import apply
from symgraph.ops.indexing import Slice, nonneg, slice_length
from symgraph.ops.linalg import MatMul

N, M = D.SymDim.symbol("N"), D.SymDim.symbol("M")
RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape)


def fd_hvp(grad_fn, x, v, eps=1e-5):
    """Finite differences of a gradient function along ``v``: the Hessian-vector product."""
    return (grad_fn(x + eps * v) - grad_fn(x - eps * v)) / (2 * eps)


# -- symbolic slice lengths --------------------------------------------------------------------
bounds = st.one_of(st.none(), st.integers(-10, 10))
steps = st.sampled_from([1, 2, 3, 5, -1, -2, -3])


@settings(max_examples=300, deadline=None)
@given(bounds, bounds, steps)
def test_symbolic_slice_length_matches_python_for_every_size(start, stop, step):
    length = slice_length(N, start, stop, step)
    for n in range(0, 14):
        assert D.evaluate(length, {"N": n}) == len(range(n)[start:stop:step]), (n, length)


def test_symbolic_bounds_are_positions_and_give_exact_dims():
    # the gradient of concatenate([x, y]) slices [N : N + M] out of an (N + M) axis
    assert slice_length(D.add(N, M), N, D.add(N, M), 1) == M
    assert slice_length(D.add(N, 3), 1, -2, 1) == N      # pad's gradient: exact, not min/max
    assert slice_length(7, 2, -1, 1) == 4                 # static stays exact
    assert str(slice_length(N, None, None, 2)) == "((1 + N) // 2)"


def test_nonneg_proves_only_what_holds():
    assert nonneg(N) and nonneg(D.add(N, M)) and nonneg(D.floordiv(D.add(N, 1), 2))
    assert nonneg(D.sub(N, D.dmin(1, N)))           # N - min(1, N) >= 0
    assert nonneg(D.sub(D.dmax(N, M), M))           # max(N, M) - M >= 0
    assert not nonneg(D.sub(N, 1))
    assert not nonneg(D.sub(D.dmin(N, M), N))       # min(N, M) - N may be negative
    assert not nonneg(D.sub(M, N))
    assert not nonneg(-1)


# -- symbolic dims: compile once, call with several sizes ---------------------------------------
SLICE_KEYS = [np.s_[1:], np.s_[:-1], np.s_[::2], np.s_[::-1], np.s_[-3::-2], np.s_[1:-1:2],
              np.s_[..., None, 1:-1:2], np.s_[None, 2:0:-1, ::3], np.s_[:, -2:], np.s_[5:1:-2]]
INT_KEYS = [np.s_[2], np.s_[-1], np.s_[1, ::-1], np.s_[..., -3], np.s_[-3, None, 1:]]


def test_symbolic_slices_compile_once_and_match_numpy_for_each_size():
    with sg.Graph():
        x = sg.placeholder(shape=(None, None), dtype="float64", name="x")
        outs = [x[k] for k in SLICE_KEYS]
        f = sg.function([x], outs)
        fi = sg.function([x], [x[k] for k in INT_KEYS])
    for shape in [(0, 0), (1, 3), (2, 5), (7, 4), (3, 0), (10, 9)]:
        a = rand(*shape)
        for key, got in zip(SLICE_KEYS, f(a)):
            np.testing.assert_array_equal(got, a[key], err_msg=f"{key} on {shape}")
    for shape in [(3, 3), (4, 7), (9, 5)]:
        a = rand(*shape)
        for key, got in zip(INT_KEYS, fi(a)):
            np.testing.assert_array_equal(got, a[key], err_msg=f"{key} on {shape}")


def test_symbolic_int_index_has_static_size_and_checks_bounds_at_run_time():
    with sg.Graph():
        x = sg.placeholder(shape=(None, 2), dtype="float64", name="x")
        y, z = x[3], x[-3]
        assert y.shape == (2,) and z.shape == (2,)
        f, fz = sg.function([x], y), sg.function([x], z)
    np.testing.assert_array_equal(f(rand(5, 2) * 0 + 1), np.ones(2))
    with pytest.raises(IndexError, match=r"slice .*index 3 is out of bounds for axis 0 with "
                                         r"size 2"):
        f(rand(2, 2))
    with pytest.raises(IndexError, match=r"index -3 is out of bounds for axis 0 with size 2"):
        fz(rand(2, 2))


def test_symbolic_gradient_of_slices_has_the_input_shape():
    with sg.Graph():
        x = sg.placeholder(shape=(None, None), dtype="float64", name="x")
        y = x[1:, ::-2]
        (gx,) = sg.grad(sg.sum(y * y), [x])
        assert gx.shape == x.shape
        f = sg.function([x], gx)
    for shape in [(1, 1), (4, 5), (3, 2), (0, 3)]:
        a = rand(*shape)
        want = np.zeros_like(a)
        want[1:, ::-2] = 2 * a[1:, ::-2]
        np.testing.assert_allclose(f(a), want)


# -- numpy semantics of basic indexing --------------------------------------------------------
def test_ellipsis_none_and_stepped_slice():
    a = rand(2, 3, 7)
    with sg.Graph():
        x = sg.placeholder(shape=a.shape, dtype="float64")
        y = x[..., None, 1:-1:2]
        assert y.shape == (2, 3, 1, 3)
        np.testing.assert_array_equal(sg.function([x], y)(a), a[..., None, 1:-1:2])


@pytest.mark.parametrize("key", [np.s_[::-1], np.s_[::-3], np.s_[-2::-2], np.s_[4:0:-1],
                                 np.s_[0:4:-1], np.s_[-1:-6:-2], np.s_[100::-1], np.s_[:-100:-1]])
def test_negative_steps_values_and_gradients(key):
    a, w = rand(6, 2), None
    want = a[key]
    w = rand(*want.shape)
    with sg.Graph():
        x = sg.placeholder(shape=a.shape, dtype="float64")
        y = x[key]
        assert y.shape == want.shape
        (gx,) = sg.grad(sg.sum(y * w), [x])
        f = sg.function([x], [y, gx])
    got, g = f(a)
    np.testing.assert_array_equal(got, want)
    expected = np.zeros_like(a)
    expected[key] = w
    np.testing.assert_array_equal(g, expected)


def test_full_key_returns_the_tensor_and_index_arrays_from_numpy_work():
    a = rand(5, 3)
    with sg.Graph():
        x = sg.placeholder(shape=a.shape, dtype="float64")
        assert x[...] is x and x[:, :] is x
        f = sg.function([x], [x[[0, -1, 2]], x[np.array([[1], [4]])], x[:, []]])
    for got, want in zip(f(a), [a[[0, -1, 2]], a[np.array([[1], [4]])], a[:, []]]):
        np.testing.assert_array_equal(got, want)


@st.composite
def shape_and_key(draw):
    """A shape and a valid basic key: one entry per axis, then a run of entries replaced by
    '...' (or a trailing run dropped), then None entries inserted anywhere."""
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=0, max_size=3)))
    entries = []
    for d in shape:
        kinds = ["slice"] + (["int"] if d > 0 else [])
        if draw(st.sampled_from(kinds)) == "int":
            entries.append(draw(st.integers(-d, d - 1)))
        else:
            step = draw(st.one_of(st.none(), st.sampled_from([1, 2, 3, -1, -2, -3])))
            entries.append(slice(draw(bounds), draw(bounds), step))
    i = draw(st.integers(0, len(entries)))
    j = draw(st.integers(i, len(entries)))
    if draw(st.booleans()):
        entries[i:j] = [Ellipsis]
    else:
        del entries[i:]
    for _ in range(draw(st.integers(0, 2))):
        entries.insert(draw(st.integers(0, len(entries))), None)
    key = tuple(entries) if draw(st.booleans()) or len(entries) != 1 else entries[0]
    return shape, key


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape_and_key(), st.booleans())
def test_random_basic_keys_match_numpy_values_and_gradients(sk, symbolic):
    shape, key = sk
    a = RNG.standard_normal(shape)
    want = a[key]
    w = RNG.standard_normal(want.shape)
    with sg.Graph():
        x = sg.placeholder(shape=(None,) * len(shape) if symbolic else shape, dtype="float64")
        y = x[key]
        if not symbolic:
            assert y.shape == want.shape
        (gx,) = sg.grad(sg.sum(y * w) if want.ndim else y * 2.0, [x])
        f = sg.function([x], [y, gx])
    got, g = f(a)
    np.testing.assert_array_equal(got, want)
    expected = np.zeros_like(a)
    expected[key] = w if want.ndim else 2.0
    np.testing.assert_array_equal(g, expected)


# -- getitem errors -----------------------------------------------------------------------------
@pytest.mark.parametrize("key,exc,message", [
    (3, IndexError, r"getitem: index 3 is out of bounds for axis 0 with size 3 \(tensor shape "
                    r"\(3, 4\)\)"),
    (np.s_[:, -5], IndexError, r"getitem: index -5 is out of bounds for axis 1 with size 4"),
    (np.s_[0, 0, 0], IndexError, r"getitem: too many indices for a tensor of shape \(3, 4\): "
                                 r"2-dimensional, but 3 were indexed"),
    (np.s_[..., 0, ...], IndexError, r"getitem: an index can only have a single ellipsis"),
    (np.s_[::0], ValueError, r"getitem: slice step cannot be zero"),
    (1.5, IndexError, r"getitem: only ints, slices, None, '...' and integer index arrays are "
                      r"valid indices; got 1.5"),
    (np.s_[0.5:], IndexError, r"getitem: slice start must be an int or None, got 0.5"),
    (True, UnsupportedError, r"getitem: a bool index is a mask"),
    (np.array([True, False, True]), UnsupportedError, r"boolean mask indexing is not supported"),
    (([0, 1], [1, 2]), UnsupportedError, r"getitem: advanced indexing is supported only as one "
                                         r"integer index array"),
    (np.s_[1:, [0, 1]], UnsupportedError, r"advanced indexing is supported only"),
    (np.array([0.0, 1.0]), DTypeError, r"getitem: index arrays must be integers, got float64"),
])
def test_getitem_errors(key, exc, message):
    with sg.Graph():
        x = sg.placeholder(shape=(3, 4), name="x")
        with pytest.raises(exc, match=message):
            x[key]


def test_getitem_tensor_index_errors_and_symbolic_bounds():
    with sg.Graph():
        x = sg.placeholder(shape=(None, 4), name="x")
        with pytest.raises(UnsupportedError, match="boolean mask indexing"):
            x[x > 0]
        with pytest.raises(DTypeError, match="getitem: index arrays must be integers, got "
                                             "float32"):
            x[x[:, 0]]
        with pytest.raises(UnsupportedError, match=r"symbolic slice stop -1 \+ x.0 may be "
                                                   r"negative"):
            x[:x.shape[0] - 1]
        with pytest.raises(UnsupportedError, match="slice stop must be static .*not a Tensor"):
            x[:sg.argmax(x[:, 0])]
        with pytest.raises(UnsupportedError, match="slice step must be a static int"):
            x[::x.shape[0]]
        half = x[:D.floordiv(x.shape[0], 2)]         # a provably non-negative bound is fine
        f = sg.function([x], half)
    a = rand(5, 4).astype(np.float32)
    np.testing.assert_array_equal(f(a), a[:2])
    with pytest.raises(ShapeError, match=r"slice: key has 1 entries for a tensor of rank 2"):
        apply(Slice(key=(0,)), x)


# -- take and one_hot -----------------------------------------------------------------------------
def test_take_symbolic_with_repeated_and_negative_indices_and_its_gradient():
    with sg.Graph():
        x = sg.placeholder(shape=(None, 3), dtype="float64", name="x")
        i = sg.placeholder(shape=(None,), dtype="int64", name="i")
        y = sg.take(x, i, axis=0)
        (gx,) = sg.grad(sg.sum(y * y * y), [x])
        f = sg.function([x, i], [y, gx, sg.take(x, i), x[i]])
    for rows, idx in [(4, [0, -1, 0, 2]), (1, [0, 0, -1]), (6, []), (3, [2])]:
        a, ii = rand(rows, 3), np.array(idx, np.int64)
        y_, g_, flat, gi = f(a, ii)
        want_g = np.zeros_like(a)
        np.add.at(want_g, ii, 3 * a[ii] ** 2)
        np.testing.assert_array_equal(y_, a[ii])
        np.testing.assert_allclose(g_, want_g)
        np.testing.assert_array_equal(flat, np.take(a, ii))
        np.testing.assert_array_equal(gi, a[ii])


def test_take_errors():
    with sg.Graph():
        x = sg.placeholder(shape=(None, 3), dtype="float64", name="x")
        i = sg.placeholder(shape=(None,), dtype="int64", name="i")
        f = sg.function([x, i], sg.take(x, i, axis=0))
        flat = sg.function([x, i], sg.take(x, i))
        with pytest.raises(DTypeError, match="take: indices must be int32 or int64, got float64"):
            sg.take(x, x[:, 0], axis=0)
        with pytest.raises(ShapeError, match=r"take: axis 2 is out of range for a tensor of "
                                              r"shape \(x.0, 3\)"):
            sg.take(x, i, axis=2)
    with pytest.raises(IndexError, match=r"take .*index 4 is out of bounds for axis 0 with size "
                                         r"4; valid indices are \[-4, 4\)"):
        f(rand(4, 3), np.array([0, 4]))
    with pytest.raises(IndexError, match=r"index -5 is out of bounds for axis 0 with size 4"):
        f(rand(4, 3), np.array([-5]))
    with pytest.raises(IndexError, match=r"index 6 is out of bounds for the flattened tensor "
                                         r"of size 6"):
        flat(rand(2, 3), np.array([6]))


def test_one_hot_with_symbolic_depth_in_cross_entropy():
    with sg.Graph():
        x = sg.placeholder(shape=(None, None), dtype="float64", name="x")
        y = sg.placeholder(shape=(None,), dtype="int64", name="y")
        oh = sg.one_hot(y, x.shape[1], dtype="float64")
        assert oh.shape == (y.shape[0], x.shape[1])
        loss = sg.nn.cross_entropy(x, y)
        (gx,) = sg.grad(loss, [x])
        f = sg.function([x, y], [oh, loss, gx])
    for n, c in [(3, 4), (5, 2), (1, 7)]:
        a, labels = rand(n, c), RNG.integers(0, c, n)
        got_oh, got_loss, got_g = f(a, labels)
        p = np.exp(a - a.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        np.testing.assert_array_equal(got_oh, np.eye(c)[labels])
        np.testing.assert_allclose(got_loss, -np.mean(np.log(p[np.arange(n), labels])))
        np.testing.assert_allclose(got_g, (p - np.eye(c)[labels]) / n, atol=1e-12)


def test_one_hot_errors():
    with sg.Graph():
        y = sg.placeholder(shape=(None,), dtype="int64", name="y")
        f = sg.function([y], sg.one_hot(y, 4))
        with pytest.raises(DTypeError, match="one_hot: labels must be integers, got float32"):
            sg.one_hot(sg.placeholder(shape=(2,)), 3)
        with pytest.raises(ShapeError, match="one_hot: depth must be >= 0, got -1"):
            sg.one_hot(y, -1)
    with pytest.raises(IndexError, match=r"one_hot .*index 4 is out of bounds for depth 4; "
                                         r"valid indices are \[0, 4\)"):
        f(np.array([0, 4]))
    with pytest.raises(IndexError, match=r"index -1 is out of bounds for depth 4"):
        f(np.array([-1, 2]))


# -- pad, concatenate, stack ------------------------------------------------------------------
def test_pad_symbolic_values_and_exact_gradient_shape():
    with sg.Graph():
        x = sg.placeholder(shape=(None, None), dtype="float64", name="x")
        y = sg.pad(x, ((1, 2), (0, 3)), constant_values=-2.0)
        assert y.shape == (x.shape[0] + 3, x.shape[1] + 3)
        (gx,) = sg.grad(sg.sum(y * y * y), [x])
        assert gx.shape == x.shape and gx.op.name == "slice"   # no reshape needed
        f = sg.function([x], [y, gx])
    for shape in [(0, 0), (2, 3), (1, 5)]:
        a = rand(*shape)
        got, g = f(a)
        np.testing.assert_array_equal(got, np.pad(a, ((1, 2), (0, 3)), constant_values=-2.0))
        np.testing.assert_allclose(g, 3 * a ** 2)


@pytest.mark.parametrize("pad_width,kw,exc,message", [
    (((1, -1), (0, 0)), {}, ShapeError, r"pad: pad_width .* has negative values"),
    ((1, 2, 3), {}, ShapeError, r"pad: pad_width \(1, 2, 3\) does not fit a tensor of shape "
                                r"\(2, 3\)"),
    (1.5, {}, ShapeError, r"pad: pad_width must hold integers, got 1.5"),
    (1, {"constant_values": (0, 1)}, UnsupportedError, r"pad: constant_values must be one "
                                                        r"scalar"),
])
def test_pad_errors(pad_width, kw, exc, message):
    with sg.Graph():
        x = sg.placeholder(shape=(2, 3))
        with pytest.raises(exc, match=message):
            sg.pad(x, pad_width, **kw)


def test_concatenate_symbolic_values_gradients_and_call_time_check():
    with sg.Graph():
        x = sg.placeholder(shape=("N", 3), dtype="float64", name="x")
        y = sg.placeholder(shape=("M", 3), dtype="float64", name="y")
        z = sg.placeholder(shape=("M", None), dtype="float64", name="z")
        c = sg.concatenate([x, y, x], axis=0)
        assert c.shape == (2 * N + M, 3)
        gx, gy = sg.grad(sg.sum(c * c * c), [x, y])
        assert gx.shape == x.shape and gy.shape == y.shape
        f = sg.function([x, y], [c, gx, gy])
        side = sg.function([y, z], sg.concatenate([y, z], axis=1))
        mismatch = sg.function([x, z], sg.concatenate([x, z], axis=0))
    for n, m in [(2, 3), (0, 1), (4, 0)]:
        a, b = rand(n, 3), rand(m, 3)
        got, ga, gb = f(a, b)
        np.testing.assert_array_equal(got, np.concatenate([a, b, a]))
        np.testing.assert_allclose(ga, 6 * a ** 2)
        np.testing.assert_allclose(gb, 3 * b ** 2)
    np.testing.assert_array_equal(side(rand(2, 3) * 0, np.ones((2, 5))),
                                  np.concatenate([np.zeros((2, 3)), np.ones((2, 5))], 1))
    with pytest.raises(InputError, match=r"sizes must agree: 3 = 3 but z.1 = 4 \(required by "
                                         r"concatenate"):
        mismatch(rand(2, 3), rand(2, 4))
    np.testing.assert_array_equal(mismatch(np.ones((1, 3)), np.zeros((2, 3))),
                                  np.concatenate([np.ones((1, 3)), np.zeros((2, 3))]))


@pytest.mark.parametrize("build,exc,message", [
    (lambda a, b, s: sg.concatenate([]), ShapeError, "concatenate: need at least one tensor"),
    (lambda a, b, s: sg.concatenate([s, s]), ShapeError,
     "concatenate: zero-dimensional tensors cannot be concatenated"),
    (lambda a, b, s: sg.concatenate([a, b]), ShapeError,
     r"concatenate: argument 1 has shape \(2, 4\) and argument 0 has \(2, 3\); they differ "
     r"at axis 1, which is not the axis 0"),
    (lambda a, b, s: sg.concatenate([a, a[0]]), ShapeError,
     r"concatenate: argument 1 has shape \(3,\) but argument 0 has \(2, 3\); all must have "
     r"the same rank"),
    (lambda a, b, s: sg.concatenate([a, a], axis=2), ShapeError,
     "concatenate: axis 2 is out of range for rank 2"),
    (lambda a, b, s: sg.stack([a, b]), ShapeError,
     r"stack: all tensors must have the same shape; argument 1 has \(2, 4\), argument 0 has "
     r"\(2, 3\)"),
    (lambda a, b, s: sg.stack([]), ShapeError, "stack: need at least one tensor"),
    (lambda a, b, s: sg.stack([a, a], axis=-4), ShapeError,
     "stack: axis -4 is out of range for rank 3"),
])
def test_concatenate_and_stack_errors(build, exc, message):
    with sg.Graph():
        a, b = sg.placeholder(shape=(2, 3)), sg.placeholder(shape=(2, 4))
        s = sg.placeholder(shape=())
        with pytest.raises(exc, match=message):
            build(a, b, s)


# -- matmul ------------------------------------------------------------------------------------
def test_matmul_symbolic_dims_and_batches():
    with sg.Graph():
        a = sg.placeholder(shape=("B", None, "K"), dtype="float64", name="a")
        b = sg.placeholder(shape=("K", None), dtype="float64", name="b")
        v = sg.placeholder(shape=("K",), dtype="float64", name="v")
        c = sg.placeholder(shape=("C", "K", 2), dtype="float64", name="c")
        assert (a @ b).shape == (D.SymDim.symbol("B"), a.shape[1], b.shape[1])
        f = sg.function([a, b, v], [a @ b, a @ v, v @ b, v @ v])
        batched = sg.function([a, c], a @ c)
    for bs, m, k, n in [(2, 3, 4, 5), (1, 0, 2, 3), (3, 1, 0, 1)]:
        x, y, w = rand(bs, m, k), rand(k, n), rand(k)
        for got, want in zip(f(x, y, w), [x @ y, x @ w, w @ y, w @ w]):
            np.testing.assert_allclose(got, want, atol=1e-12)
    x, y = rand(2, 3, 4), rand(2, 4, 2)
    np.testing.assert_allclose(batched(x, y), x @ y)
    with pytest.raises(InputError, match=r"sizes must agree: B = 2 but C = 3 \(required by "
                                         r"mat_mul"):
        batched(x, rand(3, 4, 2))


def test_matmul_gradients_with_distinct_symbols_tied_at_call_time():
    with sg.Graph():
        x = sg.placeholder(shape=(None, None), dtype="float64", name="x")
        w = sg.placeholder(shape=(None, 3), dtype="float64", name="w")
        b = sg.placeholder(shape=(None, None, None), dtype="float64", name="b")
        loss = sg.sum(sg.tanh(x @ w)) + sg.sum((b @ w) ** 2)
        gx, gw, gb = sg.grad(loss, [x, w, b])
        assert (gx.shape, gw.shape, gb.shape) == (x.shape, w.shape, b.shape)
        f = sg.function([x, w, b], [gx, gw, gb])
        fl = sg.function([x, w, b], loss)
        with pytest.raises(ShapeError, match=r"matmul: contracted dims differ \(3 vs 2\) for a "
                                             r"\(x.0, 3\) and b \(3, 2\), transposed"):
            apply(MatMul(transpose_b=True), x @ w, sg.placeholder(shape=(3, 2)))
    xs, ws, bs = rand(4, 2), rand(2, 3), rand(2, 5, 2)
    want = sg.testing.numeric_grad(fl, [xs, ws, bs])
    for got, w_ in zip(f(xs, ws, bs), want):
        np.testing.assert_allclose(got, w_, rtol=1e-6, atol=1e-8)
    with pytest.raises(InputError, match="sizes must agree"):
        f(rand(4, 3), ws, bs)


@pytest.mark.parametrize("build,exc,message", [
    (lambda: sg.matmul(sg.placeholder(shape=()), sg.placeholder(shape=(2, 2))), ShapeError,
     r"matmul: operand a is a scalar \(shape \(\)\); matmul needs rank >= 1, use \* to scale"),
    (lambda: sg.placeholder(shape=(3, 4)) @ sg.placeholder(shape=(5, 2)), ShapeError,
     r"matmul: contracted dims differ \(4 vs 5\) for a \(3, 4\) and b \(5, 2\)"),
    (lambda: sg.matmul(sg.placeholder(shape=(3,)), sg.placeholder(shape=(4,))), ShapeError,
     r"matmul: contracted dims differ \(3 vs 4\) for a \(1, 3\) and b \(4, 1\)"),
    (lambda: sg.placeholder(shape=(2, 3, 4)) @ sg.placeholder(shape=(3, 4, 5)), ShapeError,
     r"matmul: shapes do not broadcast \(batch dims of a \(2, 3, 4\): \(2,\), batch dims of b "
     r"\(3, 4, 5\): \(3,\)\)"),
    (lambda: sg.placeholder(shape=(2, 2), dtype="bool") @ sg.placeholder(shape=(2, 2)),
     DTypeError, "matmul: operand a is bool; cast it to a number first"),
    (lambda: apply(MatMul(), sg.placeholder(shape=(2, 2)), sg.placeholder(shape=(2,))),
     ShapeError, r"matmul: operand b must have rank >= 2, got shape \(2,\)"),
    (lambda: sg.dot(sg.placeholder(shape=(2, 2, 2)), sg.placeholder(shape=(2,))),
     UnsupportedError, r"dot: operands of rank > 2 are not supported"),
    (lambda: sg.dot(sg.placeholder(shape=(), dtype="bool"), sg.placeholder(shape=(2,))),
     DTypeError, "dot: operand a is bool"),
    (lambda: sg.outer(sg.placeholder(shape=(2,)), sg.placeholder(shape=(2,), dtype="bool")),
     DTypeError, "outer: operand b is bool"),
])
def test_linalg_errors(build, exc, message):
    with sg.Graph():
        with pytest.raises(exc, match=message):
            build()


def test_symbolic_contracted_dims_are_checked_at_call_time():
    with sg.Graph():
        a = sg.placeholder(shape=(2, None), name="a")
        b = sg.placeholder(shape=(None, 2), name="b")
        f = sg.function([a, b], a @ b)
    np.testing.assert_allclose(f(np.ones((2, 3)), np.ones((3, 2))), np.full((2, 2), 3.0))
    with pytest.raises(InputError, match=r"sizes must agree: a.1 = 3 but b.0 = 4"):
        f(np.ones((2, 3)), np.ones((4, 2)))


def test_integer_matmul_keeps_integer_dtype_and_has_no_gradient():
    with sg.Graph():
        a = sg.placeholder(shape=(2, 3), dtype="int32")
        w = sg.placeholder(shape=(3, 2), dtype="float32")
        assert (a @ sg.placeholder(shape=(3,), dtype="int32")).dtype == np.dtype("int32")
        y = a @ w
        assert y.dtype == np.dtype("float64")      # numpy: int32 with float32 -> float64
        (gw,) = sg.grad(sg.sum(y), [w])
        f = sg.function([a, w], gw)
    ai = RNG.integers(-3, 3, (2, 3)).astype(np.int32)
    np.testing.assert_allclose(f(ai, np.ones((3, 2), np.float32)),
                               np.repeat(ai.sum(0)[:, None], 2, 1))


# -- gradients of gradients --------------------------------------------------------------------
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_hessian_vector_product_through_matmul(ta, tb):
    xs = rand(3, 4) if not ta else rand(4, 3)
    w0 = rand(4, 2) if not tb else rand(2, 4)
    v = rand(*w0.shape)
    with sg.Graph():
        x = sg.constant(xs)
        w = sg.placeholder(shape=w0.shape, dtype="float64", name="w")
        u = sg.placeholder(shape=w0.shape, dtype="float64", name="u")
        out = apply(MatMul(transpose_a=ta, transpose_b=tb), x, w)
        loss = sg.sum(sg.tanh(out) ** 2) + sg.sum(apply(MatMul(transpose_a=ta, transpose_b=tb),
                                                        x, w * w) ** 2)
        (g,) = sg.grad(loss, [w])
        (hv,) = sg.grad(sg.sum(g * u), [w])
        fg, fh = sg.function([w], g), sg.function([w, u], hv)
    np.testing.assert_allclose(fh(w0, v), fd_hvp(fg, w0, v), rtol=1e-6, atol=1e-7)


def test_hessian_vector_product_through_indexing_ops():
    a0, v = rand(5, 4), rand(5, 4)
    idx = np.array([0, 4, 4, -2])
    with sg.Graph():
        x = sg.placeholder(shape=a0.shape, dtype="float64", name="x")
        u = sg.placeholder(shape=a0.shape, dtype="float64", name="u")
        parts = [x[1:, ::-2], sg.take(x, idx, axis=0), sg.pad(x, ((1, 0), (2, 1))),
                 sg.concatenate([x, x[::-1]], axis=1), sg.stack([x, x * x], axis=1), x[idx],
                 x[2, :, None]]
        loss = sum(sg.sum(sg.sin(p) * p ** 2) for p in parts)
        (g,) = sg.grad(loss, [x])
        (hv,) = sg.grad(sg.sum(g * u), [x])
        fg, fh = sg.function([x], g), sg.function([x, u], hv)
        ops = {fh.optimized.graph.op(n).name for n in fh.optimized.order()}
    assert {"slice_grad", "take_grad", "slice", "take", "pad", "concatenate"} <= ops
    np.testing.assert_allclose(fh(a0, v), fd_hvp(fg, a0, v), rtol=1e-6, atol=1e-7)
