"""Benchmark runner: symgraph native against numpy, PyTorch eager, JAX jit and PyTensor.

    python benchmarks/run.py                  # everything (a few minutes)
    python benchmarks/run.py --quick          # fewer repetitions
    python benchmarks/run.py --only mlp_step --only tiny_call --reps 30

Writes benchmarks/results/latest.json and latest.md. Peers missing from the
environment (`pip install -e '.[bench]'`) are reported as skipped; a workload whose
graph symgraph cannot compile natively yet is reported as unsupported.

OpenBLAS: unless --keep-openblas-env, the runner re-executes itself without
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE so that OpenBLAS picks its kernels from the
CPU, and it records which kernel each library ran.
"""
from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from environment import strip_openblas_env  # noqa: E402  (stdlib only: runs before numpy)

WORKLOADS = ("mlp_step", "elementwise_grad", "tiny_call", "cnn_step", "gcn_step",
             "compile_mlp", "compile_ops")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", action="append", choices=WORKLOADS, metavar="NAME",
                   help=f"run only this workload (repeatable): {', '.join(WORKLOADS)}")
    p.add_argument("--framework", action="append", metavar="NAME",
                   help="run only this framework (repeatable; numpy still gives the reference)")
    p.add_argument("--quick", action="store_true", help="fewer repetitions, shorter runs")
    p.add_argument("--reps", type=int, help="repetitions per measurement")
    p.add_argument("--compile-budget", type=float, metavar="SECONDS",
                   help="time for compile_ops (default 240, --quick 120; 0: no limit)")
    p.add_argument("--keep-openblas-env", action="store_true",
                   help="do not remove OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE")
    p.add_argument("--threads", type=int,
                   help="threads for every library (OpenMP, OpenBLAS, MKL, XLA); default: "
                        "each library's own choice")
    p.add_argument("--pytensor-mode", default=None,
                   help="PyTensor compile mode (default CVM, its C backend; or NUMBA)")
    p.add_argument("--out-dir", default=os.path.join(HERE, "results"),
                   help="where latest.json and latest.md go")
    return p.parse_args(argv)


class Context:
    """What a workload's run() needs: settings, the framework filter, rows, a log."""

    def __init__(self, settings, quick, frameworks, compile_budget=None):
        self.settings, self.quick, self.frameworks = settings, quick, frameworks
        self.compile_budget = compile_budget
        import time
        self._time = time

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def row(self, workload, case, framework, status, *, timing=None, message="", note="",
            compile_seconds=None, check=None, detail=None) -> dict:
        from common import clean_message
        r = {"workload": workload, "case": case, "framework": framework, "status": status,
             "message": clean_message(message) if message else "", "note": note,
             "compile_seconds": compile_seconds, "check": check,
             "measured_at": self._time.strftime("%Y-%m-%dT%H:%M:%SZ", self._time.gmtime())}
        r.update(timing or {"median": None, "iqr": None})
        if detail:
            r["detail"] = detail
        return r


def run_workload(mod, ctx) -> list:
    """Every case x framework of a workload module with per-framework builders."""
    import copy
    from common import (FRAMEWORKS, Skip, compare, first_outputs, measure, clean_message)
    rows = []
    for case in mod.cases(ctx.quick):
        label = mod.label(case)
        data = mod.make_data(case)
        try:
            reference = first_outputs(mod.build_numpy(copy.deepcopy(data)), mod.CHECK_CALLS)
        except Exception as exc:  # the reference itself failed: run without checks
            ctx.log(f"  numpy reference failed: {exc}")
            reference = None
        for framework in FRAMEWORKS:
            if ctx.frameworks and framework not in ctx.frameworks:
                continue
            builder = mod.BUILDERS.get(framework)
            if builder is None:
                rows.append(ctx.row(mod.NAME, label, framework, "skipped",
                                    message="no version of this workload"))
                continue
            try:
                bench = builder(copy.deepcopy(data))
                outputs = first_outputs(bench, mod.CHECK_CALLS)
            except Skip as exc:
                rows.append(ctx.row(mod.NAME, label, framework, "skipped", message=str(exc)))
                ctx.log(f"  {label} {framework}: skipped ({exc})")
                continue
            except Exception as exc:
                status = "unsupported" if type(exc).__name__ == "UnsupportedError" else "error"
                message = f"{type(exc).__name__}: {exc}"
                rows.append(ctx.row(mod.NAME, label, framework, status, message=message))
                ctx.log(f"  {label} {framework}: {status}: {clean_message(message, 200)}")
                continue
            check = None
            if reference is not None:
                ok, worst = compare([a for call in reference for a in call],
                                    [a for call in outputs for a in call])
                check = {"ok": ok, "max_rel_diff": worst}
            timing = measure(bench.step, ctx.settings)
            note = bench.note
            cache = getattr(getattr(bench.compiled, "artifact", None), "cache", None)
            if cache in ("memory", "disk"):  # the same graph was compiled before in this run
                note = "; ".join(n for n in (note, f"compile time: a {cache} cache hit") if n)
            rows.append(ctx.row(mod.NAME, label, framework, "ok", timing=timing,
                                note=note, compile_seconds=bench.compile_seconds,
                                check=check))
            flag = "" if check is None or check["ok"] else "  MISMATCH"
            ctx.log(f"  {label} {framework}: {timing['median'] * 1e3:.3f} ms{flag}")
    return rows


def set_threads(n: int) -> None:
    """One thread count for all libraries; before any of them is imported (children
    inherit it). torch reads OMP_NUM_THREADS, JAX the XLA flags."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    flags = os.environ.get("XLA_FLAGS", "")
    extra = f"intra_op_parallelism_threads={n}"
    if n == 1:
        extra = "--xla_cpu_multi_thread_eigen=false " + extra
    os.environ["XLA_FLAGS"] = f"{flags} {extra}".strip()


def _merge(path, rows, names) -> list:
    """With --only, keep the earlier rows of the workloads not run this time."""
    import json
    if not os.path.exists(path):
        return rows
    try:
        with open(path) as f:
            old = json.load(f).get("results", [])
    except (OSError, ValueError):
        return rows
    return [r for r in old if r["workload"] not in names] + rows


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv) -> int:
    args = parse_args(argv[1:])
    openblas_env = strip_openblas_env(argv, args.keep_openblas_env)
    if args.pytensor_mode:
        os.environ["SG_BENCH_PYTENSOR_MODE"] = args.pytensor_mode
    if args.threads:
        set_threads(args.threads)
    load_at_start = os.getloadavg()
    # A private symgraph disk cache, so no workload is warm from an earlier run.
    import tempfile
    cache = tempfile.TemporaryDirectory(prefix="sg-bench-cache-")
    os.environ["SYMGRAPH_CACHE_DIR"] = cache.name

    import importlib
    import json
    import time
    import common
    import environment
    from report import markdown
    import peers

    settings = common.Settings.quick() if args.quick else common.Settings()
    if args.reps:
        settings.reps = args.reps
    ctx = Context(settings, args.quick, args.framework, args.compile_budget)
    names = args.only or list(WORKLOADS)
    rows, titles = [], {}
    started = time.perf_counter()
    for name in names:
        mod = importlib.import_module(f"workloads.{name}")
        titles[name] = mod.TITLE
        ctx.log(f"{name}: {mod.TITLE}")
        rows += mod.run(ctx) if hasattr(mod, "run") else run_workload(mod, ctx)
    ctx.log(f"done in {time.perf_counter() - started:.0f} s")

    result = {
        "schema": 1,
        "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "mode": "quick" if args.quick else "full",
        "settings": vars(settings),
        "threads": args.threads or "library defaults",
        "load_average": {"start": [round(v, 2) for v in load_at_start],
                         "end": [round(v, 2) for v in os.getloadavg()]},
        "workloads_run": names,
        "machine": environment.machine(),
        "versions": environment.versions(),
        "blas": environment.blas_kernels(),
        "openblas_env": openblas_env,
        "pytensor_mode": os.environ.get(peers.PYTENSOR_MODE_ENV, peers.DEFAULT_PYTENSOR_MODE),
        "git": environment.git_state(os.path.dirname(HERE)),
    }
    os.makedirs(args.out_dir, exist_ok=True)
    json_path = os.path.join(args.out_dir, "latest.json")
    result["results"] = _merge(json_path, rows, set(names)) if args.only else rows
    for name in WORKLOADS:
        if name not in titles and any(r["workload"] == name for r in result["results"]):
            titles[name] = importlib.import_module(f"workloads.{name}").TITLE
    _write(json_path, json.dumps(result, indent=1, default=str) + "\n")
    md = markdown(result, {n: titles[n] for n in WORKLOADS if n in titles})
    _write(os.path.join(args.out_dir, "latest.md"), md)
    print(md)
    cache.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
