"""What every workload shares: the timing helper, the framework table, result checks.

A workload module builds one callable per framework (``build_<framework>(data)``);
the runner times each with :func:`measure` and compares its first outputs with the
numpy version's, so that a fast but wrong step never looks like a win.
"""
from __future__ import annotations

import gc
import importlib
import importlib.util
import os
import re
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

FRAMEWORKS = ("symgraph", "numpy", "torch", "jax", "pytensor")
PEERS = ("torch", "jax", "pytensor")  # optional: the `bench` extra installs them


class Skip(Exception):
    """A framework cannot run this workload (not installed, no such op ...): a note, not an error."""


@dataclass
class Bench:
    """One framework's version of a workload case: ``step()`` does one synchronous call
    (JAX builders call block_until_ready inside it) and returns the outputs."""

    step: Callable[[], Any]
    compile_seconds: float | None = None   # building/compiling the callable, where there is one
    note: str = ""
    compiled: Any = None                   # the compiled function, for inspection


@dataclass
class Settings:
    """How hard to measure: warm-up calls, repetitions, and the shortest repetition
    (fast calls are looped inside one repetition until it lasts that long)."""

    warmup: int = 3
    reps: int = 15
    min_rep_seconds: float = 0.05

    @classmethod
    def quick(cls):
        return cls(warmup=2, reps=7, min_rep_seconds=0.02)


def measure(step: Callable[[], Any], settings: Settings) -> dict:
    """Median and interquartile range of the seconds one ``step()`` takes.

    Warm-up calls first; then each repetition runs ``inner`` calls back to back
    (``inner`` chosen so a repetition lasts at least ``min_rep_seconds``) and counts
    its mean. The garbage collector is off while repetitions run, as in timeit.
    """
    for _ in range(settings.warmup):
        step()
    t0 = time.perf_counter()
    step()
    one = time.perf_counter() - t0
    inner = max(1, min(100_000, int(settings.min_rep_seconds / max(one, 1e-7))))
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        times = []
        for _ in range(settings.reps):
            t0 = time.perf_counter()
            for _ in range(inner):
                step()
            times.append((time.perf_counter() - t0) / inner)
    finally:
        if was_enabled:
            gc.enable()
    return summarize(times, inner=inner)


def summarize(times, *, inner: int = 1) -> dict:
    """The statistics a result records from a list of seconds."""
    times = sorted(times)
    if len(times) >= 4:
        q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
        iqr = q3 - q1
    else:   # too few for quartiles: the full range, or nothing for one measurement
        iqr = times[-1] - times[0] if len(times) > 1 else None
    return {"median": statistics.median(times), "iqr": iqr, "min": times[0],
            "max": times[-1], "reps": len(times), "inner": inner}


# -- frameworks ---------------------------------------------------------------------------
def framework_module(name: str):
    """The imported top-level module of a framework, or raise Skip when it is not installed."""
    module = {"symgraph": "symgraph", "numpy": "numpy", "torch": "torch", "jax": "jax",
              "pytensor": "pytensor"}[name]
    if importlib.util.find_spec(module) is None:
        raise Skip(f"{name} not installed (pip install -e '.[bench]')")
    try:
        return importlib.import_module(module)
    except Exception as exc:  # a broken install is a note too, not a crash
        raise Skip(f"{name} fails to import: {type(exc).__name__}: {exc}") from None


# -- checking results ----------------------------------------------------------------------
def as_arrays(out) -> list:
    """Outputs of any framework as a flat list of float64 numpy arrays."""
    items = out if isinstance(out, (tuple, list)) else [out]
    arrays = []
    for item in items:
        if hasattr(item, "detach"):          # torch
            item = item.detach().cpu().numpy()
        arrays.append(np.asarray(item, dtype=np.float64))
    return arrays


def compare(reference: list, got: list, *, rtol: float = 2e-3) -> tuple[bool, float]:
    """(agree, largest difference relative to the reference's magnitude) of two output
    lists. float32 sums in another order differ by more than one ulp, hence the slack."""
    if len(reference) != len(got):
        return False, float("inf")
    worst = 0.0
    for r, g in zip(reference, got):
        if r.shape != g.shape:
            return False, float("inf")
        if not np.all(np.isfinite(g)):
            return False, float("inf")
        scale = max(float(np.max(np.abs(r))) if r.size else 0.0, 1e-6)
        diff = float(np.max(np.abs(r - g))) if r.size else 0.0
        worst = max(worst, diff / scale)
    return worst <= rtol, worst


def first_outputs(bench: Bench, n: int) -> list:
    """The outputs of the first ``n`` calls (for training steps, the second call shows
    whether the first update was right)."""
    return [as_arrays(bench.step()) for _ in range(n)]


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PATH = re.compile(r"(?<![\w.])(?:/[\w.+@-]+)+/([\w.+@-]+)")


def clean_message(message: str, limit: int = 300) -> str:
    """An error message fit for the committed results: file paths shortened to the
    repository-relative path or the file name, one line, bounded length."""
    message = message.replace(_REPO + os.sep, "")
    message = _PATH.sub(r"\1", message)
    message = " ".join(message.split())
    return message if len(message) <= limit else message[:limit - 3] + "..."
