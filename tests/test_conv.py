"""conv2d and pooling beyond the op table: symbolic dims, error messages, second
derivatives, tie-breaking, and PyTorch as an outside oracle."""
import numpy as np
import pytest

import symgraph as sg
from symgraph.op import apply
from symgraph.ops.conv import Conv2d, Conv2dGradInput, Conv2dGradWeight
from symgraph.ops.pool import AvgPool2dGrad, MaxPool2dGrad, MaxPool2dSelect
from .op_cases.conv import naive_avg_pool2d, naive_conv2d, naive_max_pool2d


def _ph(shape, dtype="float64", name=None):
    return sg.placeholder(shape=shape, dtype=dtype, name=name)


# -- symbolic dims ---------------------------------------------------------------------------
def test_symbolic_batch_compiles_once_and_runs_any_batch():
    rng = np.random.default_rng(0)
    wv = rng.standard_normal((4, 3, 3, 3))
    with sg.Graph():
        x, w = _ph((None, 3, 8, 8), name="x"), _ph((4, 3, 3, 3), name="w")
        y = sg.nn.conv2d(x, w, stride=2, padding=1)
        assert y.shape[1:] == (4, 4, 4) and sg.dims.as_symbol(y.shape[0]) is not None
        pooled = sg.nn.max_pool2d(sg.relu(y), 2) + sg.nn.avg_pool2d(y, 2)
        loss = sg.sum(sg.square(pooled))
        gx, gw = sg.grad(loss, [x, w])
        f = sg.function([x, w], [y, pooled, gx, gw])
    for n in (1, 3, 5):
        xv = rng.standard_normal((n, 3, 8, 8))
        y_, p_, gx_, gw_ = f(xv, wv)
        want = naive_conv2d(xv, wv, (2, 2), (1, 1), (1, 1))
        np.testing.assert_allclose(y_, want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(p_, naive_max_pool2d(np.maximum(want, 0), (2, 2), (2, 2), (0, 0))
                                   + naive_avg_pool2d(want, (2, 2), (2, 2), (0, 0)), atol=1e-12)
        assert gx_.shape == (n, 3, 8, 8) and gw_.shape == (4, 3, 3, 3)


def test_symbolic_spatial_dims_and_their_gradients():
    rng = np.random.default_rng(1)
    with sg.Graph():
        x, w = _ph(("N", 2, "H", "W"), name="x"), _ph((3, 2, 3, 2), name="w")
        y = sg.nn.conv2d(x, w, stride=(2, 1), padding=(1, 0), dilation=(1, 2))
        z = sg.nn.avg_pool2d(sg.nn.max_pool2d(y, 2, stride=1, padding=1), 2)
        gx, gw = sg.grad(sg.sum(sg.square(z)), [x, w])
        f = sg.function([x, w], [y, gx, gw])
    wv = rng.standard_normal((3, 2, 3, 2))
    for shape in [(1, 2, 5, 6), (2, 2, 8, 3), (3, 2, 9, 10)]:
        xv = rng.standard_normal(shape)
        y_, gx_, gw_ = f(xv, wv)
        np.testing.assert_allclose(y_, naive_conv2d(xv, wv, (2, 1), (1, 0), (1, 2)), atol=1e-12)
        assert gx_.shape == shape and gw_.shape == wv.shape


def test_symbolic_input_too_small_for_the_kernel_fails_at_call_time():
    with sg.Graph():
        x, w = _ph((1, 1, "H", 5)), _ph((1, 1, 3, 3))
        f = sg.function([x, w], sg.nn.conv2d(x, w))
    with pytest.raises(sg.ShapeError, match="kernel span .* does not fit the padded input"):
        f(np.zeros((1, 1, 2, 5)), np.zeros((1, 1, 3, 3)))


def test_symbolic_channel_mismatch_is_caught_at_call_time():
    with sg.Graph():
        x, w = _ph((1, "C", 4, 4)), _ph((2, "K", 3, 3))
        f = sg.function([x, w], sg.nn.conv2d(x, w))
    f(np.zeros((1, 3, 4, 4)), np.zeros((2, 3, 3, 3)))
    with pytest.raises(sg.InputError, match="sizes must agree"):
        f(np.zeros((1, 3, 4, 4)), np.zeros((2, 2, 3, 3)))


def test_gradients_keep_the_argument_dims_when_only_one_side_is_symbolic():
    """The grad ops carry x's and w's full shapes, so each cotangent has its argument's dims."""
    rng = np.random.default_rng(2)
    xv, wv = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    with sg.Graph():
        x, w = _ph(("N", "C", 6, 6)), _ph((4, 3, 3, 3))
        gx, gw = sg.grad(sg.sum(sg.square(sg.nn.conv2d(x, w, stride=2))), [x, w])
        assert gx.shape == x.shape and gw.shape == w.shape
        hx, hw = sg.grad(sg.sum(gx * gx) + sg.sum(gw * gw), [x, w])
        got = sg.function([x, w], [gx, gw, hx, hw])(xv, wv)
    assert [a.shape for a in got] == [xv.shape, wv.shape] * 2


# -- error messages --------------------------------------------------------------------------
def _conv(xs=(1, 3, 5, 5), ws=(2, 3, 3, 3), xdt="float32", wdt="float32", **kw):
    with sg.Graph():
        return sg.nn.conv2d(_ph(xs, xdt), _ph(ws, wdt), **kw)


@pytest.mark.parametrize("kw,err,pattern", [
    (dict(ws=(2, 4, 3, 3)), sg.ShapeError,
     r"conv2d: x has 3 channels but w expects 4 \(x: \(1, 3, 5, 5\) .*w: \(2, 4, 3, 3\)"),
    (dict(ws=(2, 3, 7, 3)), sg.ShapeError,
     r"kernel does not fit the padded input along H: input size 5 \+ 2\*padding 0 = 5 is "
     r"smaller than the kernel span 7.*no pixels"),
    (dict(ws=(2, 3, 3, 3), dilation=3), sg.ShapeError, r"kernel span 7 \(kernel 3, dilation 3\)"),
    (dict(xs=(3, 5, 5)), sg.ShapeError,
     r"conv2d: x must be 4-D \(N, C, H, W\), got shape \(3, 5, 5\)"),
    (dict(ws=(3, 3, 3)), sg.ShapeError, r"conv2d: w must be 4-D \(O, C, KH, KW\)"),
    (dict(xdt="int64"), sg.DTypeError, r"conv2d: x must be float32 or float64, got int64"),
    (dict(wdt="float64"), sg.DTypeError, r"same dtype \(x: float32, w: float64\)"),
    (dict(groups=3), sg.UnsupportedError, r"groups=3 is not supported"),
    (dict(stride=0), sg.ShapeError, r"conv2d: stride must be positive, got 0"),
    (dict(dilation=(1, 0)), sg.ShapeError, r"conv2d: dilation must be positive"),
    (dict(padding=-1), sg.ShapeError, r"conv2d: padding must be at least 0, got -1"),
    (dict(stride=(1, 2, 3)), TypeError, r"stride must be an int or a pair of ints"),
    (dict(stride=1.5), TypeError, r"stride must be an int or a pair of ints"),
    (dict(padding="full"), sg.ShapeError, r"padding must be an int, a pair, 'valid' or 'same'"),
    (dict(padding="same", stride=2), sg.ShapeError, r"padding='same' needs stride 1"),
    (dict(ws=(2, 3, 2, 3), padding="same"), sg.UnsupportedError, r"needs asymmetric padding"),
])
def test_conv2d_errors(kw, err, pattern):
    with pytest.raises(err, match=pattern):
        _conv(**kw)


def test_conv2d_padding_valid_and_same():
    assert _conv(padding="valid").shape == (1, 2, 3, 3)
    assert _conv(padding="same").shape == (1, 2, 5, 5)


def test_conv2d_bias_errors():
    with sg.Graph():
        x, w = _ph((1, 3, 5, 5)), _ph((2, 3, 3, 3))
        with pytest.raises(sg.ShapeError, match=r"bias has 3 entries but w has 2 output channels"):
            sg.nn.conv2d(x, w, _ph((3,)))
        with pytest.raises(sg.ShapeError, match=r"bias must be 1-D \(O,\), got shape \(2, 1\)"):
            sg.nn.conv2d(x, w, _ph((2, 1)))
        with pytest.raises(sg.DTypeError, match=r"same dtype \(x: float64, bias: float32\)"):
            sg.nn.conv2d(x, w, _ph((2,), "float32"))


@pytest.mark.parametrize("fn", [sg.nn.max_pool2d, sg.nn.avg_pool2d])
@pytest.mark.parametrize("args,kw,err,pattern", [
    ((2,), dict(padding=2), sg.ShapeError, r"padding \(2, 2\) must be at most half the kernel"),
    ((0,), {}, sg.ShapeError, r"kernel_size must be positive, got 0"),
    ((2, 0), {}, sg.ShapeError, r"stride must be positive"),
    ((7,), {}, sg.ShapeError, r"kernel does not fit the padded input along H: input size 5"),
    ((2,), dict(ceil_mode=True), sg.UnsupportedError, r"ceil_mode"),
])
def test_pool_errors(fn, args, kw, err, pattern):
    with sg.Graph():
        with pytest.raises(err, match=f"{fn.__name__}: .*{pattern}"):
            fn(_ph((1, 2, 5, 5)), *args, **kw)


def test_pool_errors_on_dtype_rank_and_modes():
    with sg.Graph():
        with pytest.raises(sg.DTypeError, match=r"max_pool2d: x must be float32 or float64, got int32"):
            sg.nn.max_pool2d(_ph((1, 1, 4, 4), "int32"), 2)
        with pytest.raises(sg.ShapeError, match=r"avg_pool2d: x must be 4-D \(N, C, H, W\), got "
                                                r"shape \(4, 4\)"):
            sg.nn.avg_pool2d(_ph((4, 4)), 2)
        with pytest.raises(sg.UnsupportedError, match="count_include_pad=True"):
            sg.nn.avg_pool2d(_ph((1, 1, 4, 4)), 2, count_include_pad=False)


def test_gradient_op_errors():
    with sg.Graph():
        w, x = _ph((4, 3, 3, 3)), _ph((2, 3, 8, 8))
        with pytest.raises(sg.ShapeError, match=r"conv2d_grad_input: g's spatial size \(5, 6\) is "
                                                r"not the conv2d output size \(6, 6\)"):
            apply(Conv2dGradInput(input_shape=(2, 3, 8, 8)), _ph((2, 4, 5, 6)), w)
        with pytest.raises(sg.ShapeError, match=r"conv2d_grad_input: g has 5 channels but w has 4"):
            apply(Conv2dGradInput(input_shape=(2, 3, 8, 8)), _ph((2, 5, 6, 6)), w)
        with pytest.raises(sg.ShapeError, match=r"conv2d_grad_input: w expects 3 input channels, "
                                                r"the input has 2"):
            apply(Conv2dGradInput(input_shape=(2, 2, 8, 8)), _ph((2, 4, 6, 6)), w)
        with pytest.raises(sg.ShapeError, match=r"conv2d_grad_input: g and the input have different"):
            apply(Conv2dGradInput(input_shape=(3, 3, 8, 8)), _ph((2, 4, 6, 6)), w)
        with pytest.raises(sg.ShapeError, match=r"input_shape must be \(N, C, H, W\), got \(8, 8\)"):
            apply(Conv2dGradInput(input_shape=(8, 8)), _ph((2, 4, 6, 6)), w)
        with pytest.raises(sg.ShapeError, match=r"conv2d_grad_weight: x and g have different batch"):
            apply(Conv2dGradWeight(weight_shape=(4, 3, 3, 3)), x, _ph((3, 4, 6, 6)))
        with pytest.raises(sg.ShapeError, match=r"conv2d_grad_weight: g has 5 channels, the weight "
                                                r"has 4 output channels"):
            apply(Conv2dGradWeight(weight_shape=(4, 3, 3, 3)), x, _ph((2, 5, 6, 6)))
        with pytest.raises(sg.ShapeError, match=r"conv2d_grad_weight: x has 3 channels, the weight "
                                                r"expects 2"):
            apply(Conv2dGradWeight(weight_shape=(4, 2, 3, 3)), x, _ph((2, 4, 6, 6)))
        with pytest.raises(sg.ShapeError, match=r"max_pool2d_grad: g has shape \(2, 3, 3, 4\) but "
                                                r"the pooled shape of x \(2, 3, 8, 8\) is \(2, 3, 4, 4\)"):
            apply(MaxPool2dGrad(kernel_size=(2, 2), stride=(2, 2)), x, _ph((2, 3, 3, 4)))
        with pytest.raises(sg.ShapeError, match=r"max_pool2d_select: h \(2, 3, 8, 7\) must have"):
            apply(MaxPool2dSelect(kernel_size=(2, 2), stride=(2, 2)), x, _ph((2, 3, 8, 7)))
        with pytest.raises(sg.ShapeError, match=r"avg_pool2d_grad: g has shape"):
            apply(AvgPool2dGrad(kernel_size=(2, 2), stride=(2, 2), input_size=(8, 8)),
                  _ph((2, 3, 5, 4)))


def test_ops_are_hashable_value_objects():
    a = Conv2d(stride=(2, 2), padding=(1, 1))
    b = Conv2d(stride=(2, 2), padding=(1, 1))
    assert a == b and hash(a) == hash(b)
    assert str(a) == "conv2d{stride=(2, 2), padding=(1, 1), dilation=(1, 1)}"
    with pytest.raises(TypeError):
        Conv2d((2, 2))  # parameters are keyword-only


# -- second derivatives -----------------------------------------------------------------------
def _hvp_check(loss_fn, arrays, eps=1e-5, rtol=1e-6, atol=1e-8):
    """Hessian-vector product (grad of <grad, v>) against central differences of the gradient."""
    rng = np.random.default_rng(7)
    vs = [rng.standard_normal(a.shape) for a in arrays]
    with sg.Graph():
        xs = [_ph(a.shape) for a in arrays]
        grads = sg.grad(loss_fn(*xs), xs)
        inner = sum(sg.sum(g * v) for g, v in zip(grads, vs))
        hv = sg.grad(inner, xs)
        f_grad, f_hv = sg.function(xs, grads), sg.function(xs, hv)
    plus = f_grad(*[a + eps * v for a, v in zip(arrays, vs)])
    minus = f_grad(*[a - eps * v for a, v in zip(arrays, vs)])
    for got, p, m in zip(f_hv(*arrays), plus, minus):
        np.testing.assert_allclose(got, (p - m) / (2 * eps), rtol=rtol, atol=atol)


@pytest.mark.parametrize("geo", [dict(), dict(stride=2, padding=1),
                                 dict(stride=(1, 2), padding=(2, 0), dilation=(2, 1))])
def test_conv2d_hessian_vector_product(geo):
    rng = np.random.default_rng(3)
    xv, wv = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 2)) * 0.3
    _hvp_check(lambda x, w: sg.sum(sg.tanh(sg.nn.conv2d(x, w, **geo))), [xv, wv], atol=1e-7)


def test_pooling_hessian_vector_products():
    rng = np.random.default_rng(4)
    xv = rng.permutation(2 * 3 * 6 * 6).reshape(2, 3, 6, 6) * 0.1 - 3.0  # no ties
    _hvp_check(lambda x: sg.sum(sg.square(sg.nn.max_pool2d(x, 3, 2, 1))), [xv])
    _hvp_check(lambda x: sg.sum(sg.tanh(sg.nn.avg_pool2d(x, 3, 2, 1))), [xv])


# -- max pooling ties --------------------------------------------------------------------------
def test_max_pool2d_ties_route_the_gradient_to_the_first_maximum():
    """Row-major first maximum of each window, as PyTorch; overlapping windows add up."""
    xv = np.zeros((1, 1, 4, 4))
    xv[0, 0, 1, 0] = xv[0, 0, 1, 1] = 5.0   # a tie inside the top-left 2x2 window
    with sg.Graph():
        x = _ph(xv.shape)
        (g2,) = sg.grad(sg.sum(sg.nn.max_pool2d(x, 2)), [x])
        (g1,) = sg.grad(sg.sum(sg.nn.max_pool2d(x, 2, stride=1)), [x])
        f = sg.function([x], [g2, g1])
    g2v, g1v = f(xv)
    want2 = np.zeros((4, 4))
    want2[[1, 0, 2, 2], [0, 2, 0, 2]] = 1   # first max: (1,0) for the tie, top-left for zeros
    np.testing.assert_array_equal(g2v[0, 0], want2)
    want1 = np.zeros((4, 4))   # windows at (0,0),(1,0) pick (1,0); (0,1),(1,1) pick (1,1)
    want1[1, 0] = want1[1, 1] = 2
    want1[[0, 1, 2, 2, 2], [2, 2, 0, 1, 2]] = 1
    np.testing.assert_array_equal(g1v[0, 0], want1)


# -- PyTorch as an outside oracle ----------------------------------------------------------------
def _torch_check(sg_fn, torch_fn, arrays, dtype, seed=0):
    """Values and gradients of every input (for a random cotangent) against PyTorch."""
    torch = pytest.importorskip("torch")
    arrays = [a.astype(dtype) for a in arrays]
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-11)
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    ty = torch_fn(*ts)
    cot = np.random.default_rng(seed).standard_normal(tuple(ty.shape)).astype(dtype)
    (ty * torch.tensor(cot)).sum().backward()
    with sg.Graph():
        xs = [_ph(a.shape, dtype) for a in arrays]
        y = sg_fn(*xs)
        grads = sg.grad(sg.sum(y * cot), xs)
        got = sg.function(xs, [y] + list(grads))(*arrays)
    for g, want in zip(got, [ty] + [t.grad for t in ts]):
        np.testing.assert_allclose(g, want.detach().numpy(), **tol)


CONV_GEOS = [dict(), dict(stride=2, padding=1),
             dict(stride=(2, 3), padding=(0, 2), dilation=(2, 1)),
             dict(padding="same", dilation=2)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("geo", CONV_GEOS, ids=str)
def test_conv2d_matches_torch(geo, batch, dtype):
    F = pytest.importorskip("torch.nn.functional")
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((batch, 3, 9, 8)), rng.standard_normal((4, 3, 3, 3)),
              rng.standard_normal(4)]
    _torch_check(lambda x, w, b: sg.nn.conv2d(x, w, b, **geo),
                 lambda x, w, b: F.conv2d(x, w, b, **geo), arrays, dtype)


POOL_ARGS = [(2,), (3, 2, 1), ((3, 2), (1, 2), (1, 1)), (3, 1)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("args", POOL_ARGS, ids=str)
@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
def test_pooling_matches_torch(name, args, dtype):
    F = pytest.importorskip("torch.nn.functional")
    rng = np.random.default_rng(6)
    xv = rng.standard_normal((2, 3, 7, 8))
    _torch_check(lambda x: getattr(sg.nn, name)(x, *args),
                 lambda x: getattr(F, name)(x, *args), [xv], dtype)


def test_max_pool2d_ties_and_dilation_match_torch():
    F = pytest.importorskip("torch.nn.functional")
    xv = np.round(np.random.default_rng(8).standard_normal((1, 2, 7, 7)))  # many ties
    _torch_check(lambda x: sg.nn.max_pool2d(x, 2, 1), lambda x: F.max_pool2d(x, 2, 1), [xv],
                 "float64")
    _torch_check(lambda x: sg.nn.max_pool2d(x, 3, 2, 1, dilation=2),
                 lambda x: F.max_pool2d(x, 3, 2, 1, dilation=2), [xv], "float64")


def test_conv2d_double_backward_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    xv, wv = rng.standard_normal((2, 3, 6, 7)), rng.standard_normal((2, 3, 3, 2))
    vx, vw = rng.standard_normal(xv.shape), rng.standard_normal(wv.shape)
    geo = dict(stride=(2, 1), padding=1)
    tx, tw = torch.tensor(xv, requires_grad=True), torch.tensor(wv, requires_grad=True)
    loss = torch.tanh(torch.nn.functional.conv2d(tx, tw, **geo)).sum()
    gx, gw = torch.autograd.grad(loss, [tx, tw], create_graph=True)
    want = torch.autograd.grad((gx * torch.tensor(vx)).sum() + (gw * torch.tensor(vw)).sum(),
                               [tx, tw])
    with sg.Graph():
        x, w = _ph(xv.shape), _ph(wv.shape)
        sx, sw = sg.grad(sg.sum(sg.tanh(sg.nn.conv2d(x, w, **geo))), [x, w])
        hv = sg.grad(sg.sum(sx * vx) + sg.sum(sw * vw), [x, w])
        got = sg.function([x, w], hv)(xv, wv)
    for g, t in zip(got, want):
        np.testing.assert_allclose(g, t.numpy(), rtol=1e-10, atol=1e-11)
