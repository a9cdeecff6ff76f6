"""Convolution speed: native code vs the numpy reference (and PyTorch when installed).

Times, for the layers of a small CNN on 28x28x1 images (batch 64, float32):
conv2d forward plus both gradients (the work of one training step of that layer), and
the whole SGD step conv3x3(16)-relu-maxpool-conv3x3(32)-relu-maxpool-dense(10) with
cross entropy. Figures are the median (and minimum) of repetitions, wall clock and
the process's CPU time (all its threads; spinning thread pools show up there).

Each framework runs in a process of its own: thread pools that spin after their work
(OpenBLAS, libgomp, PyTorch's OpenMP) would otherwise steal the cores from the next
framework measured. Layer results are checked against the numpy reference.

    python benchmarks/bench_conv.py            # all
    python benchmarks/bench_conv.py --quick    # fewer repetitions
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import symgraph as sg

BATCH = 64
LAYERS = {  # name: (x shape, w shape); padding 1, stride 1
    "conv1 1->16 28x28": ((BATCH, 1, 28, 28), (16, 1, 3, 3)),
    "conv2 16->32 14x14": ((BATCH, 16, 14, 14), (32, 16, 3, 3)),
}


def measure(step, reps: int, warmup: int = 3) -> dict:
    """Median and minimum seconds of ``step()``, wall clock and process CPU time."""
    for _ in range(warmup):
        step()
    wall, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"wall": statistics.median(wall), "wall_min": min(wall),
            "cpu": statistics.median(cpu)}


def fmt(r) -> str:
    if isinstance(r, str):
        return r
    return (f"{r['wall'] * 1e3:8.2f} ms (min {r['wall_min'] * 1e3:7.2f})"
            f"  cpu {r['cpu'] * 1e3:8.2f} ms")


# -- one layer: forward and both gradients ---------------------------------------------------
def layer_symgraph(xs, ws, mode):
    """y = conv2d(x, w), and the gradients of sum(y * g) for a fixed cotangent g."""
    with sg.Graph():
        x = sg.placeholder(shape=xs, dtype="float32", name="x")
        w = sg.placeholder(shape=ws, dtype="float32", name="w")
        g = sg.placeholder(shape=(xs[0], ws[0]) + xs[2:], dtype="float32", name="g")
        y = sg.nn.conv2d(x, w, padding=1)
        gx, gw = sg.grad(sg.sum(y * g), [x, w])
        return sg.function([x, w, g], [y, gx, gw], mode=mode)


def layer_torch(xs, ws):
    import torch
    import torch.nn.functional as F

    def run(x, w, g):
        x = torch.from_numpy(x).requires_grad_()
        w = torch.from_numpy(w).requires_grad_()
        y = F.conv2d(x, w, padding=1)
        gx, gw = torch.autograd.grad(y, [x, w], torch.from_numpy(g))
        return [y.detach().numpy(), gx.numpy(), gw.numpy()]
    return run


def layer_runner(runner, xs, ws):
    if runner == "torch":
        return layer_torch(xs, ws)
    return layer_symgraph(xs, ws, "reference" if runner == "reference" else "native")


def bench_layers(runner, reps):
    rng = np.random.default_rng(0)
    for name, (xs, ws) in LAYERS.items():
        args = [rng.standard_normal(s).astype(np.float32)
                for s in (xs, ws, (xs[0], ws[0]) + xs[2:])]
        f = layer_runner(runner, xs, ws)
        got = f(*args)
        want = got if runner == "reference" else layer_symgraph(xs, ws, "reference")(*args)
        err = max(float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30))
                  for a, b in zip(got, want))
        print(f"conv2d forward + backward, {name}: {fmt(measure(lambda: f(*args), reps))}"
              f"   rel err {err:.1e}", flush=True)


# -- the whole training step --------------------------------------------------------------------
def init_params(seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((16, 1, 3, 3)) * 0.3).astype(np.float32),
            np.zeros(16, np.float32),
            (rng.standard_normal((32, 16, 3, 3)) * 0.1).astype(np.float32),
            np.zeros(32, np.float32),
            (rng.standard_normal((32 * 7 * 7, 10)) * 0.02).astype(np.float32)]


def cnn_step_symgraph(params, mode, lr=0.01):
    """One compiled SGD step; returns (step function, shared variables)."""
    with sg.Graph():
        x = sg.placeholder(shape=(None, 1, 28, 28), dtype="float32", name="x")
        y = sg.placeholder(shape=(None,), dtype="int64", name="y")
        ps = [sg.shared(p.copy(), name=n) for p, n in zip(params, ["w1", "b1", "w2", "b2", "wd"])]
        w1, b1, w2, b2, wd = ps
        h = sg.nn.max_pool2d(sg.relu(sg.nn.conv2d(x, w1, b1, padding=1)), 2)
        h = sg.nn.max_pool2d(sg.relu(sg.nn.conv2d(h, w2, b2, padding=1)), 2)
        loss = sg.nn.cross_entropy(sg.reshape(h, (-1, 32 * 7 * 7)) @ wd, y)
        grads = sg.grad(loss, ps)
        step = sg.function([x, y], loss, updates=[(p, p - lr * g) for p, g in zip(ps, grads)],
                           mode=mode)
    return step, ps


def cnn_step_torch(params, lr=0.01):
    import torch
    import torch.nn.functional as F
    ps = [torch.from_numpy(p.copy()).requires_grad_() for p in params]

    def step(xb, yb):
        w1, b1, w2, b2, wd = ps
        h = F.max_pool2d(F.relu(F.conv2d(xb, w1, b1, padding=1)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, w2, b2, padding=1)), 2)
        loss = F.cross_entropy(h.reshape(h.shape[0], -1) @ wd, yb)
        grads = torch.autograd.grad(loss, ps)
        with torch.no_grad():
            for p, g in zip(ps, grads):
                p -= lr * g
        return loss.item()
    return step


def bench_step(runner, reps):
    rng = np.random.default_rng(1)
    xb = rng.standard_normal((BATCH, 1, 28, 28)).astype(np.float32)
    yb = rng.integers(0, 10, BATCH)
    params = init_params()
    if runner == "torch":
        import torch
        step = cnn_step_torch(params)
        xt, yt = torch.from_numpy(xb), torch.from_numpy(yb)
        call = lambda: step(xt, yt)  # noqa: E731
        note = f" ({torch.get_num_threads()} threads)"
    else:
        t0 = time.perf_counter()
        step, _ = cnn_step_symgraph(params, runner)
        call = lambda: step(xb, yb)  # noqa: E731
        note = f" (built in {time.perf_counter() - t0:.2f} s, compile cache may hit)"
        reps = reps if runner == "native" else max(3, reps // 4)
    print(f"CNN SGD step:                          {fmt(measure(call, reps))}{note}",
          flush=True)


def run_one(runner, reps):
    if runner == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            print("not installed")
            return
    bench_layers(runner, reps)
    bench_step(runner, reps)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--runner", choices=RUNNERS, help="measure one framework, in this process")
    args = ap.parse_args()
    reps = 10 if args.quick else 40
    if args.runner:
        run_one(args.runner, reps)
        return
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("OMP_", "GOMP_", "OPENBLAS_"))}
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, "
          f"thread settings {env or 'default'}")
    print(f"batch {BATCH}, float32; CNN: conv3x3(16)-relu-maxpool-conv3x3(32)-relu-maxpool-"
          "dense(10), cross entropy, SGD")
    for runner in RUNNERS:
        print(f"\n{RUNNERS[runner]}", flush=True)
        cmd = [sys.executable, os.path.abspath(__file__), "--runner", runner]
        subprocess.run(cmd + (["--quick"] if args.quick else []), check=True)


RUNNERS = {"native": "symgraph native", "reference": "symgraph reference (numpy)",
           "torch": "PyTorch eager"}


if __name__ == "__main__":
    main()
