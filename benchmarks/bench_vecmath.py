"""Throughput of the vecmath kernels vs numpy on 1e6 elements.

Each vecmath function is JIT-compiled in a loop ``out[i] = f(x[i])`` (the test
harness's kernel, one thread) and timed against the matching numpy expression writing
into a preallocated output; the two alternate run by run. Reports Melem/s from the
median thread CPU time (robust on a shared, loaded machine; the meta records the load
average) and from the median wall time, and writes benchmarks/results/vecmath.json.

    python benchmarks/bench_vecmath.py [--n N] [--repeat R] [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tests.vecmath_harness import FUNCTIONS, kernel  # noqa: E402

# input ranges typical of each function's use
RANGES = {"exp": (-50, 50), "log": (1e-3, 1e3), "log1p": (-0.9, 10), "expm1": (-5, 5),
          "tanh": (-5, 5), "sigmoid": (-10, 10), "softplus": (-10, 10), "sin": (-100, 100),
          "cos": (-100, 100), "pow": ((0.1, 10), (-5, 5))}


def _numpy_fn(name):
    def sigmoid(x, out):
        np.negative(x, out=out)
        np.exp(out, out=out)
        out += 1
        return np.reciprocal(out, out=out)

    table = {"exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1,
             "tanh": np.tanh, "sin": np.sin, "cos": np.cos, "sigmoid": sigmoid,
             "softplus": lambda x, out: np.logaddexp(x, 0, out=out), "pow": np.power}
    f = table[name]
    return lambda *a: f(*a[:-1], out=a[-1]) if name not in ("sigmoid", "softplus") else f(*a)


def _times(fns, args, repeat):
    """Per fn: (median thread CPU seconds, median wall seconds) of fn(*args). The fns
    alternate run by run; CPU time is the primary figure because it does not count
    time the thread spent preempted on a loaded machine."""
    for fn in fns:
        fn(*args)                               # warm up
    cpu = [[] for _ in fns]
    wall = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0, c0 = time.perf_counter(), time.thread_time()
            fn(*args)
            cpu[i].append(time.thread_time() - c0)
            wall[i].append(time.perf_counter() - t0)
    return [(statistics.median(c), statistics.median(w)) for c, w in zip(cpu, wall)]


def run(n=1_000_000, repeat=31):
    rng = np.random.default_rng(0)
    rows = []
    for dtype in (np.float32, np.float64):
        for name in FUNCTIONS:
            if name == "pow":
                (a, b), (c, d) = RANGES[name]
                ins = [rng.uniform(a, b, n).astype(dtype), rng.uniform(c, d, n).astype(dtype)]
            else:
                ins = [rng.uniform(*RANGES[name], n).astype(dtype)]
            out = np.empty(n, dtype)
            k = kernel(name, dtype)
            with np.errstate(all="ignore"):
                (jit_cpu, jit_wall), (np_cpu, np_wall) = _times(
                    [lambda *a: k(*a[:-1], out=a[-1]), _numpy_fn(name)], ins + [out], repeat)
            row = {"function": name, "dtype": np.dtype(dtype).name,
                   "vecmath_melem_s": round(n / jit_cpu / 1e6, 1),
                   "numpy_melem_s": round(n / np_cpu / 1e6, 1),
                   "speedup": round(np_cpu / jit_cpu, 2),
                   "vecmath_wall_melem_s": round(n / jit_wall / 1e6, 1),
                   "numpy_wall_melem_s": round(n / np_wall / 1e6, 1)}
            rows.append(row)
            print(f"{name:9s} {row['dtype']}: vecmath {row['vecmath_melem_s']:7.1f}"
                  f"  numpy {row['numpy_melem_s']:7.1f} Melem/s  x{row['speedup']:<5}"
                  f" (wall: {row['vecmath_wall_melem_s']:.1f} vs {row['numpy_wall_melem_s']:.1f})",
                  flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=31)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "results", "vecmath.json"))
    args = ap.parse_args()
    from symgraph.compiler import target
    rows = run(args.n, args.repeat)
    meta = {"n": args.n, "repeat": args.repeat,
            "statistic": "median thread CPU time (and median wall time) of alternating runs",
            "cpu": target.host_cpu()[1], "cores": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2), "numpy": np.__version__,
            "python": platform.python_version(), "threads": 1}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "results": rows}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
