"""The compile cache keyed by the program as built: a hit skips the rewrites and LLVM,
binds shared variables and constants by position, and computes the optimized program
only when something asks for it."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import symgraph as sg
from symgraph.compiler import cache, pipeline
from symgraph.errors import InputError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty disk cache and an empty memory cache."""
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    cache.clear_memory()
    yield tmp_path
    cache.clear_memory()


def _run(code: str, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, cwd=REPO, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def _step(dtype, w):
    """One SGD step of a tiny linear model over shared ``w`` (built on one line each
    time, so every call builds the same program)."""
    x = sg.placeholder(shape=("n", 3), dtype=dtype, name="x")
    loss = sg.sum(sg.tanh(x @ w) ** 2) + sg.sum(sg.exp(np.arange(2, dtype=dtype)) * w)
    return sg.function([x], loss, updates=[(w, w - 0.1 * sg.grad(loss, [w])[0])])


def _numpy_step(x, w):
    c = np.exp(np.arange(2, dtype=w.dtype))
    t = np.tanh(x @ w)
    loss = np.sum(t ** 2) + np.sum(c * w)
    g = x.T @ (2 * t * (1 - t ** 2)) + c
    return loss, w - 0.1 * g


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_hit_skips_the_rewrites_and_computes_what_a_miss_computes(fresh_cache, dtype):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 2)).astype(dtype)
    x = rng.standard_normal((5, 3)).astype(dtype)
    wa, wb = sg.shared(w0.copy(), name="w"), sg.shared(w0.copy(), name="w")
    cold = _step(dtype, wa)
    runs = pipeline.stats["runs"]
    warm = _step(dtype, wb)       # same shape, same name, other storage
    assert (cold.artifact.cache, warm.artifact.cache) == ("miss", "memory")
    assert pipeline.stats["runs"] == runs and warm._optimized is None
    want_loss, want_w = _numpy_step(x, w0)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12)
    for f, w in ((cold, wa), (warm, wb)):
        np.testing.assert_allclose(f(x), want_loss, **tol)
        np.testing.assert_allclose(w.get_value(), want_w, **tol)
    # each function updated its own variable, once
    np.testing.assert_allclose(wa.get_value(), wb.get_value(), **tol)


def test_shared_variables_and_constants_bind_by_position(fresh_cache):
    """Same graph over other shared variables or other constants: never confused."""
    x = sg.placeholder(shape=(4,), name="x")
    u, v = (sg.shared(np.full(4, k, np.float32), name="v") for k in (2.0, 3.0))
    make = lambda s: sg.function([x], x * s + 1.0)  # noqa: E731  (one source line)
    fu, fv = make(u), make(v)
    assert fv.artifact.cache == "memory"
    ones = np.ones(4, np.float32)
    np.testing.assert_array_equal(fu(ones), 3.0)
    np.testing.assert_array_equal(fv(ones), 4.0)
    # constants of the same shape but other values: other keys
    const = lambda c: sg.function([x], x + c)  # noqa: E731
    c1, c2 = const(np.arange(4, dtype=np.float32)), const(np.arange(4, dtype=np.float32)[::-1])
    assert c2.artifact.cache == "miss"
    np.testing.assert_array_equal(c1(ones), [1, 2, 3, 4])
    np.testing.assert_array_equal(c2(ones), [4, 3, 2, 1])


def test_an_entry_that_does_not_fit_the_program_is_rebuilt(fresh_cache):
    x = sg.placeholder(shape=(4,), name="x")
    w = sg.shared(np.ones(4, np.float32), name="w")
    make = lambda: sg.function([x], x * w)  # noqa: E731
    f = make()
    key = f.artifact.manifest["key"]
    obj, manifest, data, lib = cache._memory[key]
    bad = dict(manifest, shared_src=[0])  # position 0 is not the shared variable
    cache._memory[key] = (obj, bad, data, lib)
    rejected = cache.stats["rejected"]
    g = make()
    assert g.artifact.cache == "miss" and cache.stats["rejected"] == rejected + 1
    np.testing.assert_array_equal(g(np.full(4, 2, np.float32)), 2.0)


def test_inspection_after_a_hit_is_lazy_and_complete(fresh_cache):
    x = sg.placeholder(shape=("n",), name="x")
    y = sg.exp(x) * 1.0 + sg.log1p(x * x)
    cold, warm = sg.function([x], y), sg.function([x], y)
    assert warm.artifact.cache == "memory" and warm._optimized is None
    assert not warm.artifact.ir          # nothing rebuilt yet
    assert len(warm.graph) == len(cold.graph)      # computed on first use
    assert warm._optimized is not None
    assert warm.describe() == cold.describe()
    assert warm.rewrite_report.fired == cold.rewrite_report.fired
    assert "define" in warm.llvm_ir
    assert warm.memory_plan.scratch_bytes == cold.memory_plan.scratch_bytes
    a = np.linspace(0, 1, 7, dtype=np.float32)
    np.testing.assert_allclose(warm(a), np.exp(a) + np.log1p(a * a), rtol=1e-6)


def test_debug_mode_and_nan_guard_after_a_hit(fresh_cache):
    x = sg.placeholder(shape=(3,), name="x")
    y = sg.log(x) * 2.0
    make = lambda **kw: sg.function([x], y, **kw)  # noqa: E731
    make(mode="debug")
    dbg, guard = make(mode="debug"), make(nan_guard=True)
    assert dbg.artifact.cache == guard.artifact.cache == "memory"
    assert dbg._optimized is None and guard._optimized is None
    np.testing.assert_allclose(dbg(np.ones(3, np.float32)), 0.0)
    assert dbg._optimized is not None                # the checker needed it
    with pytest.raises(FloatingPointError, match="log"):
        guard(np.array([1, 0, 2], np.float32))


def test_rewrite_options_are_part_of_the_key(fresh_cache):
    x = sg.placeholder(shape=(4,), name="x")
    y = sg.tanh(x) * 1.0 + 0.0
    misses = cache.stats["misses"]
    fs = [sg.function([x], y, rewrites=r) for r in
          (None, {"exclude": ["fuse_elementwise"]}, False, {"finite_math": True}, None)]
    assert [f.artifact.cache for f in fs] == ["miss", "miss", "miss", "miss", "memory"]
    assert cache.stats["misses"] == misses + 4
    a = np.linspace(-2, 2, 4, dtype=np.float32)
    for f in fs:
        np.testing.assert_allclose(f(a), np.tanh(a), rtol=1e-6)
    assert fs[2].rewrite_report is None and fs[2].optimized is fs[2].program


def _mismatch(line_offset):
    """x + y with two symbolic lengths, built on a line that depends on the caller."""
    code = "\n" * line_offset + textwrap.dedent("""
        x = sg.placeholder(shape=("n",), name="x")
        y = sg.placeholder(shape=("m",), name="y")
        f = sg.function([x, y], x + y)
    """)
    env = {"sg": sg}
    exec(compile(code, "user_model.py", "exec"), env)
    return env["f"], line_offset + 4


def test_a_changed_source_line_is_another_key_and_errors_name_it(fresh_cache):
    f1, line1 = _mismatch(0)
    f2, line2 = _mismatch(10)
    assert f2.artifact.cache == "miss"
    assert f1.artifact.manifest["key"] != f2.artifact.manifest["key"]
    for f, line in ((f1, line1), (f2, line2)):
        with pytest.raises(InputError, match=f"user_model.py:{line}"):
            f(np.ones(3, np.float32), np.ones(4, np.float32))


def test_bad_rewrite_options_fail_on_a_hit_too(fresh_cache):
    x = sg.placeholder(shape=(4,), name="x")
    make = lambda **kw: sg.function([x], x + 1.0, **kw)  # noqa: E731
    make()
    with pytest.raises(ValueError, match="no rule named"):
        make(rewrites={"exclude": ["no_such_rule"]})


WARM = """
    import sys, numpy as np, symgraph as sg
    from symgraph.compiler import pipeline
    from symgraph.compiler.link import linker
    w = sg.shared(np.arange(6, dtype=np.float32).reshape(3, 2), name="w")
    x = sg.placeholder(shape=("n", 3), name="x")
    loss = sg.sum(sg.relu(x @ w) * np.exp(np.arange(2, dtype=np.float32)))
    f = sg.function([x], loss, updates=[(w, w - 0.5 * sg.grad(loss, [w])[0])])
    out = f(np.ones((4, 3), np.float32))
    jit = "llvmlite.binding" in sys.modules
    print(f.artifact.cache, pipeline.stats["runs"], linker() is not None and not jit,
          repr(float(out)), repr(float(w.get_value().sum())))
"""


def test_a_second_process_hits_the_disk_cache_without_rewrites_or_llvm(tmp_path):
    env = {"SYMGRAPH_CACHE_DIR": str(tmp_path)}
    first = _run(WARM, env)
    second = _run(WARM, env)
    assert first[:2] == ["miss", "1"]
    assert second[:2] == ["disk", "0"]
    assert first[3:] == second[3:]                  # same results, same updates
    from symgraph.compiler.link import linker
    if linker() is not None:                        # loaded as a library: no LLVM at all
        assert second[2] == "True"


def test_processes_writing_one_entry_at_once_are_safe(tmp_path):
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(WARM)], cwd=REPO,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    results = {tuple(o.split()[3:]) for o, _ in outs}
    assert len(results) == 1
    assert _run(WARM, {"SYMGRAPH_CACHE_DIR": str(tmp_path)})[:2] == ["disk", "0"]
    assert not list(tmp_path.glob("*.tmp"))         # no half-written leftovers


def test_code_that_cannot_be_loaded_as_a_library_is_loaded_by_the_jit(fresh_cache):
    from symgraph.runtime.jit import load_library
    from symgraph.runtime.load import native_function
    assert load_library(b"not a shared library", "entry") is None
    x = sg.placeholder(shape=(4,), name="x")
    f = sg.function([x], x * 2.0)
    art = f.artifact
    fn = native_function(art.object_code, art.manifest, art.shared, art.constants,
                         b"\x7fELF garbage")
    np.testing.assert_array_equal(fn([np.ones(4, np.float32)])[0], 2.0)


def test_without_a_linker_a_second_process_loads_the_object(tmp_path):
    env = {"SYMGRAPH_CACHE_DIR": str(tmp_path), "SYMGRAPH_LINKER": "off"}
    first, second = _run(WARM, env), _run(WARM, env)
    assert second[:3] == ["disk", "0", "False"]    # LLVM loaded the object
    assert first[3:] == second[3:]


def _libraries_mapped() -> int:
    tag = f"symgraph-{os.getpid()}-"
    with open("/proc/self/maps") as f:
        return len({word for line in f for word in line.split() if tag in word})


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc")
def test_libraries_of_dropped_functions_are_unloaded(fresh_cache):
    import gc
    from symgraph.compiler.link import linker
    if linker() is None:
        pytest.skip("no linker: code is loaded by the JIT")
    x = sg.placeholder(shape=(4,), name="x")
    make = lambda: sg.function([x], sg.exp(x) + 1.0)  # noqa: E731
    assert make().artifact.cache == "miss"  # loads the object; links in the background
    cache.flush()
    gc.collect()                  # functions of earlier tests go first
    before = _libraries_mapped()
    fs = [make() for _ in range(20)]
    assert fs[0].artifact.library and _libraries_mapped() == before + 20
    np.testing.assert_allclose(fs[-1](np.zeros(4, np.float32)), 2.0)
    del fs
    gc.collect()
    assert _libraries_mapped() == before


QUICK_EXIT = """
    import sys, symgraph as sg
    x = sg.placeholder(shape=(4,), name="x")
    f = sg.function([x], sg.exp(x) * 2.0 + x)
    print(f.artifact.cache, "llvmlite.binding" in sys.modules)
"""


def test_a_process_that_exits_right_after_compiling_leaves_a_complete_entry(tmp_path):
    """The library is linked in the background; exiting waits for it."""
    from symgraph.compiler.link import linker
    if linker() is None:
        pytest.skip("no linker")
    for k in range(3):
        env = {"SYMGRAPH_CACHE_DIR": str(tmp_path / str(k))}
        assert _run(QUICK_EXIT, env) == ["miss", "True"]
        assert _run(QUICK_EXIT, env) == ["disk", "False"]


FORK = """
    import os, sys, numpy as np, symgraph as sg
    x = sg.placeholder(shape=(4,), name="x")
    f = sg.function([x], sg.exp(x) * 3.0 + x)
    pid = os.fork()
    if pid == 0:  # exits through atexit with the parent's link pending
        print(float(f(np.zeros(4, np.float32))[0]))
        sys.exit(0)
    os.waitpid(pid, 0)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_neither_waits_for_nor_spoils_the_parents_link(tmp_path):
    from symgraph.compiler.link import linker
    if linker() is None:
        pytest.skip("no linker")
    assert _run(FORK, {"SYMGRAPH_CACHE_DIR": str(tmp_path)}) == ["3.0"]
    (entry,) = tmp_path.glob("*.sgxc")
    obj, manifest, data, library = cache._decode(entry.read_bytes())
    assert library  # the parent's background link completed


def test_a_background_link_writes_into_its_own_entrys_directory(tmp_path, monkeypatch):
    """The cache directory changed (a test's temporary one, a user's variable) while an
    entry was being linked: the library goes into the entry's directory, and the new
    directory gets no entry it never compiled (it once did: the next compile of that
    graph there was a hit, and compiled nothing)."""
    from symgraph.compiler.link import linker
    if linker() is None:
        pytest.skip("no linker: nothing is linked in the background")
    first, second = tmp_path / "first", tmp_path / "second"
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(first))
    cache.clear_memory()
    from symgraph.compiler import link
    real = link.link_shared

    def slow_link(*a, **k):        # still linking when the directory changes
        import time
        time.sleep(0.3)
        return real(*a, **k)
    monkeypatch.setattr(link, "link_shared", slow_link)
    x = sg.placeholder(shape=(4,), name="x")
    assert sg.function([x], sg.exp(x) * 3.0).artifact.cache == "miss"
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(second))
    cache.flush()
    assert not second.exists() or not list(second.glob("*.sgxc"))
    (entry,) = first.glob("*.sgxc")
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(first))
    obj, manifest, data, library = cache._read_disk(entry.stem)
    assert library            # the link landed in the entry it belongs to
    cache.clear_memory()
