"""Rewrite time against graph size: rewriting must scale near-linearly.

Builds random graphs of elementwise ops, reductions, reshapes and redundancies the rules
remove (x * 1, x + 0, repeated subexpressions, double negations), with their gradients,
at several sizes, and times the rewrite pipeline alone (no execution).

    python benchmarks/bench_rewrite.py            # 1,000 and 10,000 nodes
    python benchmarks/bench_rewrite.py 1000 30000
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
        t0 = time.perf_counter()
        _, report = optimize(program)
        best = min(best, time.perf_counter() - t0)
    return len(program.graph), report, best


def main(sizes):
    print(f"{'nodes':>8} {'after':>7} {'kernels':>8} {'seconds':>8} {'us/node':>8}")
    for n in sizes:
        size, report, secs = bench(n)
        print(f"{size:>8} {report.nodes_after:>7} {report.kernels['loops']:>8} "
              f"{secs:>8.3f} {secs / size * 1e6:>8.1f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10000])
