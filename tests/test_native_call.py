"""The native call entry (compiler/pyentry.py, runtime/builtin.py): the happy path runs
without Python and agrees with the reference executor; every other call behaves exactly
as the Python path (conversions, the same error messages), in a child process where a
crash would be possible; references, memory and threads stay sound."""
import gc
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import symgraph as sg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code: str):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, cwd=REPO, timeout=600)


def _fast(f):
    """``f`` after one call has installed its builtin; fails when none is used."""
    assert _uses_builtin(f), "the native builtin is not in use"
    return f


def _uses_builtin(f) -> bool:
    return "_dispatch" in vars(f)


def _pair(build, dtype):
    """The same graph built twice (own shared variables): native and reference."""
    out = []
    for mode in ("native", "reference"):
        with sg.Graph():
            inputs, outputs, updates, shared = build(dtype)
            out.append((sg.function(inputs, outputs, updates, mode=mode), shared))
    return out


def _mlp_like(dtype):
    x = sg.placeholder(shape=("n", 3), dtype=dtype, name="x")
    y = sg.placeholder(shape=("n",), dtype=dtype, name="y")
    w = sg.shared(np.linspace(-1, 1, 6).reshape(3, 2).astype(dtype), name="w")
    b = sg.shared(np.array([0.5, -0.25], dtype), name="b")
    h = sg.tanh(x @ w + b)
    loss = sg.sum((sg.sum(h, axis=1) - y) ** 2)
    gw, gb = sg.grad(loss, [w, b])
    # Theano semantics: both updates read the old w and b
    updates = [(w, w - 0.1 * gw + 0.01 * sg.sum(b)), (b, b - 0.1 * gb + 0.01 * sg.sum(w))]
    return [x, y], [loss, h, x * 2.0], updates, [w, b]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fast_path_matches_reference_with_updates_and_several_outputs(dtype):
    (nat, nat_shared), (ref, ref_shared) = _pair(_mlp_like, dtype)
    rng = np.random.default_rng(1)
    for n in (0, 1, 5, 33, 5):
        x = rng.standard_normal((n, 3)).astype(dtype)
        y = rng.standard_normal(n).astype(dtype)
        got, want = nat(x, y), ref(x, y)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=2e-5 if dtype == "float32" else 1e-12,
                                       atol=1e-6)
        for s, r in zip(nat_shared, ref_shared):
            np.testing.assert_allclose(s.get_value(), r.get_value(), rtol=2e-5, atol=1e-6)
    assert _fast(nat)._native.fallback_calls == 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(4,), (1,), (0,), (2, 3), ()])
def test_static_dims_single_output(dtype, shape):
    x = sg.placeholder(shape=shape, dtype=dtype, name="x")
    y = sg.placeholder(shape=shape, dtype=dtype, name="y")
    f = sg.function([x, y], x * y + 1.0)
    a = np.arange(np.prod(shape), dtype=dtype).reshape(shape)
    out = f(a, a)
    assert type(out) is np.ndarray and out.dtype == dtype and out.shape == shape
    np.testing.assert_array_equal(out, a * a + 1)
    assert _fast(f)._native.fallback_calls == 0


def test_symbolic_dims_with_a_requirement_and_no_outputs():
    x = sg.placeholder(shape=(None,), name="x")
    y = sg.placeholder(shape=(None,), name="y")
    acc = sg.shared(np.zeros((), np.float32), name="acc")
    f = sg.function([x, y], [], updates=[(acc, acc + sg.sum(x * y))])
    for n in (0, 1, 10):
        assert f(np.ones(n, np.float32), np.ones(n, np.float32)) == []
    assert acc.get_value() == 11
    assert _fast(f)._native.fallback_calls == 0


def test_outputs_are_fresh_arrays_not_views_of_scratch():
    x = sg.placeholder(shape=(None,), name="x")
    f = sg.function([x], [sg.exp(x) * 2.0, x + 1.0])
    a = np.arange(5, dtype=np.float32)
    first = f(a)
    second = f(a)
    for o, p in zip(first, second):
        assert o.base is None and o.flags.owndata and o.flags.writeable
        assert not np.shares_memory(o, p)
    first[0][:] = -1
    np.testing.assert_allclose(f(a)[0], np.exp(a) * 2, rtol=1e-6)


def test_shared_value_replaced_from_python_is_read_each_call():
    w = sg.shared(np.ones(3, np.float32), name="w")
    x = sg.placeholder(shape=(3,), name="x")
    f = sg.function([x], x * w, updates=[(w, w + 1.0)])
    a = np.ones(3, np.float32)
    np.testing.assert_array_equal(f(a), [1, 1, 1])
    w.set_value(np.full(3, 5, np.float32), borrow=True)
    np.testing.assert_array_equal(f(a), [5, 5, 5])
    np.testing.assert_array_equal(w.get_value(), [6, 6, 6])
    assert _fast(f)._native.fallback_calls == 0


@pytest.mark.parametrize("view", ["whole", "part"])
def test_input_aliasing_an_updated_shared_variable_goes_to_python(view):
    w = sg.shared(np.array([1.0, 2.0, 3.0, 4.0], np.float32), name="w")
    x = sg.placeholder(shape=(None,), name="x")
    f = sg.function([x], sg.sum(x) * 1.0, updates=[(w, w * 2.0)])
    f(np.zeros(1, np.float32))
    alias = w.get_value(borrow=True)
    arg = alias if view == "whole" else alias[2:]
    want = float(arg.sum())
    before = f._native.fallback_calls
    assert f(arg) == want
    assert f._native.fallback_calls == before + 1
    np.testing.assert_array_equal(w.get_value(), [4, 8, 12, 16])
    assert f(np.ones(2, np.float32)) == 2.0   # a disjoint input stays on the fast path
    assert f._native.fallback_calls == before + 1


# -- off the happy path: exactly what the Python path does, in a child process ------------
OFF_PATH = """
import json, numpy as np, symgraph as sg
x = sg.placeholder(shape=(None, 3), name="x")
y = sg.placeholder(shape=(None,), name="y")
i = sg.placeholder(shape=(None,), dtype="int64", name="i")
w = sg.shared(np.arange(3, dtype=np.float32), name="w")
f = sg.function([x, y, i], [sg.sum(x * w, axis=1) + y, sg.take(y, i)], updates=[(w, w + 1.0)])
good = [np.ones((4, 3), np.float32), np.arange(4, dtype=np.float32), np.array([0, 3])]

class Sub(np.ndarray):
    pass

def misaligned():
    buf = np.zeros(13 * 4 + 1, np.uint8)
    return np.frombuffer(buf.data, dtype=np.float32, count=12, offset=1).reshape(4, 3)

cases = {
    "count": good[:2],
    "too many": good + [good[0]],
    "list": [good[0].tolist(), list(range(4)), [0, 1]],
    "float64 converts": [good[0].astype(np.float64), good[1], good[2]],
    "int32 index converts": [good[0], good[1], good[2].astype(np.int32)],
    "strings": [np.array([["a"] * 3] * 4), good[1], good[2]],
    "float index": [good[0], good[1], good[2].astype(np.float32)],
    "byte-swapped": [good[0].astype(">f4"), good[1], good[2]],
    "rank": [np.ones((4, 3, 1), np.float32), good[1], good[2]],
    "static dim": [np.ones((4, 2), np.float32), good[1], good[2]],
    "symbolic dims": [good[0], np.ones(5, np.float32), good[2]],
    "negative strides": [good[0][::-1], good[1][::-1], good[2]],
    "transposed": [np.ones((3, 4), np.float32).T, good[1], good[2]],
    "subclass": [good[0].view(Sub), good[1], good[2]],
    "misaligned": [misaligned(), good[1], good[2]],
    "nan": [np.full((4, 3), np.nan, np.float32), good[1], good[2]],
    "index too big": [good[0], good[1], np.array([4])],
    "index too small": [good[0], good[1], np.array([-5])],
    "empty": [np.ones((0, 3), np.float32), np.ones(0, np.float32), np.zeros(0, np.int64)],
}

def outcome(call, args):
    try:
        outs = call(args)
        return {"ok": [[str(o.dtype), list(o.shape), np.asarray(o).tolist()] for o in outs]}
    except Exception as e:
        return {"error": type(e).__name__, "message": str(e)}

for name, args in cases.items():
    w.set_value(np.arange(3, dtype=np.float32))
    fast = outcome(lambda a: f(*a), args)
    w_fast = w.get_value().tolist()
    w.set_value(np.arange(3, dtype=np.float32))
    slow = outcome(lambda a: f._native._call(tuple(a)), args)
    w_slow = w.get_value().tolist()
    print(json.dumps({"case": name, "fast": fast, "slow": slow, "w": [w_fast, w_slow],
                      "fallbacks": f._native.fallback_calls}), flush=True)
print(json.dumps({"case": "done", "fast_in_use": "_dispatch" in vars(f)}))
"""


def test_every_off_path_case_behaves_as_the_python_path():
    r = _run(OFF_PATH)
    assert r.returncode == 0, r.stderr
    rows = {row["case"]: row for row in map(json.loads, r.stdout.splitlines())}
    assert rows["done"]["fast_in_use"]
    for name, row in rows.items():
        if name == "done":
            continue
        assert row["fast"] == row["slow"], name
        assert row["w"][0] == row["w"][1], name
    errors = {n: row["fast"].get("error") for n, row in rows.items() if n != "done"}
    assert errors["count"] == errors["too many"] == "InputError"
    assert errors["strings"] == errors["float index"] == "InputError"
    assert errors["rank"] == errors["static dim"] == errors["symbolic dims"] == "InputError"
    assert errors["index too big"] == errors["index too small"] == "IndexError"
    assert "index 4 is out of bounds" in rows["index too big"]["fast"]["message"]
    for ok in ("list", "float64 converts", "int32 index converts", "byte-swapped",
               "negative strides", "transposed", "subclass", "misaligned", "nan", "empty"):
        assert errors[ok] is None, (ok, rows[ok])
    # the happy-path cases ("nan", "empty") did not reach Python; the others did
    assert rows["empty"]["fallbacks"] == rows["nan"]["fallbacks"]
    assert rows["misaligned"]["fallbacks"] == rows["subclass"]["fallbacks"] + 1


# -- references, memory, threads ------------------------------------------------------------
def test_reference_counts_are_unchanged_by_calls():
    x = sg.placeholder(shape=(None,), name="x")
    i = sg.placeholder(shape=(None,), dtype="int64", name="i")
    w = sg.shared(np.ones(4, np.float32), name="w")
    f = sg.function([x, i], [x * 2.0, sg.take(w, i)], updates=[(w, w * 1.0)])
    a, idx, bad = np.ones(4, np.float32), np.array([0, 1]), np.array([9])
    lst = [1.0, 2.0]
    value = w.get_value(borrow=True)
    watched = [a, idx, bad, lst, value, w.storage, np.dtype(np.float32), np.dtype(np.int64)]

    def calls(count):
        for _ in range(count):
            f(a, idx)                       # fast path
            f(lst, idx)                     # fallback
            with pytest.raises(IndexError):
                f(a, bad)                   # kernel error
            with pytest.raises(Exception):
                f(a)                        # wrong count
        gc.collect()
        return [sys.getrefcount(o) for o in watched]
    before = calls(20)
    after = calls(2000)
    assert after[:6] == before[:6]
    # other live arrays hold the dtypes too; a leak or an extra release per call shows as
    # thousands
    assert all(abs(x - y) < 100 for x, y in zip(after[6:], before[6:])), (before, after)
    assert w.get_value(borrow=True) is value


def test_memory_is_stable_over_many_fast_calls():
    r = _run("""
        import resource, numpy as np, symgraph as sg
        x = sg.placeholder(shape=(None,), name="x")
        y = sg.placeholder(shape=(None,), name="y")
        w = sg.shared(np.ones(10, np.float32), name="w")
        f = sg.function([x, y], [x * y + 1.0, x - y], updates=[(w, w * 1.0)])
        a = np.ones(10, np.float32)
        def rss():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for _ in range(20000):
            f(a, a)
        start = rss()
        for _ in range(100000):
            f(a, a)
        print("_dispatch" in vars(f), f._native.fallback_calls, rss() - start)
    """)
    assert r.returncode == 0, r.stderr
    used, fallbacks, grew = r.stdout.split()
    assert used == "True" and fallbacks == "0"
    assert int(grew) < 2048, f"RSS grew by {grew} KiB over 1e5 calls"


def test_two_threads_large_inputs_scratch_and_outputs_stay_separate():
    x = sg.placeholder(shape=(None,), name="x")
    f = sg.function([x], [sg.sum(sg.tanh(x) * 2.0), sg.exp(x) * sg.sum(x)])
    data = [np.random.default_rng(k).standard_normal(300_000 + k).astype(np.float32) / 4
            for k in range(2)]
    want = [(np.sum(np.tanh(d) * 2.0), np.exp(d) * np.sum(d)) for d in data]
    errors = []

    def work(k):
        for _ in range(20):
            s, e = f(data[k])
            if e.shape != data[k].shape or abs(s - want[k][0]) > 1e-2 * max(1, abs(want[k][0])) \
                    or not np.allclose(e, want[k][1], rtol=1e-3, atol=1e-3):
                errors.append(k)
    with ThreadPoolExecutor(max_workers=2) as pool:   # both calls run at once
        list(pool.map(work, range(2)))
    assert not errors
    assert _fast(f)._native.fallback_calls == 0


# -- random arguments: the builtin and the Python path agree ---------------------------------
_HYPO = {}


def _hypo_function(dtype):
    if dtype not in _HYPO:
        with sg.Graph():
            x = sg.placeholder(shape=("n", "m"), dtype=dtype, name="x")
            y = sg.placeholder(shape=("m",), dtype=dtype, name="y")
            _HYPO[dtype] = sg.function([x, y], [x * y + 1.0, sg.sum(x, axis=0)])
    return _HYPO[dtype]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 4), m=st.integers(0, 4), fn_dtype=st.sampled_from(["float32", "float64"]),
       arg_dtype=st.sampled_from(["float32", "float64", ">f4", "int32", "int64"]),
       layout=st.sampled_from(["c", "f", "reversed", "strided"]), m_y=st.integers(0, 4))
def test_random_arguments_builtin_agrees_with_python_path(n, m, fn_dtype, arg_dtype, layout, m_y):
    f = _hypo_function(fn_dtype)
    base = np.arange(n * m * 2, dtype=np.float64).reshape(n, 2 * m)
    x = {"c": base[:, :m], "f": np.asfortranarray(base[:, :m]),
         "reversed": base[::-1, :m], "strided": base[:, ::2]}[layout].astype(arg_dtype)
    if layout == "c":
        x = np.ascontiguousarray(x)
    y = np.linspace(-1, 1, m_y).astype(arg_dtype)

    def outcome(call):
        try:
            return [(str(o.dtype), o.shape, o.tolist()) for o in call()]
        except Exception as e:
            return (type(e).__name__, str(e))
    fast = outcome(lambda: f(x, y))
    slow = outcome(lambda: f._native._call((x, y)))
    assert fast == slow
    if m_y == m and not isinstance(fast, tuple):
        want = x.astype(fn_dtype) * y.astype(fn_dtype) + 1
        assert fast[0][:2] == (fn_dtype, want.shape)
        np.testing.assert_allclose(np.array(fast[0][2], dtype=fn_dtype).reshape(want.shape),
                                   want, rtol=1e-6)
    else:
        assert isinstance(fast, tuple) and fast[0] == "InputError"


def test_builtin_is_used_when_loaded_from_the_disk_cache(tmp_path):
    code = """
        import numpy as np, symgraph as sg
        x = sg.placeholder(shape=(None,), name="x")
        w = sg.shared(np.ones(3, np.float32), name="w")
        f = sg.function([x], x * 2.0 + sg.sum(w), updates=[(w, w + 1.0)])
        out = f(np.arange(3, dtype=np.float32))
        print(f.artifact.cache, "_dispatch" in vars(f), f._native.fallback_calls, out.tolist(),
              w.get_value().tolist())
    """
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                           text=True, cwd=REPO, env=env, timeout=300) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
        assert "Exception ignored" not in r.stderr, r.stderr   # clean teardown
    assert runs[0].stdout.split()[0] == "miss" and runs[1].stdout.split()[0] == "disk"
    assert runs[0].stdout.split()[1:] == runs[1].stdout.split()[1:]
    assert runs[1].stdout.split()[1:3] == ["True", "0"]


def test_an_unexpected_array_layout_keeps_the_ctypes_path(monkeypatch):
    from symgraph.runtime import builtin
    builtin._layout_ok.cache_clear()
    monkeypatch.setattr(builtin, "_read", lambda addr, ctype: -1)
    try:
        x = sg.placeholder(shape=(None,), name="x")
        f = sg.function([x], x + 1.0)
        np.testing.assert_array_equal(f(np.zeros(2, np.float32)), [1, 1])
        assert not _uses_builtin(f)
    finally:
        monkeypatch.undo()
        builtin._layout_ok.cache_clear()


# -- dims evaluated natively never wrap or trap --------------------------------------------
def _checked_dim_fn(dim, symbols):
    """A native ``i64 f(i64 *dims, i64 *bad)`` evaluating ``dim`` with CheckedDims."""
    import ctypes
    from llvmlite import ir
    from symgraph.compiler import target
    from symgraph.compiler.irutil import I64
    from symgraph.compiler.pyentry import CheckedDims
    from symgraph.runtime.jit import load_object
    module = ir.Module(name="dimtest")
    fn = ir.Function(module, ir.FunctionType(I64, [I64.as_pointer()] * 2), name="f")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    dims = CheckedDims(b, fn.args[0], {s: k for k, s in enumerate(symbols)})
    value = dims(dim)
    b.store(b.zext(dims.bad, I64), fn.args[1])
    b.ret(value)
    obj = target.emit_object(target.parse_and_optimize(str(module)))
    code = load_object(obj, "f")
    call = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p)(code.entry_addr)

    def run(*values):
        arr, bad = (ctypes.c_int64 * len(symbols))(*values), ctypes.c_int64(0)
        out = call(ctypes.addressof(arr), ctypes.addressof(bad))
        return None if bad.value else out
    run.code = code
    return run


def test_checked_dims_flag_overflow_and_division_by_zero_and_agree_otherwise():
    from symgraph import dims as D
    n, k = D.SymDim.symbol("n"), D.SymDim.symbol("k")
    cases = [n * n * n + 3 * k, D.floordiv(n, k), D.mod(n - 7, k), D.dmin(n, k) * 2,
             D.floordiv(n * 4 + 1, k + 1)]
    big = 2 ** 40
    for dim in cases:
        f = _checked_dim_fn(dim, ["k", "n"])
        for kv, nv in [(3, 10), (1, 0), (5, 2), (2, 9), (7, -20), (0, 5), (2, big), (-1, 3)]:
            try:
                want = D.evaluate(dim, {"n": nv, "k": kv})
            except ZeroDivisionError:
                want = None
            if want is not None and not -2 ** 63 <= want < 2 ** 63:
                want = None
            got = f(kv, nv)
            if got is None:   # flagged: only when Python's value does not fit or divides by 0
                assert want is None or any(abs(x) >= 2 ** 62 for x in (kv, nv, want)), \
                    (dim, kv, nv)
            else:
                assert got == want, (dim, kv, nv, got, want)


def test_overlap_check_with_many_inputs():
    """More inputs than the overlap check unrolls: the loop form finds the alias too."""
    w = sg.shared(np.arange(6, dtype=np.float32), name="w")
    xs = [sg.placeholder(shape=(None,), name=f"x{k}") for k in range(7)]
    total = xs[0]
    for x in xs[1:]:
        total = total + x
    f = sg.function(xs, sg.sum(total), updates=[(w, w + 1.0)])
    args = [np.ones(3, np.float32) * k for k in range(7)]
    assert f(*args) == 3 * sum(range(7))
    assert _fast(f)._native.fallback_calls == 0
    for k in (0, 6):
        alias = list(args)
        alias[k] = w.get_value(borrow=True)[1:4]
        want = float(sum(a.sum() for a in alias))
        assert f(*alias) == want
    assert f._native.fallback_calls == 2


def test_a_busy_scratch_block_makes_the_call_use_its_own():
    """While another call holds the cached scratch block, a call allocates its own."""
    x = sg.placeholder(shape=(None, 8), name="x")
    f = sg.function([x], sg.sum(sg.exp(x) @ np.ones((8, 4), np.float32), axis=0))
    a = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    want = np.full(4, np.exp(a.astype(np.float64)).sum())
    np.testing.assert_allclose(f(a), want, rtol=1e-5)
    holder = f._native._builtins[True]
    busy = holder.context_slot("scratch_busy")
    holder.context[busy] = 1
    try:
        for _ in range(3):
            np.testing.assert_allclose(f(a), want, rtol=1e-5)
        assert holder.context[busy] == 1   # left to its holder
    finally:
        holder.context[busy] = 0
    np.testing.assert_allclose(f(a), want, rtol=1e-5)
    assert _fast(f)._native.fallback_calls == 0


def test_a_dropped_function_frees_its_builtin_and_native_code():
    import weakref
    x = sg.placeholder(shape=(None,), name="x")
    f = sg.function([x], x + 1.0)
    f(np.zeros(2, np.float32))
    native, holder = weakref.ref(f._native), weakref.ref(f._native._builtins[True])
    del f
    gc.collect()
    assert native() is None and holder() is None


def _odd_graphs():
    def identity():
        x = sg.placeholder(shape=(None, 2), name="x")
        return [x], [x, x], []

    def constant_and_shared():
        x = sg.placeholder(shape=(3,), name="x")
        w = sg.shared(np.arange(3, dtype=np.float64), name="w")
        return [x], [w * 1.0, sg.as_tensor(np.ones(3)) + 0.0, sg.sum(x)], [(w, w + x)]

    def int_and_bool():
        i = sg.placeholder(shape=(None,), dtype="int64", name="i")
        return [i], [i * 2, i > 1], []
    return {"identity": identity, "constant and shared": constant_and_shared,
            "int and bool": int_and_bool}


@pytest.mark.parametrize("name", sorted(_odd_graphs()))
def test_odd_graphs_builtin_agrees_with_python_path(name):
    results = []
    for path in ("builtin", "python"):
        with sg.Graph():
            inputs, outputs, updates = _odd_graphs()[name]()
            f = sg.function(inputs, outputs, updates)
            shared = [s for s, _ in updates]
            args = {"identity": [np.arange(6.0, dtype=np.float32).reshape(3, 2)],
                    "constant and shared": [np.ones(3, np.float32)],
                    "int and bool": [np.arange(4)]}[name]
            got = []
            for _ in range(2):
                outs = f(*args) if path == "builtin" else f._native._call(tuple(args))
                got.append([(o.dtype, o.tolist()) for o in outs]
                           + [s.get_value().tolist() for s in shared])
            if path == "builtin":
                assert _fast(f)._native.fallback_calls == 0
            results.append(got)
    assert results[0] == results[1]
