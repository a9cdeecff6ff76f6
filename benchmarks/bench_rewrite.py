"""Rewrite time against graph size: rewriting must scale near-linearly.

Builds random graphs of elementwise ops, reductions, reshapes and redundancies the rules
remove (x * 1, x + 0, repeated subexpressions, double negations), with their gradients,
at several sizes, and times the rewrite pipeline alone (no execution).

    python benchmarks/bench_rewrite.py            # 1,000 and 10,000 nodes
    python benchmarks/bench_rewrite.py 1000 30000
    python benchmarks/bench_rewrite.py --models   # the figures of docs/rewrites.md

Times are CPU seconds of the rewrite pipeline (best of three).
"""
from __future__ import annotations

import sys
import time

import numpy as np

import symgraph as sg
from symgraph.compiler.pipeline import optimize
from symgraph.program import build_program


def random_graph(n_nodes: int, seed: int = 0):
    """(inputs, outputs) of a random graph with about ``n_nodes`` nodes, gradient included."""
    rng = np.random.default_rng(seed)
    x = sg.placeholder(shape=(None, 16), name="x")
    w = sg.shared(rng.standard_normal(16).astype(np.float32), name="w")
    pool = [x, x * w]
    unary = [sg.exp, sg.tanh, sg.sigmoid, lambda t: -(-t), lambda t: t * 1.0,
             lambda t: t + 0.0, sg.square]
    binary = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a - b,
              lambda a, b: sg.maximum(a, b)]
    graph = x.graph
    while len(graph) < n_nodes * 0.68:  # the gradient adds about half again
        k = rng.integers(4)
        a = pool[-1 - rng.integers(min(len(pool), 8))]
        if k == 0:
            t = unary[rng.integers(len(unary))](a)
        elif k == 1:
            b = pool[rng.integers(len(pool))]
            t = binary[rng.integers(len(binary))](a, b)
        elif k == 2:  # a repeated subexpression
            t = sg.tanh(a * w) + sg.tanh(w * a)
        else:
            t = a + sg.sum(a, axis=1, keepdims=True) * 0.01
        pool.append(t)
    loss = sg.sum(sg.square(pool[-1])) + sum(sg.sum(p) for p in pool[-4:-1])
    (gw,) = sg.grad(loss, [w])
    return [x], [loss, gw]


def bench(n_nodes: int, repeat: int = 3):
    with sg.Graph():
        inputs, outputs = random_graph(n_nodes)
        program = build_program(inputs, outputs, [])
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()  # CPU time: steadier than wall time on a busy machine
        _, report = optimize(program)
        best = min(best, time.process_time() - t0)
    return len(program.graph), report, best


def models(show_graphs: bool):
    """Node counts, kernel counts and rewrite time of the models in tests/test_rewrite_models."""
    import os
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from tests.test_rewrite_models import cnn_step, expression, mlp_step
    from symgraph.compiler.fusion import kernel_counts
    print(f"{'model':<12} {'nodes':>6} {'after':>6} {'loops':>6} {'after':>6} {'fused':>6} "
          f"{'gemm':>5} {'ms':>7}")
    for name, build in (("mlp", mlp_step), ("cnn", cnn_step), ("expression", expression)):
        with sg.Graph():
            built = build()
            ins, outs, ups = built if name == "expression" else (built[0], [built[1]], built[2])
            program = build_program(ins, outs, ups)
        t0 = time.process_time()
        opt, rep = optimize(program)
        ms = (time.process_time() - t0) * 1e3
        k, k0 = rep.kernels, kernel_counts(program)
        print(f"{name:<12} {rep.nodes_before:>6} {rep.nodes_after:>6} {k0['loops']:>6} "
              f"{k['loops']:>6} {k['fused']:>6} {k['gemm']:>5} {ms:>7.1f}")
        if show_graphs:
            from symgraph.printing import format_tree
            print(format_tree(opt.graph, list(opt.outputs) + [v for _, v in opt.updates]))


def main(sizes):
    print(f"{'nodes':>8} {'after':>7} {'kernels':>8} {'seconds':>8} {'us/node':>8}")
    for n in sizes:
        size, report, secs = bench(n)
        print(f"{size:>8} {report.nodes_after:>7} {report.kernels['loops']:>8} "
              f"{secs:>8.3f} {secs / size * 1e6:>8.1f}")


if __name__ == "__main__":
    if "--models" in sys.argv:
        models("--graphs" in sys.argv)
    else:
        main([int(a) for a in sys.argv[1:]] or [1000, 10000])
