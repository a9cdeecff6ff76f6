"""The native runtime: argument checks that keep native code in bounds, updates,
threads, leaks, the compile cache, debug mode and the NaN guard."""
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import symgraph as sg
from symgraph.compiler import cache
from symgraph.errors import InputError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code: str, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=300)


BAD_INPUTS = """
import numpy as np, symgraph as sg
x = sg.placeholder(shape=("n", 4), name="x")
y = sg.placeholder(shape=("n",), dtype="int64", name="y")
w = sg.shared(np.ones((4, 3), np.float32), name="w")
logits = x @ w
loss = sg.nn.cross_entropy(logits, sg.one_hot(y, 3))
f = sg.function([x, y], [loss, sg.sum(logits, axis=1)], updates=[(w, w * 0.5)], mode="native")
good = (np.ones((5, 4), np.float32), np.zeros(5, np.int64))
cases = {
    "count": (good[0],),
    "dtype": (good[0].astype(np.int32) + 0.5, good[1].astype(np.float32)),
    "rank": (np.ones((5, 4, 1), np.float32), good[1]),
    "static": (np.ones((5, 5), np.float32), good[1]),
    "symbolic": (good[0], np.zeros(6, np.int64)),
    "noncontig": (np.ones((4, 5), np.float32).T, good[1]),
    "nan": (np.full((5, 4), np.nan, np.float32), good[1]),
    "empty": (np.ones((0, 4), np.float32), np.zeros(0, np.int64)),
    "strings": (np.array([["a"] * 4] * 5), good[1]),
    "object": (np.array([[object()] * 4] * 5, dtype=object), good[1]),
}
for name, args in cases.items():
    try:
        out = f(*args)
        print(name, "ok", [np.asarray(o).shape for o in out])
    except Exception as e:
        print(name, type(e).__name__, str(e).splitlines()[0])
print("w", w.get_value()[0, 0])
print("done")
"""


def test_bad_inputs_never_crash():
    r = _run(BAD_INPUTS)
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
    assert "done" in r.stdout
    assert lines["count"].startswith("InputError") and "expected 2 arguments" in lines["count"]
    assert lines["dtype"].startswith("InputError")
    assert lines["rank"].startswith("InputError") and "rank 2" in lines["rank"]
    assert lines["static"].startswith("InputError") and "dim 1 must be 4" in lines["static"]
    assert lines["symbolic"].startswith("InputError") and "'n'" in lines["symbolic"]
    assert lines["noncontig"].startswith("ok")
    assert lines["nan"].startswith("ok")
    assert lines["empty"].startswith("ok")
    assert lines["strings"].startswith("InputError")
    assert lines["object"].startswith("InputError")


def test_updates_in_place_and_outputs_fresh():
    w = sg.shared(np.arange(3, dtype=np.float32), name="w")
    x = sg.placeholder(shape=(3,), name="x")
    f = sg.function([x], [w * 1.0, x + 0.0], updates=[(w, w + x)], mode="native")
    before = w.get_value(borrow=True)
    a, b = f(np.ones(3, np.float32))
    np.testing.assert_array_equal(a, [0, 1, 2])
    np.testing.assert_array_equal(w.get_value(), [1, 2, 3])
    assert w.get_value(borrow=True) is before  # updated in place
    a[:] = 100
    np.testing.assert_array_equal(w.get_value(), [1, 2, 3])


def test_swap_updates_use_old_values():
    a = sg.shared(np.array([1.0, 2.0], np.float32), name="a")
    b = sg.shared(np.array([3.0, 4.0], np.float32), name="b")
    f = sg.function([], [], updates=[(a, b), (b, a)], mode="native")
    f()
    np.testing.assert_array_equal(a.get_value(), [3, 4])
    np.testing.assert_array_equal(b.get_value(), [1, 2])


def test_input_aliasing_an_updated_shared_variable():
    w = sg.shared(np.array([1.0, 2.0, 3.0], np.float32), name="w")
    x = sg.placeholder(shape=(3,), name="x")
    f = sg.function([x], sg.sum(x * w), updates=[(w, w * 2.0 + x)], mode="native")
    alias = w.get_value(borrow=True)
    out = f(alias)
    assert out == pytest.approx(1 + 4 + 9)
    np.testing.assert_array_equal(w.get_value(), [3, 6, 9])


def test_symbolic_dims_several_sizes_one_compile():
    x = sg.placeholder(shape=(None, 3), name="x")
    f = sg.function([x], [sg.sum(sg.exp(x), axis=0), x * 2.0], mode="native")
    for n in (0, 1, 7, 100):
        a = np.random.default_rng(n).standard_normal((n, 3)).astype(np.float32)
        s, d = f(a)
        np.testing.assert_allclose(s, np.exp(a).sum(0), rtol=1e-5)
        np.testing.assert_array_equal(d, a * 2)


def test_two_threads_one_function():
    x = sg.placeholder(shape=(None,), name="x")
    f = sg.function([x], sg.sum(sg.tanh(x) * 2.0), mode="native")
    data = [np.random.default_rng(k).standard_normal(200_000).astype(np.float32) for k in range(2)]
    want = [float(np.sum(np.tanh(d) * 2.0)) for d in data]
    errors = []

    def work(k):
        for _ in range(30):
            got = float(f(data[k]))
            if abs(got - want[k]) > 1e-2 * max(1.0, abs(want[k])):
                errors.append((k, got, want[k]))
    ts = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors


def test_memory_is_stable_over_many_calls():
    r = _run("""
        import resource, numpy as np, symgraph as sg
        x = sg.placeholder(shape=(None, 64), name="x")
        w = sg.shared(np.ones((64, 64), np.float32) * 0.01, name="w")
        loss = sg.sum(sg.tanh(x @ w))
        f = sg.function([x], loss, updates=[(w, w - 0.001 * sg.grad(loss, w))], mode="native")
        a = np.ones((256, 64), np.float32)
        for _ in range(300): f(a)
        r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for _ in range(3000): f(a)
        r1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(r1 - r0)
    """)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[-1]) < 5_000  # KiB


def _tiny_graph():
    x = sg.placeholder(shape=(4,), name="x")
    return x, sg.exp(x) * 3.0 + 1.0


def test_cache_hits_in_process_and_across_processes(tmp_path):
    code = """
        import numpy as np, symgraph as sg
        from symgraph.compiler import cache
        x = sg.placeholder(shape=(4,), name="x")
        make = lambda: sg.function([x], sg.exp(x) * 3.0 + 1.0, mode="native")
        f, g = make(), make()  # same graph, same source lines
        print(f.artifact.cache, g.artifact.cache, float(f(np.zeros(4, np.float32))[0]))
    """
    env = {"SYMGRAPH_CACHE_DIR": str(tmp_path)}
    first, second = _run(code, env), _run(code, env)
    assert first.stdout.split() == ["miss", "memory", "4.0"], first.stderr
    assert second.stdout.split() == ["disk", "memory", "4.0"], second.stderr


def test_corrupted_or_foreign_cache_entries_are_rebuilt(tmp_path):
    code = """
        import numpy as np, symgraph as sg
        x = sg.placeholder(shape=(4,), name="x")
        f = sg.function([x], sg.exp(x) * 3.0 + 1.0, mode="native")
        print(f.artifact.cache, float(f(np.zeros(4, np.float32))[0]))
    """
    env = {"SYMGRAPH_CACHE_DIR": str(tmp_path)}
    assert _run(code, env).stdout.split() == ["miss", "4.0"]
    (entry,) = list(tmp_path.glob("*.sgxc"))
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip bits in the object code
    entry.write_bytes(bytes(data))
    assert _run(code, env).stdout.split() == ["miss", "4.0"]
    entry.write_bytes(b"not a cache entry")
    assert _run(code, env).stdout.split() == ["miss", "4.0"]
    # an entry written by another symgraph version is not loaded
    from symgraph.compiler.cache import _decode, _encode
    obj, manifest, *rest = _decode(entry.read_bytes())
    manifest["versions"] = "symgraph 0.0.0|llvmlite 0|format 1"
    entry.write_bytes(_encode(obj, manifest, *rest))
    assert _run(code, env).stdout.split() == ["miss", "4.0"]


def test_cache_can_be_turned_off(tmp_path):
    code = """
        import symgraph as sg
        x = sg.placeholder(shape=(4,), name="x")
        f = sg.function([x], x + 1.0, mode="native")
        print(f.artifact.cache)
    """
    r = _run(code, {"SYMGRAPH_CACHE_DIR": "off"})
    assert r.stdout.split() == ["miss"], r.stderr


def test_debug_mode_names_the_first_wrong_node(monkeypatch):
    from symgraph.compiler import lower_scalar
    from symgraph.ops import elementwise as E
    x = sg.placeholder(shape=(5,), name="x")
    y = sg.tanh(x) * 2.0
    z = sg.sum(y + 1.0)
    good = sg.function([x], z, mode="debug", rewrites=False)
    assert good(np.ones(5, np.float32)) == pytest.approx(5 * (2 * np.tanh(1) + 1), rel=1e-5)
    wrong = lambda b, op, args, dt: b.fadd(args[0], args[0])  # noqa: E731
    monkeypatch.setitem(lower_scalar.EMITTERS, E.Tanh, wrong)
    cache.clear_memory()
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", "off")
    bad = sg.function([x], z, mode="debug", rewrites=False)
    with pytest.raises(AssertionError, match="tanh"):
        bad(np.ones(5, np.float32))
    cache.clear_memory()


def test_nan_guard_names_the_producer_and_keeps_state():
    w = sg.shared(np.ones(3, np.float32), name="w")
    x = sg.placeholder(shape=(3,), name="x")
    masked = sg.where(x > 0, x, float("-inf"))  # a legitimate -inf mask
    loss = sg.sum(sg.exp(masked) * w) + sg.sum(sg.log(x + 1.0))
    f = sg.function([x], loss, updates=[(w, w + 1.0)], mode="native", nan_guard=True)
    f(np.array([1.0, -0.5, 3.0], np.float32))  # the mask alone is no alarm
    np.testing.assert_array_equal(w.get_value(), [2, 2, 2])
    with pytest.raises(FloatingPointError, match="log"):
        f(np.array([1.0, -1.0, 3.0], np.float32))  # log(0) = -inf
    np.testing.assert_array_equal(w.get_value(), [2, 2, 2])


def test_generated_code_is_inspectable():
    x = sg.placeholder(shape=(None,), name="x")
    f = sg.function([x], sg.exp(x) * 2.0, mode="native")
    assert "sg_entry" in f.llvm_ir
    assert "<16 x float>" in f.llvm_ir or "<8 x float>" in f.llvm_ir  # the loop vectorized
    assert "sg_entry" in f.asm
    assert f.memory_plan.scratch_bytes == 0


def test_large_constants_are_buffers_not_ir():
    big = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
    x = sg.placeholder(shape=(512,), name="x")
    f = sg.function([x], sg.sum(sg.constant(big) * x, axis=1), mode="native")
    assert len(f.artifact.object_code) < 100_000
    np.testing.assert_allclose(f(np.ones(512, np.float32)), big.sum(1), rtol=1e-4, atol=1e-4)


def test_native_errors_are_python_errors():
    x = sg.placeholder(shape=(None,), name="x")
    f = sg.function([x], sg.max(x), mode="native")
    with pytest.raises(InputError, match="empty"):
        f(np.zeros(0, np.float32))


def test_parallel_loops_match_serial_and_can_be_turned_off(tmp_path):
    code = """
        import numpy as np, symgraph as sg
        x = sg.placeholder(shape=(None, 300), name="x")
        f = sg.function([x], [sg.tanh(x) * 2.0 + x, sg.sum(sg.exp(x * 0.1), axis=1)])
        a = np.random.default_rng(0).standard_normal((1000, 300)).astype(np.float32)
        u, v = f(a)
        np.testing.assert_allclose(u, np.tanh(a) * 2 + a, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(v, np.exp(a * 0.1).sum(1), rtol=1e-5)
        print("GOMP_parallel" in f.llvm_ir)
    """
    env = {"SYMGRAPH_CACHE_DIR": str(tmp_path)}
    on = _run(code, dict(env, SYMGRAPH_PARALLEL="1"))
    off = _run(code, dict(env, SYMGRAPH_PARALLEL="0"))
    assert on.returncode == 0 and off.returncode == 0, on.stderr + off.stderr
    from symgraph.runtime.externals import libgomp_available
    assert on.stdout.split() == [str(libgomp_available())]
    assert off.stdout.split() == ["False"]
