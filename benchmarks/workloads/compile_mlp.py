"""Compile time of the mlp_step graph (batch 128): cold, and warm from the disk cache.

Cold is the first compile in a fresh process with an empty cache directory; warm is
a second fresh process given the directory the first one filled. Every measurement
is its own process, so nothing is warm in memory; the time is that of the
``sg.function`` call (the graph and its gradient are built before), and the note says
how many times the rewrite pipeline ran in it and whether LLVM was loaded. symgraph's disk cache is
``symgraph.compiler.cache`` ($SYMGRAPH_CACHE_DIR); a symgraph without one reports
warm as "not available". Peers: JAX (its persistent compilation cache) and PyTensor
(its compiledir of C modules). numpy and PyTorch eager compile nothing.
"""
from __future__ import annotations

import importlib.util
import os
import statistics
import tempfile
import time

from child import run_child
from common import Skip, framework_module, summarize

NAME = "compile_mlp"
TITLE = "compile time of mlp_step (batch 128): cold, then warm from the disk cache"
FRAMEWORKS = ("symgraph", "jax", "pytensor")


def _cache_env(framework: str, directory: str) -> dict:
    if framework == "symgraph":
        return {"SYMGRAPH_CACHE_DIR": directory}
    if framework == "pytensor":
        flags = os.environ.get("PYTENSOR_FLAGS", "")
        return {"PYTENSOR_FLAGS": ",".join(f for f in (flags, f"compiledir={directory}") if f)}
    return {"SG_BENCH_JAX_CACHE_DIR": directory}


def _disk_cache_module():
    """symgraph's disk compile cache, or None (it may not exist in this version)."""
    try:
        if importlib.util.find_spec("symgraph.compiler.cache") is None:
            return None
        from symgraph.compiler import cache
    except ImportError:
        return None
    return cache if hasattr(cache, "cache_dir") else None


def ensure_bytecode() -> None:
    """Compile symgraph's modules to bytecode, as pip does when it installs a package.

    Children may run with PYTHONDONTWRITEBYTECODE set, and an editable install has no
    bytecode until something writes it; every measured process would then compile the
    compiler's own sources first (about 10 ms of a 20 ms budget), which is no part of
    compiling a graph in an installed symgraph.
    """
    import compileall
    for name in ("symgraph", "symgraph.compiler", "symgraph.runtime"):
        spec = importlib.util.find_spec(name)
        for d in (spec.submodule_search_locations or []) if spec else []:
            compileall.compile_dir(d, quiet=1)


# -- in the child process -------------------------------------------------------------------
def child(spec: dict) -> dict:
    from workloads import mlp_step
    framework = spec["framework"]
    data = mlp_step.make_data({"batch": 128})
    if framework == "symgraph":
        cache = _disk_cache_module()
        t0 = time.perf_counter()
        bench = mlp_step.build_symgraph(data)
        art = bench.compiled.artifact
        import sys
        pipeline = sys.modules.get("symgraph.compiler.pipeline")
        return {"status": "ok", "seconds": bench.compile_seconds,
                "graph_seconds": time.perf_counter() - t0 - bench.compile_seconds,
                "llvm": {k: round(v, 4) for k, v in (art.timings or {}).items()},
                "cache": getattr(art, "cache", None), "disk_cache": cache is not None,
                "disk_hits": cache.stats.get("disk_hits") if cache else None,
                # what the measured call did: rewrite runs (0 on a warm hit) and
                # whether LLVM was loaded into the process at all
                "rewrite_runs": getattr(pipeline, "stats", {}).get("runs", 0),
                "llvm_loaded": "llvmlite.binding" in sys.modules}
    if framework == "jax":
        jax = framework_module("jax")
        directory = os.environ["SG_BENCH_JAX_CACHE_DIR"]
        jax.config.update("jax_compilation_cache_dir", directory)
        for option, value in (("jax_persistent_cache_min_compile_time_secs", 0),
                              ("jax_persistent_cache_min_entry_size_bytes", 0)):
            try:
                jax.config.update(option, value)
            except (AttributeError, KeyError):
                pass
        bench = mlp_step.build_jax(data)
        t0 = time.perf_counter()
        bench.step()
        first = time.perf_counter() - t0
        steady = []
        for _ in range(5):
            t0 = time.perf_counter()
            bench.step()
            steady.append(time.perf_counter() - t0)
        return {"status": "ok", "seconds": first - statistics.median(steady),
                "note": "first call (trace + compile + run) minus a steady call"}
    if framework == "pytensor":
        bench = mlp_step.build_pytensor(data)
        return {"status": "ok", "seconds": bench.compile_seconds, "note": bench.note}
    raise ValueError(framework)


# -- in the runner ----------------------------------------------------------------------------
def run(ctx) -> list:
    rows = []
    if not ctx.frameworks or "symgraph" in ctx.frameworks:
        try:
            framework_module("symgraph")
            ensure_bytecode()
        except Skip:
            pass
    for framework in FRAMEWORKS:
        # PyTensor's cold compile of C modules takes about a minute: once is enough.
        reps = 1 if framework == "pytensor" else 2 if ctx.quick else 3
        if ctx.frameworks and framework not in ctx.frameworks:
            continue
        try:
            framework_module(framework)
        except Skip as exc:
            for case in ("cold", "warm"):
                rows.append(ctx.row(NAME, case, framework, "skipped", message=str(exc)))
            continue
        cold, warm, details = [], [], {}
        failure = None
        for _ in range(reps):
            with tempfile.TemporaryDirectory(prefix="sg-bench-cache-") as directory:
                env = _cache_env(framework, directory)
                first = run_child(NAME, {"framework": framework}, env_updates=env)
                if first.get("status") != "ok":
                    failure = first
                    break
                second = run_child(NAME, {"framework": framework}, env_updates=env)
                if second.get("status") != "ok":
                    failure = second
                    break
            cold.append(first["seconds"])
            warm.append(second["seconds"])
            details = {"cold": first, "warm": second}
            ctx.log(f"  {framework}: cold {first['seconds']:.3f} s, warm {second['seconds']:.3f} s")
        if failure is not None:
            for case in ("cold", "warm"):
                rows.append(ctx.row(NAME, case, framework, failure["status"],
                                    message=failure.get("message", "")))
            continue
        rows.append(ctx.row(NAME, "cold", framework, "ok", timing=summarize(cold),
                            note=_note(framework, details["cold"]), detail=details["cold"]))
        if framework == "symgraph" and not details["warm"].get("disk_cache"):
            rows.append(ctx.row(NAME, "warm", framework, "not available",
                                message="this symgraph has no disk compile cache "
                                        "(symgraph.compiler.cache)"))
            continue
        note = _note(framework, details["warm"])
        if framework == "symgraph" and not details["warm"].get("disk_hits"):
            note = "the second process missed the disk cache; " + note
        rows.append(ctx.row(NAME, "warm", framework, "ok", timing=summarize(warm),
                            note=note, detail=details["warm"]))
    return rows


def _note(framework: str, detail: dict) -> str:
    if framework == "symgraph":
        llvm = detail.get("llvm") or {}
        parts = [f"{k} {v:.2f} s" for k, v in llvm.items()]
        cache = detail.get("cache")
        if "rewrite_runs" in detail:
            parts.append(f"rewrite runs {detail['rewrite_runs']}")
            parts.append("LLVM loaded" if detail.get("llvm_loaded") else "LLVM not loaded")
        return ", ".join(([f"cache {cache}"] if cache else []) + parts)
    return detail.get("note", "")
