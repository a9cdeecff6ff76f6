"""Native convolution and pooling beyond the op table: symbolic batch and spatial dims
bound to several sizes in one compiled function (empty batches, chunked batches), the
workspace of the memory plan, max-pool ties/NaN/-inf exactly as the reference, a whole
CNN trained natively vs the reference executor, and PyTorch as an outside oracle."""
import numpy as np
import pytest

import symgraph as sg
from symgraph.op import apply
from symgraph.ops.pool import MaxPool2dGrad, MaxPool2dSelect

RNG = np.random.default_rng(0)


def both(build, *placeholders):
    """(reference, native) functions of the graph ``build(*tensors)``."""
    out = []
    for mode in ("reference", "native"):
        with sg.Graph():
            xs = [sg.placeholder(shape=s, dtype=dt, name=f"x{i}")
                  for i, (s, dt) in enumerate(placeholders)]
            out.append(sg.function(xs, build(*xs), mode=mode))
    return out


def assert_close(got, want, dtype):
    tol = 2e-5 if np.dtype(dtype) == np.float32 else 1e-11
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


def conv_net(x, w, *, stride=1, padding=1, dilation=1):
    """conv2d -> relu -> max pool + avg pool, and the gradients of a weighted sum."""
    y = sg.nn.conv2d(x, w, stride=stride, padding=padding, dilation=dilation)
    p = sg.nn.max_pool2d(sg.relu(y), 2, stride=1) + sg.nn.avg_pool2d(y, 3, stride=1, padding=1)[
        :, :, 1:, 1:]
    loss = sg.sum(sg.square(p) * 0.5) + sg.sum(y)
    gx, gw = sg.grad(loss, [x, w])
    return [y, p, gx, gw]


# -- symbolic dims: one compiled function, many sizes --------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_symbolic_batch_several_sizes_in_one_function(dtype):
    ref, nat = both(conv_net, ((None, 3, 8, 8), dtype), ((4, 3, 3, 3), dtype))
    art = nat.artifact
    w = RNG.standard_normal((4, 3, 3, 3)).astype(dtype)
    for n in (1, 3, 0, 7, 2):
        x = RNG.standard_normal((n, 3, 8, 8)).astype(dtype)
        assert_close(nat(x, w), ref(x, w), dtype)
    assert nat.artifact is art  # never recompiled


def test_empty_batch_gives_zero_weight_gradient():
    _, nat = both(conv_net, ((None, 2, 6, 6), "float64"), ((3, 2, 3, 3), "float64"))
    y, p, gx, gw = nat(np.zeros((0, 2, 6, 6)), RNG.standard_normal((3, 2, 3, 3)))
    assert y.shape == (0, 3, 6, 6) and gx.shape == (0, 2, 6, 6)
    np.testing.assert_array_equal(gw, np.zeros((3, 2, 3, 3)))


def test_symbolic_spatial_dims_stride_dilation():
    build = lambda x, w: conv_net(x, w, stride=(2, 1), padding=(1, 0), dilation=(1, 2))  # noqa
    ref, nat = both(build, (("N", 2, "H", "W"), "float64"), ((3, 2, 3, 2), "float64"))
    w = RNG.standard_normal((3, 2, 3, 2))
    for shape in [(1, 2, 5, 6), (2, 2, 8, 4), (3, 2, 9, 10), (0, 2, 7, 7)]:
        x = RNG.standard_normal(shape)
        assert_close(nat(x, w), ref(x, w), "float64")


def test_symbolic_input_too_small_is_an_error_not_a_crash():
    _, nat = both(lambda x, w: sg.nn.conv2d(x, w), ((1, 1, "H", 5), "float64"),
                  ((1, 1, 3, 3), "float64"))
    with pytest.raises(ValueError):
        nat(np.zeros((1, 1, 2, 5)), np.zeros((1, 1, 3, 3)))


def test_batches_larger_than_one_chunk(monkeypatch):
    """A small chunk budget splits the batch into chunks of batched GEMM calls (the last
    one partial); the shapes here are used by no other test, so nothing is cached."""
    from symgraph.compiler import lower_conv
    cols = 5 * 9 * 7 * 7 * 8  # bytes of one image's columns
    monkeypatch.setattr(lower_conv, "CHUNK_BYTES", 2 * cols + 100)  # 2 images, or 1 (gw)
    ref, nat = both(conv_net, ((None, 5, 7, 7), "float64"), ((2, 5, 3, 3), "float64"))
    plan = nat.memory_plan
    env = {s: 6 for s in nat.artifact.manifest["symbols"]}
    assert max(sg.dims.evaluate(plan.slots[k], env) for k in plan.temps.values()) < 3 * cols
    w = RNG.standard_normal((2, 5, 3, 3))
    for n in (1, 2, 5, 6):
        x = RNG.standard_normal((n, 5, 7, 7))
        assert_close(nat(x, w), ref(x, w), "float64")


def test_workspace_is_planned_and_pointwise_conv_needs_none():
    _, nat = both(lambda x, w: sg.nn.conv2d(x, w, padding=1), ((None, 3, 8, 8), "float32"),
                  ((4, 3, 3, 3), "float32"))
    plan = nat.memory_plan
    assert len(plan.temps) == 1
    symbols = nat.artifact.manifest["symbols"]
    scratch = sg.dims.evaluate(plan.scratch_bytes, {s: 4 for s in symbols})
    assert scratch >= 4 * 27 * 64 * 4  # four images of 27 x 64 columns, float32
    _, nat1 = both(lambda x, w: sg.nn.conv2d(x, w), ((None, 3, 8, 8), "float32"),
                   ((4, 3, 1, 1), "float32"))
    assert not nat1.memory_plan.temps


# -- max pooling: the reference's first maximum, exactly ------------------------------------
GEOMETRIES = [dict(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1)),
              dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(1, 1)),
              dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1), dilation=(2, 1))]


@pytest.mark.parametrize("geo", GEOMETRIES, ids=["k2s2", "k3s2p1", "dilated"])
@pytest.mark.parametrize("values", ["ties", "nan", "neg_inf"])
def test_max_pool_gradients_pick_the_reference_maximum(geo, values):
    shape = (2, 3, 7, 9)  # odd sizes: some pixels belong to no window
    x = RNG.integers(0, 3, shape).astype(np.float64)  # many ties
    if values == "nan":
        x[RNG.random(shape) < 0.1] = np.nan
    if values == "neg_inf":
        x[RNG.random(shape) < 0.6] = -np.inf
    with sg.Graph():
        probe = sg.nn.max_pool2d(sg.placeholder(shape=shape), geo["kernel_size"],
                                 geo["stride"], geo["padding"], dilation=geo["dilation"])
    gshape = tuple(probe.shape)

    def build(a, g, h):
        return [apply(MaxPool2dGrad(**geo), a, g), apply(MaxPool2dSelect(**geo), a, h),
                sg.nn.max_pool2d(a, geo["kernel_size"], geo["stride"], geo["padding"],
                                 dilation=geo["dilation"])]
    ref, nat = both(build, (shape, "float64"), (gshape, "float64"), (shape, "float64"))
    g, h = RNG.standard_normal(gshape), RNG.standard_normal(shape)
    for a, b in zip(nat(x, g, h), ref(x, g, h)):
        np.testing.assert_array_equal(a, b)


# -- a CNN trained natively ------------------------------------------------------------------
def cnn_params(seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((6, 1, 3, 3)) * 0.4).astype(dtype),
            (rng.standard_normal(6) * 0.1).astype(dtype),
            (rng.standard_normal((8, 6, 3, 3)) * 0.2).astype(dtype),
            (rng.standard_normal(8) * 0.1).astype(dtype),
            (rng.standard_normal((8 * 3 * 3, 10)) * 0.1).astype(dtype)]


def cnn_step(params, mode, dtype="float32", lr=0.05):
    """conv-relu-maxpool-conv-relu-maxpool-dense on 12x12 images, SGD updates."""
    with sg.Graph():
        x = sg.placeholder(shape=(None, 1, 12, 12), dtype=dtype, name="x")
        y = sg.placeholder(shape=(None,), dtype="int64", name="y")
        ps = [sg.shared(p.copy(), name=f"p{i}") for i, p in enumerate(params)]
        w1, b1, w2, b2, wd = ps
        h = sg.nn.max_pool2d(sg.relu(sg.nn.conv2d(x, w1, b1, padding=1)), 2)
        h = sg.nn.max_pool2d(sg.relu(sg.nn.conv2d(h, w2, b2, padding=1)), 2)
        loss = sg.nn.cross_entropy(sg.reshape(h, (-1, 8 * 3 * 3)) @ wd, y)
        grads = sg.grad(loss, ps)
        f = sg.function([x, y], loss, updates=[(p, p - lr * g) for p, g in zip(ps, grads)],
                        mode=mode)
    return f, ps


def batches(steps, n=16, dtype="float32"):
    rng = np.random.default_rng(3)
    return [(rng.standard_normal((n, 1, 12, 12)).astype(dtype), rng.integers(0, 10, n))
            for _ in range(steps)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cnn_training_native_matches_reference(dtype):
    params = cnn_params(dtype=dtype)
    nat, nat_ps = cnn_step(params, "native", dtype)
    ref, ref_ps = cnn_step(params, "reference", dtype)
    tol = 1e-4 if dtype == "float32" else 1e-10
    for k, (xb, yb) in enumerate(batches(4, dtype=dtype)):
        xb, yb = (xb[:9], yb[:9]) if k == 2 else (xb, yb)  # another batch size mid-training
        np.testing.assert_allclose(nat(xb, yb), ref(xb, yb), rtol=tol, atol=tol)
    for a, b in zip(nat_ps, ref_ps):
        np.testing.assert_allclose(a.get_value(), b.get_value(), rtol=tol, atol=tol)
    assert not np.allclose(nat_ps[0].get_value(), params[0])  # it did train


# -- PyTorch as an outside oracle ------------------------------------------------------------
def test_cnn_training_matches_pytorch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    params = cnn_params(dtype="float64")
    nat, nat_ps = cnn_step(params, "native", "float64")
    tps = [torch.tensor(p, requires_grad=True) for p in params]
    for xb, yb in batches(3, dtype="float64"):
        w1, b1, w2, b2, wd = tps
        h = F.max_pool2d(F.relu(F.conv2d(torch.tensor(xb), w1, b1, padding=1)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, w2, b2, padding=1)), 2)
        loss = F.cross_entropy(h.reshape(h.shape[0], -1) @ wd, torch.tensor(yb))
        grads = torch.autograd.grad(loss, tps)
        with torch.no_grad():
            for p, g in zip(tps, grads):
                p -= 0.05 * g
        np.testing.assert_allclose(nat(xb, yb), loss.item(), rtol=1e-10)
    for a, b in zip(nat_ps, tps):
        np.testing.assert_allclose(a.get_value(), b.detach().numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("stride,padding,dilation",
                         [(1, 0, 1), (2, 1, 1), ((2, 1), (0, 2), (1, 3))])
def test_conv_and_pool_gradients_match_pytorch(stride, padding, dilation):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    xs, ws = (3, 4, 11, 10), (5, 4, 3, 2)

    def build(x, w):
        y = sg.nn.conv2d(x, w, stride=stride, padding=padding, dilation=dilation)
        z = sg.nn.max_pool2d(y, 3, stride=1, padding=1) * sg.nn.avg_pool2d(y, 3, 1, 1)
        return [y, z] + sg.grad(sg.sum(sg.tanh(z)), [x, w])
    _, nat = both(build, (xs, "float64"), (ws, "float64"))
    x, w = RNG.standard_normal(xs), RNG.standard_normal(ws)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ty = F.conv2d(tx, tw, stride=stride, padding=padding, dilation=dilation)
    tz = F.max_pool2d(ty, 3, stride=1, padding=1) * F.avg_pool2d(ty, 3, 1, 1)
    want = [ty, tz] + list(torch.autograd.grad(torch.tanh(tz).sum(), [tx, tw]))
    for g, t in zip(nat(x, w), want):
        np.testing.assert_allclose(g, t.detach().numpy(), rtol=1e-9, atol=1e-11)
