"""A module compiled in parts (along its segments or its kernels) by worker processes
(compiler/partition.py, compiler/workers.py) computes what the one-module compile
computes, through the disk cache and the shared library too; a failing worker leaves
its part to the process."""
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import symgraph as sg
from symgraph.compiler import cache, codegen, early_part, link, partition, workers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

needs_linker = pytest.mark.skipif(link.linker() is None, reason="no system linker (ld)")


@pytest.fixture
def two_workers(monkeypatch, tmp_path):
    """Two compiling processes even for a small module, and a fresh disk cache."""
    monkeypatch.setattr(workers, "MIN_LOOPS_PER_PART", 1)
    monkeypatch.setattr(workers, "MIN_NODES_PER_PART", 1)
    monkeypatch.setenv("SYMGRAPH_COMPILE_WORKERS", "2")
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    cache.clear_memory()
    yield
    cache.clear_memory()


@pytest.fixture(params=["early", "after"])
def split_kernels(request, two_workers, monkeypatch):
    """No segments (a small module), split along its kernels into two parts: its first
    kernels to a worker during lowering (early_part.py), or the module split after."""
    if request.param == "after":
        monkeypatch.setattr(early_part, "SHARE", float("inf"))


@pytest.fixture
def split_small(split_kernels, monkeypatch):
    """Segments of two steps, split into two parts even for a small module."""
    monkeypatch.setattr(codegen, "SEGMENT_STEPS", 2)
    monkeypatch.setattr(codegen, "SEGMENTED_FROM", 2)


def _mlp(dtype, depth=6, width=5, seed=0):
    """An SGD step of a ``depth``-layer tanh MLP: matmuls, fused kernels, reductions."""
    rng = np.random.default_rng(seed)
    x = sg.placeholder(shape=("n", width), dtype=dtype, name="x")
    ws = [sg.shared(rng.standard_normal((width, width)).astype(dtype) / width, name=f"w{k}")
          for k in range(depth)]
    h = x
    for w in ws:
        h = sg.tanh(h @ w) + sg.sigmoid(h) * 0.5
    loss = sg.sum(h * h) + sg.sum(sg.max(h, axis=1))
    grads = sg.grad(loss, ws)
    return x, ws, loss, [(w, w - 0.1 * g) for w, g in zip(ws, grads)]


def _run_both(dtype, n, mode):
    with sg.Graph():
        x, ws, loss, updates = _mlp(dtype)
        f = sg.function([x], loss, updates=updates, mode=mode)
        xv = np.random.default_rng(1).standard_normal((n, 5)).astype(dtype)
        out = [f(xv) for _ in range(2)]
        return f, out, [w.get_value() for w in ws]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [0, 1, 7])
def test_parts_compute_what_the_reference_computes(split_small, dtype, n):
    f = _assert_native_matches_reference(dtype, n)
    assert f.artifact.parts == 2


def _assert_native_matches_reference(dtype, n):
    """The native step (outputs and updated weights) against the reference executor;
    returns the native function."""
    f, out, ws = _run_both(dtype, n, "native")
    _, ref_out, ref_ws = _run_both(dtype, n, "reference")
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(out, ref_out, rtol=tol, atol=tol)
    for a, b in zip(ws, ref_ws):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    return f


def test_split_keeps_every_symbol_defined_once(split_small):
    with sg.Graph():
        x, ws, loss, updates = _mlp("float32")
        f = sg.function([x], loss, updates=updates)
    text = f.artifact.ir or f._full_artifact("ir").ir
    parts = partition.split(text, codegen.SEGMENT, 3)
    assert parts is not None and len(parts) == 3
    exported = []
    for part in parts:
        for m in re.finditer(r'^define (?!internal|private)[^@]*@"([^"]+)"', part, re.M):
            exported.append(m.group(1))
    assert len(exported) == len(set(exported)), "a symbol defined in two parts"
    segments = [n for n in exported if n.startswith(codegen.SEGMENT + ".")]
    assert len(segments) == text.count(f'define internal i32 @"{codegen.SEGMENT}.') - sum(
        p.count(f'define internal i32 @"{codegen.SEGMENT}.') for p in parts)
    assert codegen.ENTRY in exported and exported.count(codegen.ENTRY) == 1


def test_an_unsplittable_module_is_left_whole():
    text = ('@"state" = internal global i64 0\n'
            'define internal i32 @"sg.seg.0"(i8* %"a", i8* %"d") noinline\n{\nentry:\n'
            '  ret i32 0\n}\n'
            'define internal i32 @"sg.seg.1"(i8* %"a", i8* %"d") noinline\n{\nentry:\n'
            '  %"v" = load i64, i64* @"state"\n  ret i32 0\n}\n'
            'define i32 @"sg_entry"(i8* %"a", i8* %"d")\n{\nentry:\n'
            '  %"x" = call i32 @"sg.seg.0"(i8* %"a", i8* %"d")\n'
            '  %"y" = call i32 @"sg.seg.1"(i8* %"a", i8* %"d")\n  ret i32 %"y"\n}\n')
    assert partition.split(text, "sg.seg", 2) is None   # the global would be copied
    assert partition.split(text.replace("internal global", "private constant"),
                           "sg.seg", 2) is not None


def test_a_variable_lives_in_the_first_part_and_is_declared_in_the_others():
    """The thread count word the runtime sets (parallel.py) must be one variable."""
    text = ('@"threads" = global i32 1, align 4\n'
            'define internal i32 @"sg.seg.0"(i8* %"a", i8* %"d") noinline\n{\nentry:\n'
            '  ret i32 0\n}\n'
            'define internal i32 @"sg.seg.1"(i8* %"a", i8* %"d") noinline\n{\nentry:\n'
            '  %"v" = load i32, i32* @"threads"\n  ret i32 %"v"\n}\n'
            'define i32 @"sg_entry"(i8* %"a", i8* %"d")\n{\nentry:\n'
            '  %"x" = call i32 @"sg.seg.0"(i8* %"a", i8* %"d")\n'
            '  %"y" = call i32 @"sg.seg.1"(i8* %"a", i8* %"d")\n  ret i32 %"y"\n}\n')
    first, second = partition.split(text, "sg.seg", 2)
    assert '@"threads" = global i32 1, align 4' in first
    assert '@"threads" = external global i32' in second
    from symgraph.compiler import target
    for part in (first, second):
        target.parse_and_optimize(part, big=True)   # both parse and verify


@needs_linker
def test_parts_through_the_disk_cache_and_the_shared_library(tmp_path):
    code = """
        import sys
        import numpy as np
        import symgraph as sg
        from symgraph.compiler import cache, codegen, workers
        codegen.SEGMENT_STEPS = codegen.SEGMENTED_FROM = 2
        workers.MIN_LOOPS_PER_PART = workers.MIN_NODES_PER_PART = 1
        sys.path.insert(0, "tests")
        from test_compile_parallel import _mlp
        x, ws, loss, updates = _mlp("float32")
        f = sg.function([x], loss, updates=updates)
        r = sg.function([x], loss, updates=[], mode="reference")
        xv = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
        expected = r(xv)
        got = f(xv)
        cache.flush()
        print(f.artifact.cache, getattr(f.artifact, "parts", 0), bool(f.artifact.library),
              abs(float(got) - float(expected)) <= 1e-4 * max(1.0, abs(float(expected))))
    """
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(tmp_path), SYMGRAPH_COMPILE_WORKERS="2")
    out = []
    for _ in range(3):
        r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                           text=True, cwd=REPO, env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        out.append(r.stdout.split())
    assert out[0] == ["miss", "2", "False", "True"]
    # the second process loads the entry (the library, linked after the first compile)
    assert out[1][0] == "disk" and out[1][3] == "True"
    assert out[2] == ["disk", "0", "True", "True"]


def test_a_worker_that_cannot_start_leaves_its_part_here(split_small, monkeypatch):
    monkeypatch.setattr(workers, "_command", lambda: [sys.executable, "-c", "raise SystemExit(3)"])
    f, out, ws = _run_both("float32", 3, "native")
    _, ref_out, _ = _run_both("float32", 3, "reference")
    np.testing.assert_allclose(out, ref_out, rtol=1e-4, atol=1e-4)
    assert f.artifact.parts == 2


def test_a_crashing_worker_is_a_clear_error_and_leaves_no_process(split_small, monkeypatch):
    started = []
    real = workers.Worker.__init__

    def spy(self, *a, **k):
        real(self, *a, **k)
        started.append(self.proc)

    monkeypatch.setattr(workers.Worker, "__init__", spy)
    monkeypatch.setattr(workers, "_command", lambda: [
        sys.executable, "-c", "import os, signal, sys; sys.stdin.buffer.read(); "
                              "os.kill(os.getpid(), signal.SIGSEGV)"])
    with pytest.raises(RuntimeError, match="LLVM worker .* died with signal SIGSEGV"):
        _run_both("float32", 3, "native")
    assert started and all(p.poll() is not None for p in started)


def test_an_llvm_error_in_a_part_is_raised_as_without_workers(split_small):
    bad = 'define internal i32 @"sg.seg.0"(i8* %"a", i8* %"d")\n{\nentry:\n  ret i64 0\n}\n'
    good = 'define internal i32 @"sg.seg.1"(i8* %"a", i8* %"d")\n{\nentry:\n  ret i32 0\n}\n'
    entry = ('define i32 @"sg_entry"(i8* %"a", i8* %"d")\n{\nentry:\n'
             '  %"x" = call i32 @"sg.seg.1"(i8* %"a", i8* %"d")\n'
             '  %"y" = call i32 @"sg.seg.0"(i8* %"a", i8* %"d")\n  ret i32 %"y"\n}\n')
    parts = partition.split(good + bad + entry, "sg.seg", 2)
    from symgraph.compiler import target
    pool = workers.Pool(2)
    with pytest.raises(RuntimeError, match="parsing error"):
        pool.compile(parts, lambda t: target.compile_objects(t, big=True), big=True)
    assert all(w.proc.poll() is not None for w in pool.workers)


def test_parts_compute_exactly_what_one_module_computes(split_small, monkeypatch):
    """Large enough for loops split across threads (the runtime's thread count word is
    then used by every part): the same code in two parts gives the same bits."""
    _assert_one_and_two_parts_agree(monkeypatch)


def _assert_one_and_two_parts_agree(monkeypatch):
    results = []
    for workers_flag in ("1", "2"):
        monkeypatch.setenv("SYMGRAPH_COMPILE_WORKERS", workers_flag)
        monkeypatch.setenv("SYMGRAPH_CACHE_DIR", "off")
        cache.clear_memory()
        with sg.Graph():
            x, ws, loss, updates = _mlp("float32", depth=3, width=64)
            f = sg.function([x], loss, updates=updates)
            xv = np.random.default_rng(1).standard_normal((3000, 64)).astype(np.float32)
            results.append(([f(xv) for _ in range(2)], [w.get_value() for w in ws],
                            f.artifact.parts))
    (one, w_one, parts_one), (two, w_two, parts_two) = results
    assert (parts_one, parts_two) == (1, 2)
    np.testing.assert_array_equal(one, two)
    for a, b in zip(w_one, w_two):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [0, 1, 7])
def test_a_module_without_segments_is_split_along_its_kernels(split_kernels, dtype, n):
    f = _assert_native_matches_reference(dtype, n)
    text = f.artifact.ir or f._full_artifact("ir").ir
    assert f"@\"{codegen.SEGMENT}." not in text and f.artifact.parts == 2


def test_a_kernel_split_defines_every_symbol_once(split_kernels):
    with sg.Graph():
        x, ws, loss, updates = _mlp("float32")
        f = sg.function([x], loss, updates=updates)
    text = f.artifact.ir or f._full_artifact("ir").ir
    parts = partition.split(text, partition.KERNEL, 3)
    assert parts is not None and len(parts) == 3
    exported = [m.group(1) for part in parts for m in re.finditer(
        r'^define (?!internal|private)[^@]*@"([^"]+)"', part, re.M)]
    assert len(exported) == len(set(exported)), "a symbol defined in two parts"
    moved = [n for n in exported if n.startswith(tuple(p + "." for p in partition.KERNEL))]
    assert moved and codegen.ENTRY in exported
    for name in moved:      # defined in one later part...
        assert sum(f'define hidden void @"{name}"' in p for p in parts[1:]) == 1
    from symgraph.compiler import target
    for part in parts:      # ...and declared wherever else it is used: each part verifies
        target.parse_and_optimize(part, opt=0)


def test_kernel_parts_compute_exactly_what_one_module_computes(split_kernels, monkeypatch):
    """Loops split across threads, kernels in two objects: the same bits as one."""
    _assert_one_and_two_parts_agree(monkeypatch)


GLUE_MODULE = """; ModuleID = "m"
@"word" = global i32 1
@"msg" = private unnamed_addr constant [2 x i8] c"x\\00"
define internal void @"k.add.0"(i8* %"p")
{
entry:
  ret void
}
define internal i32 @"sg.seg.0"(i8* %"a", i8* %"d") noinline optnone
{
entry:
  call void @"k.add.0"(i8* %"a")
  %"w" = load i32, i32* @"word"
  ret i32 %"w"
}
define i32 @"sg_entry"(i8* %"a", i8* %"d")
{
entry:
  %"c" = call i32 @"sg.seg.0"(i8* %"a", i8* %"d")
  ret i32 %"c"
}
"""


def test_glue_goes_apart_and_what_it_calls_becomes_visible():
    main, (glue,) = partition.separate_glue(GLUE_MODULE, "sg.seg")
    assert 'define hidden i32 @"sg.seg.0"' in glue and 'declare hidden void @"k.add.0"' in glue
    assert '@"word" = external global i32' in glue
    assert 'define hidden void @"k.add.0"' in main and 'declare hidden i32 @"sg.seg.0"' in main
    assert 'define internal i32 @"sg.seg.0"' not in main
    from symgraph.compiler import target
    for text in (main, glue):
        target.llvm().parse_assembly(text).verify()
    # no optnone glue, or none at all: nothing to do
    plain = GLUE_MODULE.replace(" noinline optnone", " noinline")
    assert partition.separate_glue(plain, "sg.seg") == (plain, None)
    assert partition.separate_glue(GLUE_MODULE, "other") == (GLUE_MODULE, None)


def test_glue_in_two_parts_each_defines_its_segments_once():
    second = GLUE_MODULE[GLUE_MODULE.index('define internal i32 @"sg.seg.0"'):
                         GLUE_MODULE.index('define i32 @"sg_entry"')]
    module = GLUE_MODULE.replace('define i32 @"sg_entry"',
                                 second.replace("sg.seg.0", "sg.seg.1") + 'define i32 @"sg_entry"')
    main, glues = partition.separate_glue(module, "sg.seg", shares=(1, 1))
    assert len(glues) == 2
    from symgraph.compiler import target
    for k, glue in enumerate(glues):
        assert f'define hidden i32 @"sg.seg.{k}"' in glue
        assert f'define hidden i32 @"sg.seg.{1 - k}"' not in glue
        assert 'declare hidden void @"k.add.0"' in glue
        target.llvm().parse_assembly(glue).verify()
    assert len(partition.separate_glue(module, "sg.seg", shares=(1, 1, 1))[1]) == 2


def test_entry_points_go_with_the_glue_and_stay_exported():
    """An entry point named as glue (codegen.GLUE_ENTRIES) leaves the main module with
    the segments; it keeps default visibility, and a declaration of it elsewhere is
    not ``hidden`` (the linker would hide it from the shared library); main declares
    only the glue it calls."""
    module = GLUE_MODULE.replace('define i32 @"sg_entry"(i8* %"a", i8* %"d")',
                                 'define i32 @"sg_entry"(i8* %"a", i8* %"d") noinline optnone')
    main, glues = partition.separate_glue(module, "sg.seg", names=("sg_entry",),
                                          shares=(1, 1))
    assert "sg_entry" not in main and "sg.seg.0" not in main
    assert 'define hidden void @"k.add.0"' in main
    first, second = glues
    assert 'define hidden i32 @"sg.seg.0"' in first
    assert 'define i32 @"sg_entry"' in second and 'declare hidden i32 @"sg.seg.0"' in second
    from symgraph.compiler import target
    for text in (main, *glues):
        target.llvm().parse_assembly(text).verify()
    # a caller of the entry elsewhere declares it with default visibility
    caller = module + ('define i32 @"k.call.0"(i8* %"a")\n{\nentry:\n'
                       '  %"c" = call i32 @"sg_entry"(i8* %"a", i8* %"a")\n  ret i32 %"c"\n}\n')
    main, _ = partition.separate_glue(caller, "sg.seg", names=("sg_entry",))
    assert 'declare i32 @"sg_entry"(i8*, i8*)' in main


def test_a_small_module_in_parts_compiles_its_glue_apart(split_small):
    """Entries and dispatchers leave the parts (none defines one) and go to the fast
    code generator here: one more object than parts, and the same values."""
    from symgraph.runtime.objects import unpack
    f = _assert_native_matches_reference("float32", 7)
    assert f.artifact.parts == 2
    ir_text = f.artifact.ir
    assert 'define i32 @"sg_entry"(i8* %"args", i8* %"dims") noinline optnone' in ir_text
    assert len(unpack(f.artifact.object_code)) >= 3
