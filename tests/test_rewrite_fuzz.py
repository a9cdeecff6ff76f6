"""Differential fuzzing: random graphs of the front end's ops (elementwise, reductions,
softmax, shape ops, matmul, slicing, concatenation; random shapes with
broadcasting, float32 and float64, with and without gradients) give the same values
rewritten (and fused) as not, under the reference executor.

Runs FUZZ_EXAMPLES examples (200 by default, as in CI); set SYMGRAPH_FUZZ_EXAMPLES=5000
for a longer search. Where the unoptimized value is inf or nan the optimized one may be
finite (that is what stabilization is for); everywhere else they must agree.
"""
import os

import numpy as np
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

import symgraph as sg
from symgraph.errors import SymgraphError

FUZZ_EXAMPLES = int(os.environ.get("SYMGRAPH_FUZZ_EXAMPLES", "200"))

UNARY = {
    "neg": lambda x: -x, "exp": lambda x: sg.exp(x * 0.5), "tanh": sg.tanh,
    "sigmoid": sg.sigmoid, "square": sg.square, "relu": sg.relu, "abs": sg.abs,
    "softplus": sg.softplus, "sqrt_abs": lambda x: sg.sqrt(sg.abs(x)),
    "log_pos": lambda x: sg.log(sg.abs(x) + 0.5), "log1p_like": lambda x: sg.log(1.0 + sg.square(x)),
    "expm1_like": lambda x: sg.exp(x * 0.1) - 1.0, "log_sigmoid": lambda x: sg.log(sg.sigmoid(x)),
    "log_1m_sigmoid": lambda x: sg.log(1 - sg.sigmoid(x)), "softplus_naive": lambda x: sg.log(1.0 + sg.exp(x)),
    "exp_log": lambda x: sg.exp(sg.log(x)), "log_exp": lambda x: sg.log(sg.exp(x)),
    "times_one": lambda x: x * 1.0, "plus_zero": lambda x: 0.0 + x, "double_neg": lambda x: -(-x),
    "pow2": lambda x: x ** 2, "pow_half": lambda x: sg.abs(x) ** 0.5, "div_one": lambda x: x / 1.0,
    "stop": sg.stop_gradient, "cast_round_trip": lambda x: sg.cast(sg.cast(x, "float64"), x.dtype),
    "scale": lambda x: (x * 2.0) * 0.25, "ones_like": lambda x: x * sg.ones_like(x),
    "where_const": lambda x: sg.where(sg.constant(True), x, -x),
    "clip": lambda x: sg.clip(x, -1.0, 1.0),
}
BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (sg.abs(b) + 0.5), "max": sg.maximum, "min": sg.minimum,
    "where": lambda a, b: sg.where(a > b, a, b), "neg_sub": lambda a, b: a - (-b),
    "neg_cmp": lambda a, b: sg.where((-a) < (-b), a, b * 2.0),
    "add_neg": lambda a, b: (-a) + b, "self_sub": lambda a, b: a - a + b,
}


def _reduce(kind, x, axis, keep):
    if x.ndim == 0:
        return x
    axis = axis % x.ndim
    if kind == "sum":
        return sg.sum(x, axis=axis, keepdims=keep)
    if kind == "max":
        return sg.max(x, axis=axis, keepdims=keep)
    if kind == "mean":
        return sg.mean(x, axis=axis, keepdims=keep)
    if kind == "lse":
        return sg.log(sg.sum(sg.exp(x), axis=axis, keepdims=keep))
    if kind == "ratio":  # a hand-written softmax, over the right axis only with keepdims
        return sg.exp(x) / sg.sum(sg.exp(x), axis=axis, keepdims=keep)
    if kind == "logsoftmax":
        return sg.log(sg.nn.softmax(x, axis=axis))
    return sg.nn.softmax(x, axis=axis)


def _reshape(kind, x, k):
    if kind == "mm":  # x @ x^T (a transpose the rewrites turn into a GEMM flag) or x . x
        if x.ndim >= 2:
            axes = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
            return sg.matmul(x, sg.transpose(x, axes)) * 0.1
        return sg.dot(x, x) * 0.1 if x.ndim == 1 else x
    if kind == "slice":
        return x[..., :1] * 2.0 if x.ndim else x
    if kind == "concat":
        return sg.concatenate([x, -x], axis=0) if x.ndim else x
    if kind == "T":
        return sg.transpose(sg.transpose(x)) if k % 2 else sg.transpose(x)
    if kind == "flat":
        return sg.reshape(sg.reshape(x, (-1,)), x.shape)
    shape = (2,) + tuple(x.shape)
    return sg.sum(sg.broadcast_to(x, shape), axis=0)


@st.composite
def programs(draw):
    """(dtype, input shapes, a list of steps); each step refers to earlier values."""
    dtype = draw(st.sampled_from(["float32", "float64"]))
    rank = draw(st.integers(0, 3))
    base = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    shapes = []
    for _ in range(draw(st.integers(1, 3))):
        lead = draw(st.integers(0, rank))
        shapes.append(tuple(1 if draw(st.booleans()) and draw(st.booleans()) else d
                            for d in base[lead:]))
    steps = []
    for _ in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(["u", "u", "b", "b", "r", "s"]))
        a, b = draw(st.integers(0, 100)), draw(st.integers(0, 100))
        if kind == "u":
            steps.append(("u", draw(st.sampled_from(sorted(UNARY))), a))
        elif kind == "b":
            steps.append(("b", draw(st.sampled_from(sorted(BINARY))), a, b))
        elif kind == "r":
            steps.append(("r", draw(st.sampled_from(["sum", "max", "mean", "lse", "logsoftmax",
                                                     "softmax", "ratio"])), a, b, draw(st.booleans())))
        else:
            steps.append(("s", draw(st.sampled_from(["T", "flat", "bsum", "mm", "slice",
                                                     "concat"])), a, b))
    grad = draw(st.booleans())
    seed = draw(st.integers(0, 2**31))
    return dtype, shapes, steps, grad, seed


def _build(steps, grad):
    def build(*xs):
        vals = list(xs)
        for step in steps:
            pick = lambda k: vals[-1 - k % min(len(vals), 4)]  # noqa: E731 (recent values)
            if step[0] == "u":
                vals.append(UNARY[step[1]](pick(step[2])))
            elif step[0] == "b":
                vals.append(BINARY[step[1]](pick(step[2]), pick(step[3])))
            elif step[0] == "r":
                vals.append(_reduce(step[1], pick(step[2]), step[3], step[4]))
            else:
                vals.append(_reshape(step[1], pick(step[2]), step[3]))
        out = vals[-1]
        outs = [out]
        if grad:
            outs += sg.grad(sg.sum(out * out), list(xs), disconnected="zero")
        return outs
    return build


def _agree(want, got, dtype, *, rtol32=2e-4, specials=False):
    """Same dtypes and shapes, finite values close; with ``specials``, NaNs and
    infinities also stand at the same places."""
    rtol, atol = (rtol32, 1e-5) if dtype == "float32" else (1e-9, 1e-12)
    for w, g in zip(want, got):
        assert w.dtype == g.dtype and w.shape == g.shape
        ok = np.isfinite(w)
        if specials:
            np.testing.assert_array_equal(np.isnan(w), np.isnan(g))
            np.testing.assert_array_equal(w[~ok & ~np.isnan(w)], g[~ok & ~np.isnan(w)])
        scale = np.max(np.abs(w[ok]), initial=1.0)
        np.testing.assert_allclose(g[ok], w[ok], rtol=rtol, atol=atol * scale)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs())
def test_rewritten_graphs_compute_the_same_values(prog):
    dtype, shapes, steps, grad, seed = prog
    rng = np.random.default_rng(seed)
    arrays = [(rng.standard_normal(s) * 1.5).astype(dtype) for s in shapes]
    with sg.Graph():
        xs = [sg.placeholder(shape=a.shape, dtype=dtype, name=f"x{i}") for i, a in enumerate(arrays)]
        try:
            outs = _build(steps, grad)(*xs)
        except SymgraphError:  # e.g. a transposed operand that no longer broadcasts
            reject()
        plain = sg.function(xs, outs, rewrites=False, mode="reference")
        opt = sg.function(xs, outs, rewrites={"verify": True}, mode="reference")
    _agree(plain(*arrays), opt(*arrays), dtype)
