"""Every op in the table compiled to native code vs the reference executor (values and gradients)."""
import numpy as np
import pytest

import symgraph as sg
from symgraph.errors import UnsupportedError
from .opinfo import all_cases

CASES = all_cases()


def _params():
    for case in CASES:
        for dtype in case.dtypes:
            for k, shapes in enumerate(case.shapes):
                yield pytest.param(case, dtype, shapes, id=f"{case.name}-{dtype}-{k}")


def _both(case, arrays, build):
    fns = []
    for mode in ("reference", "native"):
        with sg.Graph():
            xs = [sg.placeholder(shape=a.shape, dtype=a.dtype, name=f"x{i}")
                  for i, a in enumerate(arrays)]
            fns.append(sg.function(xs, build(xs), mode=mode))
    return fns


def _compare(got, want, dtype):
    assert got.shape == want.shape and got.dtype == want.dtype
    if want.dtype.kind == "f":
        tol = 2e-5 if dtype == "float32" else 1e-11
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("case,dtype,shapes", list(_params()))
def test_native_matches_reference(case, dtype, shapes):
    rng = np.random.default_rng(abs(hash((case.name, dtype, shapes))) % 2**32)
    arrays = case.draw(rng, shapes, dtype)
    ref, nat = _both(case, arrays, lambda xs: case.build(*xs))
    try:
        want = ref(*arrays)
    except (ValueError, IndexError) as e:
        with pytest.raises(type(e) if not isinstance(e, ValueError) else ValueError):
            nat(*arrays)
        return
    _compare(nat(*arrays), want, dtype)


@pytest.mark.parametrize("case,dtype,shapes", list(_params()))
def test_native_gradient_matches_reference(case, dtype, shapes):
    rng = np.random.default_rng(7 + abs(hash((case.name, dtype, shapes))) % 2**32)
    arrays = case.draw(rng, shapes, dtype)
    positions = case.grad_positions(arrays)
    if not positions:
        pytest.skip("no differentiable input")

    def build(xs):
        out = case.build(*xs)
        proj = sg.constant(np.random.default_rng(0).standard_normal(tuple(out.shape)).astype(out.dtype))
        return sg.grad(sg.sum(out * proj), [xs[k] for k in positions])
    try:
        ref, nat = _both(case, arrays, build)
        want = ref(*arrays)
    except (ValueError, IndexError):
        pytest.skip("undefined for this input")
    for g, w in zip(nat(*arrays), want):
        _compare(g, w, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(3, 5, 7), (1, 9, 1), (4, 0, 2), (2, 1, 17)])
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_along_every_axis_matches_numpy(dtype, shape, axis, log):
    """The last axis is lowered as contiguous rows, the others with a stride: both
    against numpy, with symbolic leading dims so the kernel cannot specialize on them."""
    x = (np.random.default_rng(7).standard_normal(shape) * 4).astype(dtype)
    with sg.Graph():
        xs = sg.placeholder(shape=("a",) + shape[1:], dtype=dtype, name="x")
        y = (sg.nn.log_softmax if log else sg.nn.softmax)(xs, axis=axis)
        f = sg.function([xs], y, mode="native")
    shifted = x - x.max(axis=axis, keepdims=True) if x.size else x
    with np.errstate(divide="ignore"):   # an empty row sums to 0 (no element uses it)
        want = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
    want = want if log else np.exp(want)
    tol = 2e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(f(x), want, rtol=tol, atol=tol)
