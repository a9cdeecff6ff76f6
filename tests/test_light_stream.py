"""Kernels of a big module compiled while it is lowered (compiler/light_stream.py):
the function is the one the reference executor runs, its IR is the whole module, and a
batch LLVM refuses, or a lowering that fails, stops the compile with an error."""
import threading

import numpy as np
import pytest

import symgraph as sg
from symgraph.compiler import cache, light_stream, target

KERNELS = 24


@pytest.fixture
def streamed(monkeypatch):
    """A big module with small batches, compiled with a worker (two processes)."""
    monkeypatch.setenv("SYMGRAPH_COMPILE_WORKERS", "2")
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", "off")
    monkeypatch.setattr(target, "BIG_MODULE_FUNCTIONS", 8)
    monkeypatch.setattr(light_stream, "MIN_BATCH", 5)
    monkeypatch.setattr(light_stream, "MAX_BATCH", 5)
    from symgraph.compiler import codegen     # in segments: their glue is compiled apart
    monkeypatch.setattr(codegen, "SEGMENT_STEPS", 8)
    monkeypatch.setattr(codegen, "SEGMENTED_FROM", 16)
    cache.clear_memory()            # every test compiles


def _chain(dtype):
    """Kernels separated by matmuls (which fusion does not cross), each different."""
    rng = np.random.default_rng(0)
    x = sg.placeholder(shape=("n", 19), dtype=dtype, name="x")
    w = sg.constant((rng.standard_normal((19, 19)) / 19).astype(dtype))
    h = x
    for k in range(KERNELS):
        h = (sg.tanh(h * (1.0 + k / 10)) + sg.maximum(h, 0.0) - k / 7) @ w
    return [x], [h, sg.sum(h * h, axis=1)]


def _compiled(chain, dtype):
    """(native, reference) functions of ``chain(dtype)``."""
    with sg.Graph():
        inputs, outputs = chain(dtype)
        return sg.function(inputs, outputs), sg.function(inputs, outputs, mode="reference")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_streamed_module_computes_what_the_reference_computes(streamed, dtype):
    nat, ref = _compiled(_chain, dtype)
    assert nat.artifact.parts >= 2 + KERNELS // 5     # the batches, the rest, its glue
    x = np.random.default_rng(1).standard_normal((13, 19)).astype(dtype)
    for got, want in zip(nat(x), ref(x)):
        np.testing.assert_allclose(got, want, rtol=1e-4 if dtype == "float32" else 1e-10,
                                   atol=1e-5 if dtype == "float32" else 1e-12)
    ir = nat._full_artifact("ir").ir    # the whole module: every kernel defined
    kernels = [ln for ln in ir.splitlines() if ln.startswith("define") and '"k.' in ln]
    assert len(kernels) >= KERNELS
    assert not [ln for ln in ir.splitlines() if ln.startswith("declare") and '"k.' in ln]
    # the batches, the rest and its glue (partition.separate_glue) define every symbol
    # once: the system linker makes one library of them
    from symgraph.compiler import link
    from symgraph.runtime.objects import unpack
    assert len(unpack(nat.artifact.object_code)) == nat.artifact.parts
    if link.linker() is not None:
        assert link.link_shared(nat.artifact.object_code,
                                nat.artifact.manifest["external"]) is not None


def _helper_chain(dtype):
    """Kernels of what the fast instruction selector misses (fast_isel.py): constants,
    negation, abs, maximum and minimum, clip, a select, a sign."""
    rng = np.random.default_rng(2)
    x = sg.placeholder(shape=("n", 11), dtype=dtype, name="x")
    w = sg.constant((rng.standard_normal((11, 11)) / 11).astype(dtype))
    h = x
    for k in range(KERNELS):
        a = sg.abs(-h) * (0.5 + k) + sg.minimum(h, -0.0) - sg.maximum(h, 1.0 / (k + 1))
        b = sg.where(h > 0.25, sg.clip(h, -2.0, 2.0), sg.sign(h) * 3.0)
        h = (a + b - k) @ w
    return [x], [h]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kernels_calling_helpers_compute_what_the_reference_computes(streamed, dtype):
    nat, ref = _compiled(_helper_chain, dtype)
    assert '@"sg.fi.' in nat._full_artifact("ir").ir      # helpers were called
    x = np.random.default_rng(3).standard_normal((37, 11)).astype(dtype) * 3
    x[0, :4] = [0.0, -0.0, 0.25, -1e30]
    np.testing.assert_allclose(nat(x)[0], ref(x)[0],
                               rtol=1e-4 if dtype == "float32" else 1e-10,
                               atol=1e-4 if dtype == "float32" else 1e-10)


def test_a_batch_llvm_refuses_is_the_compile_error(streamed, monkeypatch):
    def refuse(text):
        raise RuntimeError("LLVM refused this batch")
    monkeypatch.setattr(target, "compile_light", refuse)
    with sg.Graph():
        inputs, outputs = _chain("float32")
        with pytest.raises(RuntimeError, match="LLVM refused this batch"):
            sg.function(inputs, outputs)
    assert not _light_threads()


def test_a_failed_lowering_leaves_no_thread_behind(streamed, monkeypatch):
    from symgraph.compiler import codegen

    def fail(*args, **kw):
        raise RuntimeError("lowering failed")
    monkeypatch.setattr(codegen, "_emit_object_entry", fail)   # after every kernel
    with sg.Graph():
        inputs, outputs = _chain("float32")
        with pytest.raises(RuntimeError, match="lowering failed"):
            sg.function(inputs, outputs)
    for t in threading.enumerate():
        if t.name == "symgraph-light-kernels":
            t.join(timeout=10)
    assert not _light_threads()


def test_one_core_compiles_without_streaming(streamed, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_COMPILE_WORKERS", "1")
    calls = []
    monkeypatch.setattr(light_stream.LightStream, "add",
                        lambda self, *a, **k: calls.append(a))
    nat, ref = _compiled(_chain, "float32")
    assert not calls
    x = np.ones((2, 19), np.float32)
    np.testing.assert_allclose(nat(x)[1], ref(x)[1], rtol=1e-4)


def _light_threads():
    return [t for t in threading.enumerate() if t.name == "symgraph-light-kernels"
            and t.is_alive()]
