"""Lowering time: a Program to LLVM IR text (compiler/codegen.py:compile_program).

Times, per graph, the building of the llvmlite module (lower_program) and its printing,
by compiler/irprint.py and by llvmlite's own ``str(module)`` (the two texts must be
equal), in CPU seconds (steadier than wall time on a shared machine), median of
``--repeat`` runs in one process after one warm-up run. The graphs: the MLP step of
benchmarks/workloads/mlp_step.py (batch 128) and the synthetic graphs of
compile_ops.py.

    python benchmarks/bench_lower.py              # MLP step, 1,000 and 3,000 ops
    python benchmarks/bench_lower.py mlp 10000 --repeat 3
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "workloads")]
os.environ.setdefault("SYMGRAPH_CACHE_DIR", "off")

import symgraph as sg  # noqa: E402
from symgraph.compiler.codegen import compile_program, lower_program  # noqa: E402
from symgraph.compiler.irprint import module_text  # noqa: E402


def program(which: str):
    """The optimized Program of the MLP step ("mlp") or of a synthetic graph of N ops."""
    if which == "mlp":
        import numpy as np
        from mlp_step import LR, SIZES, make_data
        data = make_data({"batch": 128})
        with sg.Graph():
            x = sg.placeholder(shape=("batch", SIZES[0]), name="x")
            y = sg.placeholder(shape=("batch",), dtype="int64", name="y")
            ps = [sg.shared(np.asarray(p), name=f"p{k}") for k, p in enumerate(data["params"])]
            h = sg.relu(x @ ps[0] + ps[1])
            h = sg.relu(h @ ps[2] + ps[3])
            loss = sg.nn.cross_entropy(h @ ps[4] + ps[5], y)
            grads = sg.grad(loss, ps)
            f = sg.function([x, y], loss, updates=[(p, p - LR * g) for p, g in zip(ps, grads)],
                            mode="reference")
        return f.optimized
    from compile_ops import synthetic_graph
    with sg.Graph():
        inputs, out, _ = synthetic_graph(sg, int(which))
        return sg.function(inputs, out, mode="reference").optimized


def cpu(fn):
    t = time.process_time()
    out = fn()
    return out, time.process_time() - t


def bench(which: str, repeat: int) -> dict:
    prog = program(which)
    compile_program(prog)                      # warm-up: imports, first-use tables
    times = {"compile_program": [], "lower": [], "irprint": [], "llvmlite str": []}
    for _ in range(repeat):
        gc.collect()
        text, t = cpu(lambda: compile_program(prog)[0])
        times["compile_program"].append(t)
        gc.disable()                           # as compile_program runs them
        try:
            (module, _), t = cpu(lambda: lower_program(prog))
            times["lower"].append(t)
            fast, t = cpu(lambda: module_text(module))
            times["irprint"].append(t)
            (module, _), _ = cpu(lambda: lower_program(prog))
            slow, t = cpu(lambda: str(module))
            times["llvmlite str"].append(t)
        finally:
            gc.enable()
        if not fast == slow == text:
            raise AssertionError(f"{which}: irprint's text differs from llvmlite's")
    return {"lines": text.count("\n"), **{k: statistics.median(v) for k, v in times.items()}}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("graphs", nargs="*", default=["mlp", "1000", "3000"])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    print(f"{'graph':>8} {'IR lines':>9} {'compile_program':>16} {'lower':>8} {'irprint':>8} "
          f"{'str(module)':>12}   (ms CPU, median of {args.repeat})")
    for which in args.graphs:
        r = bench(which, args.repeat)
        print(f"{which:>8} {r['lines']:>9} {r['compile_program'] * 1e3:>16.1f} "
              f"{r['lower'] * 1e3:>8.1f} {r['irprint'] * 1e3:>8.1f} "
              f"{r['llvmlite str'] * 1e3:>12.1f}", flush=True)


if __name__ == "__main__":
    main()
