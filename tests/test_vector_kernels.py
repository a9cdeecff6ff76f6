"""Fused kernels written in vector form (compiler/vector_kernels.py): whole registers
and a masked tail per row (a compact tail, on copies in stack buffers, in a big
module), compiled with the light pipeline and linked into the module. They must
compute what the reference executor computes for every row length around the
register width, every broadcast pattern and reduction, and their tails must never
touch memory past an operand's end."""
import contextlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import symgraph as sg
from symgraph.compiler import partition, target
from symgraph.compiler.vector_kernels import LIGHT_ATTRIBUTE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# around one and two registers of float32 (8 or 16 lanes) and float64 (4 or 8)
LENGTHS = [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33]


@contextlib.contextmanager
def big_module(on: bool):
    """Compile as a big module (many kernels): vector math stays out of line and its
    kernels too are written in vector form (a small module leaves them to the loop
    vectorizer, which interleaves them)."""
    saved = target.BIG_MODULE_FUNCTIONS
    if on:
        target.BIG_MODULE_FUNCTIONS = -1
    try:
        yield
    finally:
        target.BIG_MODULE_FUNCTIONS = saved


def _both(build, arrays, shapes=None):
    out = []
    for mode in ("reference", "native"):
        with sg.Graph():
            xs = [sg.placeholder(shape=s, dtype=a.dtype, name=f"x{k}")
                  for k, (a, s) in enumerate(zip(arrays, shapes or [a.shape for a in arrays]))]
            f = sg.function(xs, build(*xs), mode=mode)
        out.append(f)
    return out


def _light(f) -> int:
    text = f._full_artifact("ir").ir
    return sum(LIGHT_ATTRIBUTE in line for line in text.splitlines()
               if line.startswith("define"))


def _tol(dtype):
    return dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("big", [False, True], ids=["masked-tail", "compact-tail"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", LENGTHS)
def test_rows_of_every_length_around_the_register_width(dtype, n, big):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((3, n)).astype(dtype)
    row = rng.standard_normal((n,)).astype(dtype)
    col = rng.standard_normal((3, 1)).astype(dtype)

    def build(x, row, col):
        h = sg.maximum(x * row - col, x * 0.5) / (sg.abs(col) + 1.0)
        outs = [h, sg.sum(h * h, axis=1), sg.max(h, axis=0), sg.sum(h)]
        return outs + [sg.min(h - row, axis=1)] if n else outs   # no min of nothing
    with big_module(big):
        ref, nat = _both(build, [x, row, col], [("a", n), (n,), ("a", 1)])
    assert _light(nat) >= 1
    for got, want in zip(nat(x, row, col), ref(x, row, col)):
        np.testing.assert_allclose(got, want, **_tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 3, 8, 9, 17])
def test_rows_of_symbolic_length_in_a_big_module(dtype, n):
    """Inner rows whose length is a symbol: compact tails in every row of the nest,
    with reductions along the rows (folded, masked by identity) and across them."""
    rng = np.random.default_rng(n)
    x = rng.standard_normal((5, n)).astype(dtype)
    row = rng.standard_normal((n,)).astype(dtype)

    def build(x, row):
        h = sg.maximum(x * row, x - 1.0) + row
        outs = [h, sg.sum(h, axis=1), sg.sum(h * row, axis=0)]
        return outs + [sg.max(h, axis=1)] if n else outs
    with big_module(True):
        ref, nat = _both(build, [x, row], [("a", "b"), ("b",)])
    assert _light(nat) >= 1
    for got, want in zip(nat(x, row), ref(x, row)):
        np.testing.assert_allclose(got, want, **_tol(dtype))


@pytest.mark.parametrize("big", [False, True], ids=["masked-tail", "compact-tail"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values_flow_through_vector_reductions(dtype, big):
    x = np.array([[1.0, np.nan, 3.0, -np.inf, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
                  [np.inf, 2.0, -0.0, 0.0, 1e30, -1e30, 7.0, 8.0, 9.0, np.nan]], dtype=dtype)

    def build(x):
        return [sg.max(x, axis=1), sg.min(x, axis=1), sg.sum(x * 2.0, axis=1),
                sg.prod(sg.abs(x) + 1.0, axis=0), x * 3.0]
    with big_module(big):
        ref, nat = _both(build, [x])
    assert _light(nat) >= 1
    for got, want in zip(nat(x), ref(x)):
        np.testing.assert_allclose(got, want, **_tol(dtype))


@pytest.mark.parametrize("big", [False, True], ids=["masked-tail", "compact-tail"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 5, 8, 13, 37])
def test_kernels_computing_in_place_and_accumulating_over_rows(dtype, n, big, monkeypatch):
    """A kernel that overwrites its input (a matmul's result, dead after it) and one
    that accumulates over the outer axis: in a compact tail both copy the output's
    elements in before the body runs on them."""
    from symgraph.compiler import kernels, lowerings
    in_place = []

    def spy(*args, **kw):
        in_place.append(bool(kw.get("in_place")))
        return kernels.emit_group(*args, **kw)
    monkeypatch.setattr(lowerings, "emit_group", spy)
    rng = np.random.default_rng(n)
    x = rng.standard_normal((6, 4)).astype(dtype)
    w = rng.standard_normal((4, n)).astype(dtype)
    w2 = rng.standard_normal((n, 3)).astype(dtype)

    def build(x, w, w2):
        t = x @ w
        return [(sg.maximum(t, 0.0) * 3.0 - t) @ w2]
    with big_module(big):
        ref, nat = _both(build, [x, w, w2])
        assert any(in_place) and _light(nat) >= 1
        ref2, nat2 = _both(lambda x, w: [sg.sum(sg.tanh(x @ w) * 2.0, axis=0)], [x, w])
    for got, want in zip(nat(x, w, w2) + nat2(x, w), ref(x, w, w2) + ref2(x, w)):
        np.testing.assert_allclose(got, want, **_tol(dtype))


def test_integer_and_mixed_kernels_stay_scalar_loops():
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    b = np.linspace(0, 1, 12).reshape(3, 4)
    ref, nat = _both(lambda a: a * 3 + 1, [a])
    np.testing.assert_array_equal(nat(a), ref(a))
    assert _light(nat) == 0
    ref, nat = _both(lambda a, b: sg.cast(a, "float64") * b, [a, b])
    np.testing.assert_allclose(nat(a, b), ref(a, b))
    assert _light(nat) == 0


@settings(max_examples=30, deadline=None, derandomize=True)
@given(rows=st.integers(0, 5), cols=st.integers(0, 40), dtype=st.sampled_from(["float32", "float64"]),
       axis=st.sampled_from([None, 0, 1]), kind=st.sampled_from(["sum", "max", "min"]),
       bcast=st.sampled_from(["none", "row", "col", "scalar"]), big=st.booleans())
def test_vector_kernels_agree_with_the_reference(rows, cols, dtype, axis, kind, bcast, big):
    rng = np.random.default_rng(rows * 100 + cols)
    x = rng.standard_normal((rows, cols)).astype(dtype)
    shape = {"none": (rows, cols), "row": (cols,), "col": (rows, 1), "scalar": ()}[bcast]
    y = rng.standard_normal(shape).astype(dtype)
    if kind in ("max", "min") and (x.size == 0 or (axis is not None and x.shape[axis] == 0)):
        return      # an empty max is an error in both modes (tested elsewhere)

    def build(x, y):
        h = sg.tanh(x) * y + sg.exp(-sg.abs(x - y))
        return [h, getattr(sg, kind)(h, axis=axis)]
    with big_module(big):
        ref, nat = _both(build, [x, y])
    assert _light(nat) >= (1 if big and (rows, cols) != (1, 1) else 0)   # (1, 1): no loop
    for got, want in zip(nat(x, y), ref(x, y)):
        np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == "float32" else 1e-12,
                                   atol=1e-5 if dtype == "float32" else 1e-12)


def test_the_light_kernels_are_compiled_apart_and_linked_in():
    with sg.Graph():
        x = sg.placeholder(shape=("n", 8), dtype=np.float32, name="x")
        f = sg.function([x], [x * 2.0 + 1.0, sg.sum(sg.relu(x), axis=1)])
    text = f._full_artifact("ir").ir
    main, light = partition.separate(text, LIGHT_ATTRIBUTE)
    assert light is not None and LIGHT_ATTRIBUTE not in main
    assert 'define hidden void @"k.' in light and 'declare hidden void @"k.' in main
    xv = np.arange(24, dtype=np.float32).reshape(3, 8)
    a, s = f(xv)
    np.testing.assert_array_equal(a, xv * 2 + 1)
    np.testing.assert_array_equal(s, np.maximum(xv, 0).sum(axis=1))


def test_a_big_module_emits_its_light_kernels_as_a_second_object(monkeypatch):
    """In a big module the light kernels go through LLVM's fast code generator as an
    object of their own (llvm_job.compile_objects), and so does the glue of every
    module; the code
    computes the same, and ``f.asm`` shows the objects' code."""
    from symgraph.compiler import cache
    from symgraph.runtime.objects import unpack
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", "off")
    xv = np.random.default_rng(5).standard_normal((5, 19)).astype(np.float32)
    results = {}
    for big in (False, True):
        cache.clear_memory()     # the same graph: compiled again, not found
        with big_module(big), sg.Graph():
            x = sg.placeholder(shape=("n", 19), dtype=np.float32, name="x")
            h = sg.tanh(x) * 0.5 + sg.exp(-sg.abs(x))
            f = sg.function([x], [h, sg.sum(h * h, axis=1)])
            objects = unpack(f._full_artifact("asm").object_code)
            asm = f.asm
        lines = f._full_artifact("ir").ir.splitlines()
        # the glue (entry points, dispatchers) apart always; big: the light kernels too
        assert len(objects) == (3 if big else 2)
        kernels = [line.split('"')[1] for line in lines
                   if line.startswith("define") and LIGHT_ATTRIBUTE in line]
        assert kernels and all(f"{k}:" in asm for k in kernels)
        results[big] = f(xv)
    ref = np.tanh(xv) * 0.5 + np.exp(-np.abs(xv))
    for got in results.values():
        np.testing.assert_allclose(got[0], ref, rtol=2e-6, atol=2e-6)
        np.testing.assert_allclose(got[1], (ref * ref).sum(axis=1), rtol=1e-5)


def test_a_truncated_worker_answer_is_refused():
    from symgraph.compiler.llvm_job import frame, unframe
    data = frame([b"abc", b"", b"defgh"])
    assert unframe(data) == [b"abc", b"", b"defgh"]
    for cut in (1, 9, len(data) - 1):
        with pytest.raises(ValueError, match="truncated"):
            unframe(data[:cut])


GUARD_PAGE_SCRIPT = """
import ctypes, mmap, sys
import numpy as np
import symgraph as sg

# an input whose last element ends a page, followed by a page that must not be touched
libc = ctypes.CDLL(None)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
page = mmap.PAGESIZE
buf = mmap.mmap(-1, 2 * page, prot=mmap.PROT_READ | mmap.PROT_WRITE)
base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
assert libc.mprotect(base + page, page, 0) == 0          # PROT_NONE
with sg.Graph():
    x = sg.placeholder(shape=("n",), dtype="float32", name="x")
    f = sg.function([x], [sg.abs(x) * 2.0 - x, sg.sum(x * x), sg.max(x - 1.0)])
assert '"sg-light"' in f._full_artifact("ir").ir
for n in (1, 3, 7, 9, 13, 31):
    arr = np.frombuffer(buf, dtype=np.float32, count=n, offset=page - 4 * n)
    arr[:] = np.arange(n, dtype=np.float32)
    a, s, m = f(arr)
    assert np.array_equal(a, np.abs(arr) * 2 - arr) and np.isclose(s, (arr * arr).sum())
    assert m == (arr - 1.0).max()
print("ok")
"""


@pytest.mark.parametrize("big", [False, True], ids=["masked-tail", "compact-tail"])
def test_tails_never_read_past_an_operand(big):
    """Run in a child: a read past the end would be a segfault there, not here."""
    env = dict(os.environ, SYMGRAPH_CACHE_DIR="off")
    script = textwrap.dedent(GUARD_PAGE_SCRIPT)
    if big:
        script = "from symgraph.compiler import target\ntarget.BIG_MODULE_FUNCTIONS = -1\n" + script
    r = subprocess.run([sys.executable, "-c", script], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_rows_in_vector_form_match_the_reference(dtype, log):
    """Rows of every length around the register width, with infinities and NaN: the
    vector form agrees with the reference executor (NaN where it has NaN)."""
    rng = np.random.default_rng(3)
    for n in (1, 3, 4, 8, 9, 17, 1000):
        x = (rng.standard_normal((5, n)) * 10).astype(dtype)
        x[1, 0] = -np.inf
        x[2, -1] = np.inf
        x[3, n // 2] = np.nan
        x[4, :] = -np.inf
        fn = sg.nn.log_softmax if log else sg.nn.softmax
        ref, nat = _both(lambda t: fn(t, axis=-1), [x], [("r", n)])
        assert _light(nat) >= 1
        with np.errstate(all="ignore"):
            np.testing.assert_allclose(nat(x), ref(x), **_tol(dtype))


def test_a_module_interleaves_math_within_its_budget(monkeypatch):
    """Kernels of vector math are loops for the vectorizer to interleave until the
    module's budget (lowerings.MAX_INTERLEAVED_MATH) is spent, then in vector form;
    both compute what the reference does."""
    from symgraph.compiler import cache, lowerings
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", "off")
    monkeypatch.setattr(lowerings, "MAX_INTERLEAVED_MATH", 10)
    cache.clear_memory()
    rng = np.random.default_rng(7)
    with sg.Graph():
        x = sg.placeholder(shape=("n", 16), dtype=np.float32, name="x")
        w = sg.constant((rng.standard_normal((16, 16)) / 16).astype(np.float32))
        h = x
        for k in range(4):           # four kernels of 5 math ops, matmuls between
            h = (sg.tanh(h) + sg.exp(-h * h) * sg.sigmoid(h) + sg.sin(h) * sg.cos(h)
                 + (k + 1.0)) @ w
        f = sg.function([x], h)
        ref = sg.function([x], h, mode="reference")
    assert _light(f) == 2            # 5 + 5 within the budget of 10, then vector form
    xv = rng.standard_normal((13, 16)).astype(np.float32)
    np.testing.assert_allclose(f(xv), ref(xv), rtol=2e-5, atol=2e-6)
