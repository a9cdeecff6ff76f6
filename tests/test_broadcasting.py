"""Property tests: static broadcasting agrees with numpy, and random elementwise
expressions over broadcastable shapes evaluate as numpy does (reference mode)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import symgraph as sg

SETTINGS = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
shapes = array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3)


@SETTINGS
@given(shapes, shapes)
def test_static_broadcast_shape_is_numpys_or_both_raise(s1, s2):
    try:
        want = np.broadcast_shapes(s1, s2)
    except ValueError:
        want = None
    with sg.Graph():
        x = sg.placeholder(shape=s1, name="x")
        y = sg.placeholder(shape=s2, name="y")
        if want is None:
            with pytest.raises(sg.ShapeError, match="do not broadcast"):
                x + y
        else:
            assert (x + y).shape == want
            assert (y * x).shape == want
            assert sg.where(x > 0.0, x, y).shape == want


@SETTINGS
@given(shapes, shapes)
def test_broadcast_to_agrees_with_numpy(src, dst):
    try:
        np.broadcast_to(np.zeros(src), dst)
        ok = True
    except ValueError:
        ok = False
    with sg.Graph():
        x = sg.placeholder(shape=src, name="x")
        if ok:
            assert sg.broadcast_to(x, dst).shape == dst
        else:
            with pytest.raises(sg.ShapeError):
                sg.broadcast_to(x, dst)


# -- random elementwise programs ---------------------------------------------------------------
UNARY = [(np.negative, sg.negative), (np.abs, sg.abs), (np.tanh, sg.tanh), (np.sin, sg.sin),
         (lambda a: 1 / (1 + np.exp(-a)), sg.sigmoid)]
BINARY = [(np.add, sg.add), (np.subtract, sg.subtract), (np.multiply, sg.multiply),
          (np.maximum, sg.maximum), (np.minimum, sg.minimum),
          (lambda a, b: a / (abs(b) + 1),) * 2,  # abs() keeps a Python scalar weak
          (lambda a, b: np.where(a > b, a, b * 0.5), lambda a, b: sg.where(a > b, a, b * 0.5))]
SCALARS = [0.5, -2.0, 3]


@st.composite
def programs(draw):
    """Input shapes and dtypes, which dims are symbolic, and a list of steps; a step
    refers to earlier values (inputs first), so values can be shared."""
    n_inputs = draw(st.integers(1, 3))
    bshapes = draw(mutually_broadcastable_shapes(num_shapes=n_inputs, min_dims=0, max_dims=3,
                                                 min_side=0, max_side=3))
    result = bshapes.result_shape
    dtypes = [draw(st.sampled_from(["float32", "float64"])) for _ in range(n_inputs)]
    declared = []
    for shape in bshapes.input_shapes:
        # a dim may be symbolic when it has the result's size: static broadcasting then
        # only requires symbolic dims to agree, which they do at call time
        lead = len(result) - len(shape)
        declared.append(tuple(None if d == result[lead + k] and draw(st.booleans()) else d
                              for k, d in enumerate(shape)))
    steps = []
    for k in range(draw(st.integers(1, 8))):
        n_values = n_inputs + k
        kind = draw(st.sampled_from(["unary", "binary", "scalar"]))
        if kind == "unary":
            steps.append((kind, draw(st.integers(0, len(UNARY) - 1)),
                          draw(st.integers(0, n_values - 1))))
        elif kind == "binary":
            steps.append((kind, draw(st.integers(0, len(BINARY) - 1)),
                          draw(st.integers(0, n_values - 1)), draw(st.integers(0, n_values - 1))))
        else:
            steps.append((kind, draw(st.integers(0, len(BINARY) - 2)),
                          draw(st.integers(0, n_values - 1)), draw(st.sampled_from(SCALARS)),
                          draw(st.booleans())))
    seed = draw(st.integers(0, 2 ** 16))
    return bshapes.input_shapes, declared, dtypes, steps, seed


def evaluate(steps, values, unary, binary):
    values = list(values)
    for step in steps:
        if step[0] == "unary":
            values.append(unary[step[1]](values[step[2]]))
        elif step[0] == "binary":
            values.append(binary[step[1]](values[step[2]], values[step[3]]))
        else:
            _, op, i, scalar, left = step
            f = binary[op]
            values.append(f(scalar, values[i]) if left else f(values[i], scalar))
    return values


@SETTINGS
@given(programs())
def test_random_elementwise_programs_match_numpy(program):
    shapes_, declared, dtypes, steps, seed = program
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dt) for s, dt in zip(shapes_, dtypes)]
    with np.errstate(all="ignore"):
        want = evaluate(steps, arrays, [u for u, _ in UNARY], [b for b, _ in BINARY])[-1]
    with sg.Graph():
        xs = [sg.placeholder(shape=d, dtype=dt, name=f"x{k}")
              for k, (d, dt) in enumerate(zip(declared, dtypes))]
        out = evaluate(steps, xs, [u for _, u in UNARY], [b for _, b in BINARY])[-1]
        assert out.dtype == want.dtype
        assert out.ndim == want.ndim
        for d, w in zip(out.shape, want.shape):
            assert d == w or isinstance(d, sg.SymDim)
        plain = sg.function(xs, out, rewrites=False, mode="reference")
        optimized = sg.function(xs, out, mode="reference")
    # A float32 intermediate carries float32 rounding into a float64 result (sigmoid of a
    # float32 input may differ by an ulp between formulas), so any float32 input sets it.
    rtol = 1e-5 if want.dtype == np.float32 or "float32" in dtypes else 1e-12
    for f in (plain, optimized):
        got = f(*arrays)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
