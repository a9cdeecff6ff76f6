"""Loops split across threads (compiler/parallel.py, runtime/threads.py): the same
results for every thread count, reductions combined from per-thread partials, the
thread setting, and no hang in a child process forked after threads ran."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import symgraph as sg
from symgraph.runtime import threads
from symgraph.runtime.externals import libgomp_available

needs_libgomp = pytest.mark.skipif(not libgomp_available(), reason="libgomp not installed")
# float32 sums of 10^5 terms accumulate rounding: the tolerance allows a few 1e-5
TOL = {np.float32: dict(rtol=2e-4, atol=1e-4), np.float64: dict(rtol=1e-12, atol=1e-10)}


@pytest.fixture(autouse=True)
def restore_thread_setting():
    before = threads.num_threads()
    yield
    threads.set_num_threads(before)


def _reductions(dt):
    x = sg.placeholder(shape=(None, None), dtype=dt, name="x")
    outs = [sg.sum(x), sg.max(x), sg.min(x * 2.0), sg.sum(sg.exp(x * 0.1), axis=0),
            sg.max(sg.tanh(x), axis=0), sg.sum(x * x, axis=1), sg.tanh(x) * 3.0 + x]
    return sg.function([x], outs)


def _numpy_reductions(a):
    dt = a.dtype.type
    return [a.sum(), a.max(), (a * 2).min(), np.exp(a * dt(0.1)).sum(0), np.tanh(a).max(0),
            (a * a).sum(1), np.tanh(a) * 3 + a]


@needs_libgomp
@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(100_003, 3), (3, 60_001), (40_000, 1), (2, 1), (1, 70_000),
                                   (65_537, 2)])
def test_every_thread_count_gives_the_serial_result(dt, shape):
    f = _reductions(dt)
    assert "GOMP_parallel" in f.llvm_ir
    a = np.random.default_rng(sum(shape)).standard_normal(shape).astype(dt)
    want = _numpy_reductions(a)
    results = {}
    for n in (1, 2, 3, 8):
        threads.set_num_threads(n)
        results[n] = f(a)
        for k, (got, ref) in enumerate(zip(results[n], want)):
            np.testing.assert_allclose(got, ref, **TOL[dt], err_msg=f"output {k}, {n} threads")
    for n in (2, 3, 8):   # max, min and elementwise outputs do not depend on the split
        for k in (1, 2, 4, 6):
            np.testing.assert_array_equal(results[n][k], results[1][k])


@needs_libgomp
def test_split_reduction_keeps_nan_and_inf():
    f = _reductions(np.float32)
    a = np.random.default_rng(0).standard_normal((90_000, 2)).astype(np.float32)
    a[70_000, 1] = np.inf
    threads.set_num_threads(2)
    got = f(a)
    assert got[0] == np.inf and got[1] == np.inf
    a[80_000, 0] = np.nan
    got = f(a)
    assert np.isnan(got[0]) and np.isnan(got[1]) and np.isnan(got[2])


@needs_libgomp
def test_gradient_with_full_reduction_is_split_and_correct():
    x = sg.placeholder(shape=(None,), name="x")
    loss = sg.sum(sg.tanh(x * 1.5 - 0.25) ** 2 + sg.exp(-x) * sg.sigmoid(x))
    (gx,) = sg.grad(loss, [x])
    f = sg.function([x], [loss, gx])
    ref = sg.function([x], [loss, gx], mode="reference")
    a = np.random.default_rng(3).standard_normal(300_001).astype(np.float32)
    want = ref(a)
    one = None
    for n in (1, 2, 4):
        threads.set_num_threads(n)
        got = f(a)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
        # elementwise: every split gives the one-thread bits. Against numpy the gradient
        # carries float32 tanh's few ULPs, amplified where 3 t (1 - t^2) - e s^2 cancels
        one = got[1] if one is None else one
        np.testing.assert_array_equal(got[1], one)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=3e-6)


@needs_libgomp
def test_two_callers_with_parallel_loops():
    x = sg.placeholder(shape=(None,), name="x")
    f = sg.function([x], [sg.sum(sg.exp(x * 0.5)), sg.tanh(x) * 2.0])
    arrays = [np.random.default_rng(k).standard_normal(200_000 + k).astype(np.float32)
              for k in range(2)]
    want = [(np.exp(a * np.float32(0.5)).sum(), np.tanh(a) * 2) for a in arrays]
    errors = []

    def work(k):
        try:
            for _ in range(20):
                s, t = f(arrays[k])
                np.testing.assert_allclose(s, want[k][0], rtol=1e-5)
                np.testing.assert_allclose(t, want[k][1], rtol=1e-6, atol=1e-6)
        except Exception as exc:   # reported by the main thread
            errors.append(exc)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors


def test_set_num_threads_rejects_bad_counts():
    for bad in (0, -1, 1.5, "2", True, None):
        with pytest.raises(ValueError, match="positive integer"):
            threads.set_num_threads(bad)
    threads.set_num_threads(3)
    assert threads.num_threads() == 3


def _run(code, env_updates, timeout=120):
    env = dict(os.environ, **env_updates)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_thread_count_from_the_environment(tmp_path):
    code = """
        from symgraph.runtime import threads
        print(threads.num_threads())
    """
    base = {"SYMGRAPH_CACHE_DIR": str(tmp_path)}
    assert _run(code, dict(base, SYMGRAPH_NUM_THREADS="3")).stdout.split() == ["3"]
    out = _run(code, dict(base, SYMGRAPH_NUM_THREADS="", OMP_NUM_THREADS="5,2"))
    assert out.stdout.split() == ["5"]
    bad = _run(code, dict(base, SYMGRAPH_NUM_THREADS="many"))
    assert bad.returncode != 0 and "SYMGRAPH_NUM_THREADS='many' is not a thread count" in bad.stderr


@needs_libgomp
def test_forked_child_runs_serially_instead_of_hanging(tmp_path):
    code = """
        import os, numpy as np, symgraph as sg
        from symgraph.runtime import threads
        threads.set_num_threads(2)
        x = sg.placeholder(shape=(None,), name="x")
        f = sg.function([x], sg.sum(sg.tanh(x) * 2.0))
        a = np.random.default_rng(0).standard_normal(500_000).astype(np.float32)
        want = f(a)                       # the parent's libgomp pool now exists
        pid = os.fork()
        if pid == 0:
            ok = np.allclose(f(a), want, rtol=1e-5) and threads.num_threads() == 1
            g = sg.function([x], sg.sum(sg.exp(x * 0.5)))      # compiled in the child
            ok = ok and np.allclose(g(a), np.exp(a * np.float32(0.5)).sum(), rtol=1e-5)
            try:
                threads.set_num_threads(2)
                ok = False
            except RuntimeError:
                pass
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), np.allclose(f(a), want, rtol=1e-5))
    """
    out = _run(code, {"SYMGRAPH_CACHE_DIR": str(tmp_path)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "True"]


@needs_libgomp
def test_pool_threads_start_for_large_work_only(tmp_path):
    # libgomp starts its pool on the first split loop: the process gains n - 1 threads
    code = """
        import os, numpy as np, symgraph as sg
        from symgraph.runtime import threads
        threads.set_num_threads(3)
        x = sg.placeholder(shape=(None,), name="x")
        f = sg.function([x], [sg.sum(sg.tanh(x)), sg.exp(x)])
        tasks = lambda: len(os.listdir("/proc/self/task"))
        small = np.ones(1000, np.float32)
        big = np.ones(1_000_000, np.float32)
        before = tasks()
        f(small)
        after_small = tasks()
        f(big)
        print(after_small - before, tasks() - before)
    """
    out = _run(code, {"SYMGRAPH_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "2"]
