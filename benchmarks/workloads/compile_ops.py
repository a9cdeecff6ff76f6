"""Compile time against graph size: 100, 1,000 and 10,000 ops (it must grow near-linearly).

The graphs are synthetic: a random chain of elementwise ops (unary and binary, the
second argument drawn from recent nodes, so the graph is a DAG, not only a chain)
with a matmul every few ops, ending in a sum. Each size compiles in a fresh process
with the disk cache off (so every size is a cold compile); the time is that of the
sg.function call (rewrites, fusion, code generation, LLVM, loading), with symgraph's
modules compiled to bytecode beforehand, as an installed package has them. The note
gives the growth exponent from the previous size (1.0 is linear). A size whose
predicted time does not fit in the time budget (--compile-budget; 0 for none) is
skipped with a note.
"""
from __future__ import annotations

import math
import time

import numpy as np

from child import run_child
from common import Skip, framework_module, summarize

NAME = "compile_ops"
TITLE = "compile time against graph size (synthetic elementwise + matmul graphs)"
SIZES = (100, 1_000, 10_000)
WIDTH = 32


def synthetic_graph(sg, n_ops: int, seed: int = 0):
    """(inputs, output, ops) of a random graph with ``n_ops`` non-leaf nodes."""
    rng = np.random.default_rng(seed)
    x = sg.placeholder(shape=("batch", WIDTH), name="x")
    ws = [sg.shared((rng.standard_normal((WIDTH, WIDTH)) / WIDTH).astype(np.float32),
                    name=f"w{k}") for k in range(4)]
    graph = x.graph
    leaves = len(graph)
    unary = (sg.tanh, sg.sigmoid, sg.relu, sg.sin, lambda t: sg.exp(-sg.abs(t)))
    binary = (lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a - b, sg.maximum)
    pool = [x]
    while True:
        ops = len(graph) - leaves
        if ops >= n_ops - 1:     # the final sum is one more
            break
        a = pool[-1]
        k = rng.integers(8)
        if k == 0:
            t = a @ ws[rng.integers(len(ws))]
        elif k < 4:
            t = unary[rng.integers(len(unary))](a)
        else:
            b = pool[-1 - rng.integers(min(len(pool), 16))]
            t = binary[rng.integers(len(binary))](a, b)
        pool.append(t)
    out = sg.sum(pool[-1])
    n_leaf = sum(1 for nid in graph.nx.nodes if graph.op(nid).is_leaf)
    return [x], out, len(graph) - n_leaf


def child(spec: dict) -> dict:
    import symgraph as sg
    with sg.Graph():
        t0 = time.perf_counter()
        inputs, out, ops = synthetic_graph(sg, spec["ops"])
        t1 = time.perf_counter()
        f = sg.function(inputs, out, mode="native")
        t2 = time.perf_counter()
    report = getattr(f, "rewrite_report", None)
    art = f.artifact
    return {"status": "ok", "seconds": t2 - t1, "graph_seconds": t1 - t0, "ops": ops,
            "nodes_after_rewrites": getattr(report, "nodes_after", None),
            "llvm": {k: round(v, 4) for k, v in (art.timings or {}).items()}}


def run(ctx) -> list:
    if ctx.frameworks and "symgraph" not in ctx.frameworks:
        return []
    try:
        framework_module("symgraph")
    except Skip as exc:
        return [ctx.row(NAME, f"{n:,} ops", "symgraph", "skipped", message=str(exc))
                for n in SIZES]
    from workloads.compile_mlp import ensure_bytecode
    ensure_bytecode()  # as installed: the children do not compile symgraph's sources
    max_reps = 1 if ctx.quick else 3
    budget = ctx.compile_budget if ctx.compile_budget is not None else (120 if ctx.quick else 240)
    deadline = time.monotonic() + budget if budget > 0 else float("inf")
    rows, previous = [], None
    for n in SIZES:
        case = f"{n:,} ops"
        # Predict from the previous size, assuming linear growth at best.
        predicted = previous[1] * n / previous[0] if previous else 0.0
        left = deadline - time.monotonic()
        if predicted > left:
            rows.append(ctx.row(NAME, case, "symgraph", "skipped", message=(
                f"predicted {predicted:.0f} s from the {previous[0]:,}-op time, more than the "
                f"{max(left, 0):.0f} s left of the {budget:.0f} s budget (--compile-budget)")))
            continue
        reps = max(1, min(max_reps, int(left // predicted) if predicted else max_reps))
        timeout = min(max(4 * predicted, 120), max(left, 120))
        results = []
        for _ in range(reps):
            results.append(run_child(NAME, {"ops": n}, timeout=timeout,
                                     env_updates={"SYMGRAPH_CACHE_DIR": "off"}))
            if results[-1].get("status") != "ok":
                break
        bad = next((r for r in results if r.get("status") != "ok"), None)
        if bad is not None:
            rows.append(ctx.row(NAME, case, "symgraph", bad["status"],
                                message=bad.get("message", "")))
            previous = None
            continue
        timing = summarize([r["seconds"] for r in results])
        detail = results[-1]
        note = f"{detail['ops']} ops, {timing['median'] / detail['ops'] * 1e3:.1f} ms/op"
        if detail.get("nodes_after_rewrites") is not None:
            note += f", {detail['nodes_after_rewrites']} nodes after rewrites"
        if previous is not None:
            exponent = (math.log(timing["median"] / previous[1])
                        / math.log(detail["ops"] / previous[0]))
            note += f", growth exponent {exponent:.2f}"
            detail = dict(detail, growth_exponent=round(exponent, 3))
        previous = (detail["ops"], timing["median"])
        ctx.log(f"  {case}: {timing['median']:.3f} s")
        rows.append(ctx.row(NAME, case, "symgraph", "ok", timing=timing, note=note,
                            detail=detail))
    return rows
