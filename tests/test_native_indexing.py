"""Native indexing and joining beyond the op table: bad indices found by native code raise
(in a child process, so a crash would show as a dead process, not a dead test run),
symbolic dims bound to several sizes in one compiled function, random slice keys."""
import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import symgraph as sg
from symgraph.op import apply
from symgraph.ops.indexing import TakeGrad

RNG = np.random.default_rng(0)


# -- bad indices: an exception with the op, the index and the bound, never a crash ----------
_PRELUDE = """
import json, numpy as np, symgraph as sg
from symgraph.op import apply
from symgraph.ops.indexing import TakeGrad

def attempt(label, f, *args):
    try:
        f(*args)
        out = {"label": label, "error": None}
    except Exception as e:
        out = {"label": label, "error": type(e).__name__, "message": str(e)}
    print(json.dumps(out), flush=True)
"""

BAD_INDEX_SCRIPTS = {
    "take": """
        with sg.Graph():
            x = sg.placeholder(shape=(None, 3), dtype="float64", name="x")
            i = sg.placeholder(shape=(None,), dtype="int64", name="i")
            j = sg.placeholder(shape=(None,), dtype="int32", name="j")
            f = sg.function([x, i], sg.take(x, i, axis=0), mode="native")
            flat = sg.function([x, i], sg.take(x, i), mode="native")
            last = sg.function([x, j], x[:, j], mode="native")
            g = sg.function([x, i], apply(TakeGrad(axis=0, shape=(5, 3)), x, i), mode="native")
        x4 = np.ones((4, 3))
        attempt("past the end", f, x4, np.array([0, 4, 9]))
        attempt("before the start", f, x4, np.array([-5]))
        attempt("huge", f, x4, np.array([2**62]))
        attempt("most negative", f, x4, np.array([-2**63]))
        attempt("empty axis", f, np.ones((0, 3)), np.array([0]))
        attempt("flattened", flat, np.ones((2, 3)), np.array([5, 6]))
        attempt("int32 on the last axis", last, x4, np.array([1, -4], np.int32))
        attempt("take_grad", g, np.ones((2, 3)), np.array([4, 5]))
        attempt("still works", f, x4, np.array([3, -4]))
    """,
    "one_hot": """
        with sg.Graph():
            y = sg.placeholder(shape=(None,), dtype="int64", name="y")
            x = sg.placeholder(shape=(None, None), dtype="float32", name="x")
            f = sg.function([y], sg.one_hot(y, 4), mode="native")
            g = sg.function([x, y], sg.one_hot(y, x.shape[1]) + x, mode="native")
        attempt("too big", f, np.array([0, 3, 4, 7]))
        attempt("negative", f, np.array([-1, 2]))
        attempt("symbolic depth", g, np.ones((2, 3), np.float32), np.array([2, 3]))
        attempt("still works", f, np.array([3, 0]))
    """,
    "getitem": """
        with sg.Graph():
            x = sg.placeholder(shape=(None, 2), dtype="float64", name="x")
            f = sg.function([x], x[3], mode="native")
            fz = sg.function([x], x[-3, None, ::-1], mode="native")
            fi = sg.function([x], x[[0, 3, -1]], mode="native")
        attempt("past the end", f, np.ones((2, 2)))
        attempt("before the start", fz, np.ones((2, 2)))
        attempt("empty", f, np.ones((0, 2)))
        attempt("index array", fi, np.ones((3, 2)))
        attempt("still works", f, np.ones((4, 2)))
    """,
}

BAD_INDEX_EXPECTED = {
    "take": {
        "past the end": r"take \(node %\d+, created at .*\): index 4 is out of bounds for axis 0 "
                        r"with size 4; valid indices are \[-4, 4\)",
        "before the start": r"take .*: index -5 is out of bounds for axis 0 with size 4",
        "huge": rf"index {2**62} is out of bounds for axis 0 with size 4",
        "most negative": rf"index {-2**63} is out of bounds for axis 0 with size 4",
        "empty axis": r"index 0 is out of bounds for axis 0 with size 0; valid indices are "
                      r"\[0, 0\)",
        "flattened": r"index 6 is out of bounds for the flattened tensor of size 6; valid "
                     r"indices are \[-6, 6\)",
        "int32 on the last axis": r"index -4 is out of bounds for axis 1 with size 3",
        "take_grad": r"take_grad .*: index 5 is out of bounds for axis 0 with size 5",
    },
    "one_hot": {
        "too big": r"one_hot .*: index 4 is out of bounds for depth 4; valid indices are \[0, 4\)",
        "negative": r"one_hot .*: index -1 is out of bounds for depth 4",
        "symbolic depth": r"index 3 is out of bounds for depth 3; valid indices are \[0, 3\)",
    },
    "getitem": {
        "past the end": r"slice .*: index 3 is out of bounds for axis 0 with size 2$",
        "before the start": r"slice .*: index -3 is out of bounds for axis 0 with size 2$",
        "empty": r"index 3 is out of bounds for axis 0 with size 0$",
        "index array": r"take .*: index 3 is out of bounds for axis 0 with size 3",
    },
}


@pytest.mark.parametrize("family", sorted(BAD_INDEX_SCRIPTS))
def test_bad_indices_raise_index_error_in_native_code(family):
    code = _PRELUDE + textwrap.dedent(BAD_INDEX_SCRIPTS[family])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"child process died ({proc.returncode}):\n{proc.stderr}"
    results = {r["label"]: r for r in map(json.loads, proc.stdout.splitlines())}
    for label, pattern in BAD_INDEX_EXPECTED[family].items():
        r = results[label]
        assert r["error"] == "IndexError", r
        assert re.search(pattern, r["message"]), (pattern, r["message"])
    assert results["still works"]["error"] is None


def test_error_values_agree_between_compiler_and_runtime():
    from symgraph.compiler.checks import ERROR_VALUES as compiler_side
    from symgraph.runtime.native import ERROR_VALUES as runtime_side
    assert compiler_side == runtime_side


# -- symbolic dims: one compiled function, several sizes ------------------------------------
def _both(inputs, outputs):
    return [sg.function(inputs, outputs, mode=m) for m in ("reference", "native")]


def _assert_same(got, want):
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


def test_symbolic_slices_pads_and_joins_at_several_sizes():
    with sg.Graph():
        x = sg.placeholder(shape=(None, None), dtype="float32", name="x")
        z = sg.placeholder(shape=(None, 3), dtype="int32", name="z")
        n = x.shape[0]
        outs = [x[1:], x[:, ::-2], x[:-1, 1::3], x[n:], x[:, None, -2:], x[::2, -1],
                sg.pad(x, ((1, 2), (0, 3)), constant_values=-0.0),
                sg.pad(z, 1, constant_values=7),
                sg.concatenate([x[:, :1], x, x[:, 1:]], axis=1),
                sg.concatenate([z, z[::-1]], axis=0),
                sg.concatenate([x[:, :3], z], axis=0),   # float32 + int32 -> float64
                sg.stack([z, z * 2], axis=-1)]
        cost = sum(sg.sum(o * o) for o in outs if o.dtype == np.float32)
        (gx,) = sg.grad(cost, [x])
        ref, nat = _both([x, z], outs + [gx])
    for rows, cols in [(0, 3), (1, 3), (2, 5), (5, 3), (9, 8)]:
        a = RNG.standard_normal((rows, cols)).astype(np.float32)
        b = RNG.integers(-9, 9, (rows, 3)).astype(np.int32)
        _assert_same(nat(a, b), ref(a, b))
    # -0.0 padding is not a memset of zeros: its sign bit survives
    assert np.signbit(nat(np.ones((1, 3), np.float32), np.ones((1, 3), np.int32))[6][0, 0])


def test_symbolic_gathers_scatters_and_one_hot_at_several_sizes():
    with sg.Graph():
        x = sg.placeholder(shape=(None, None), dtype="float32", name="x")
        i = sg.placeholder(shape=(None,), dtype="int64", name="i")
        lab = sg.placeholder(shape=(None,), dtype="int32", name="lab")
        y = sg.take(x, i, axis=0)
        w = sg.take(x, i[:2], axis=1)
        oh = sg.one_hot(lab, x.shape[0], dtype="float32")
        (gx,) = sg.grad(sg.sum(y * y) + sg.sum(w) + sg.sum(sg.take(x, i) * 3.0), [x])
        ref, nat = _both([x, i, lab], [y, w, oh, gx, x[i]])
    for rows, idx in [(4, [0, -1, 0, 2, 3]), (1, [0, 0, -1]), (6, [5, 1]), (3, [2, 2]),
                      (2, [])]:
        a = RNG.standard_normal((rows, 2 + rows)).astype(np.float32)
        ii, labels = np.array(idx, np.int64), RNG.integers(0, rows, 7).astype(np.int32)
        _assert_same(nat(a, ii, labels), ref(a, ii, labels))


def test_take_grad_adds_repeated_indices_in_numpy_order():
    """float32 sums depend on the order; np.add.at adds in index order, and so do we."""
    with sg.Graph():
        g = sg.placeholder(shape=(2, None), dtype="float32", name="g")
        i = sg.placeholder(shape=(None,), dtype="int32", name="i")
        ref, nat = _both([g, i], apply(TakeGrad(axis=1, shape=(2, 3)), g, i))
    ii = np.array([1, -2, 1, 0, 1, 1, -1] * 5, np.int32)
    a = (RNG.standard_normal((2, ii.size)) * 10.0 ** RNG.integers(-4, 5, (2, ii.size)))
    a = a.astype(np.float32)
    want = np.zeros((2, 3), np.float32)
    np.add.at(want, (slice(None), ii), a)
    _assert_same([nat(a, ii)], [want])
    _assert_same([nat(a, ii)], [ref(a, ii)])


def test_contiguous_rows_copy_as_runs():
    """A step-1 slice of the last axis copies each row as one run (memcpy or vector code)."""
    with sg.Graph():
        x = sg.placeholder(shape=(None, None), dtype="float32", name="x")
        f = sg.function([x], [x[:, 1:-1], sg.concatenate([x, x], axis=1)], mode="native")
    text = f.llvm_ir
    assert "llvm.memcpy" in text or "x float>" in text


# -- random slice keys: native vs reference, values, gradients and errors -------------------
BOUNDS = st.one_of(st.none(), st.integers(-7, 7))


@st.composite
def slice_keys(draw):
    rank = draw(st.integers(1, 3))
    entries = []
    for _ in range(rank):
        if draw(st.integers(0, 3)) == 0:
            entries.append(draw(st.integers(-4, 3)))
        else:
            step = draw(st.sampled_from([None, 1, 2, 3, -1, -2, -3]))
            entries.append(slice(draw(BOUNDS), draw(BOUNDS), step))
    if draw(st.booleans()):
        i = draw(st.integers(0, rank))
        entries[i:draw(st.integers(i, rank))] = [Ellipsis]
    for _ in range(draw(st.integers(0, 2))):
        entries.insert(draw(st.integers(0, len(entries))), None)
    shapes = draw(st.lists(st.tuples(*[st.integers(0, 6)] * rank), min_size=1, max_size=3))
    return tuple(entries), shapes


def _run(f, a):
    try:
        return f(a), None
    except IndexError as e:
        return None, re.search(r"index -?\d+ is out of bounds.*", str(e)).group(0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(slice_keys(), st.booleans())
def test_random_slice_keys_native_matches_reference(key_shapes, symbolic):
    key, shapes = key_shapes
    rank = len(shapes[0])
    with sg.Graph():
        x = sg.placeholder(shape=(None,) * rank if symbolic else shapes[0], dtype="float64")
        try:
            y = x[key]
        except IndexError:
            assume(False)
        (gx,) = sg.grad(sg.sum(y * y), [x])
        ref, nat = _both([x], [y, gx])
    for shape in shapes if symbolic else shapes[:1]:
        a = RNG.standard_normal(shape)
        (want, want_err), (got, got_err) = _run(ref, a), _run(nat, a)
        assert got_err == want_err, (key, shape)
        if want is not None:
            _assert_same(got, want)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3), st.integers(0, 3)),
                min_size=1, max_size=3),
       st.sampled_from([("float32", -0.0), ("float64", 2.5), ("int32", -7), ("bool", 1),
                        ("int64", 0)]),
       st.booleans())
def test_random_pads_native_matches_reference(axes, dtype_value, symbolic):
    """Each axis is (size, before, after); the slabs around the box tile the padding."""
    dtype, value = dtype_value
    shape = tuple(n for n, _, _ in axes)
    widths = tuple((b, a) for _, b, a in axes)
    with sg.Graph():
        x = sg.placeholder(shape=(None,) * len(shape) if symbolic else shape, dtype=dtype)
        ref, nat = _both([x], [sg.pad(x, widths, constant_values=value)])
    a = (RNG.standard_normal(shape) * 5).astype(dtype)
    got, want = nat(a), ref(a)
    _assert_same(got, want)
    if dtype.startswith("float"):
        np.testing.assert_array_equal(np.signbit(got[0]), np.signbit(want[0]))
