"""Every op in the table: reference executor vs numpy, gradient vs finite differences."""
import warnings

import numpy as np
import pytest

import symgraph as sg
from .opinfo import all_cases

CASES = all_cases()


def _params():
    for case in CASES:
        for dtype in case.dtypes:
            for k, shapes in enumerate(case.shapes):
                yield pytest.param(case, dtype, shapes, id=f"{case.name}-{dtype}-{k}")


def _compile(case, arrays):
    with sg.Graph():
        xs = [sg.placeholder(shape=a.shape, dtype=a.dtype, name=f"x{i}")
              for i, a in enumerate(arrays)]
        return sg.function(xs, case.build(*xs), mode="reference")


@pytest.mark.parametrize("case,dtype,shapes", list(_params()))
def test_value_matches_numpy(case, dtype, shapes):
    rng = np.random.default_rng(abs(hash((case.name, dtype, shapes))) % 2**32)
    arrays = case.draw(rng, shapes, dtype)
    try:
        with np.errstate(all="ignore"):
            want = np.asarray(case.ref(*arrays))
    except ValueError:  # numpy refuses (e.g. max of an empty axis): so must we
        with pytest.raises(ValueError):
            _compile(case, arrays)(*arrays)
        return
    got = _compile(case, arrays)(*arrays)
    assert got.shape == want.shape
    tol = dict(rtol=max(case.rtol, 2e-6 if dtype == "float32" else 1e-12),
               atol=case.atol if dtype == "float32" else 1e-12)
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, **tol)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("case,dtype,shapes",
                         [p for p in _params() if p.values[1] == "float64"])
def test_gradient_matches_finite_differences(case, dtype, shapes):
    rng = np.random.default_rng(1 + abs(hash((case.name, shapes))) % 2**32)
    arrays = case.draw(rng, shapes, dtype)
    try:
        with np.errstate(all="ignore"):
            case.ref(*arrays)
    except ValueError:
        pytest.skip("undefined for this input (numpy refuses it too)")
    positions = case.grad_positions(arrays)
    if not positions:
        pytest.skip("no differentiable input")
    fixed = list(arrays)

    def fn(*ts):
        full = list(fixed)
        vals = iter(ts)
        with_consts = [next(vals) if k in positions else sg.constant(a) for k, a in enumerate(full)]
        return case.build(*with_consts)

    sg.testing.check_grad(fn, [arrays[k] for k in positions],
                          rtol=case.grad_rtol, atol=case.grad_atol, eps=case.grad_eps)
