"""What a result depends on besides the code: machine, library versions, BLAS kernels.

Nothing here records a file system path: library files are named by the package
that ships them.
"""
from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from importlib import metadata

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
DISTRIBUTIONS = ("symgraph", "numpy", "llvmlite", "networkx", "scipy-openblas32", "torch",
                 "jax", "jaxlib", "pytensor", "numba", "threadpoolctl")


def machine() -> dict:
    """CPU model, core count and the vector extensions that matter for the kernels."""
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "vector_extensions": sorted(f for f in flags
                                    if f in ("sse4_2", "avx", "avx2", "fma", "avx512f",
                                             "avx512bw", "avx512vl", "avx512_bf16")),
        "system": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
    }


def versions() -> dict:
    out = {}
    for dist in DISTRIBUTIONS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _owner(filepath: str) -> str:
    """Which package shipped a loaded library, from its location (the path is not kept)."""
    parts = filepath.replace("\\", "/").split("/")
    for part in reversed(parts[:-1]):
        if part.endswith(".libs"):
            return part[:-len(".libs")]
        if part in ("site-packages", "dist-packages", "lib", "lib64", "usr"):
            continue
        if part and not part.startswith("python3"):
            return part
    return "system"


def blas_kernels() -> dict:
    """The BLAS and thread pools loaded in this process and which kernel each runs.

    threadpoolctl reports numpy's and torch's libraries ('internal_api', 'architecture');
    symgraph's own OpenBLAS also answers through ``symgraph.runtime.externals.blas_info``.
    """
    out = {"threadpoolctl": None, "symgraph": None}
    import importlib.util
    for module in ("numpy", "torch"):  # load them, so that their libraries are listed
        if importlib.util.find_spec(module) is not None:
            try:
                __import__(module)
            except Exception:
                pass
    try:
        from threadpoolctl import threadpool_info
        pools = []
        for info in threadpool_info():
            entry = {k: info.get(k) for k in ("user_api", "internal_api", "prefix", "version",
                                              "architecture", "threading_layer", "num_threads")}
            entry["shipped_by"] = _owner(info.get("filepath", ""))
            pools.append(entry)
        out["threadpoolctl"] = pools
    except ImportError:
        out["threadpoolctl"] = "threadpoolctl not installed"
    torch = sys.modules.get("torch")
    if torch is not None:
        try:  # torch links its BLAS statically: threadpoolctl does not see it
            found = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
            out["torch"] = (f"BLAS {found.group(1) if found else '?'}, CPU capability "
                            f"{torch.backends.cpu.get_cpu_capability()}, "
                            f"intra-op threads {torch.get_num_threads()}")
        except Exception as exc:
            out["torch"] = f"unavailable: {type(exc).__name__}"
    try:
        from symgraph.runtime.externals import blas_info
        from symgraph.runtime.threads import num_threads, parallel_code_wanted
        out["symgraph"] = blas_info()
        out["symgraph"]["loop_threads"] = num_threads() if parallel_code_wanted() else 1
    except Exception as exc:  # an older symgraph without it, or no BLAS yet
        out["symgraph"] = f"unavailable: {type(exc).__name__}: {exc}"
    return out


def git_state(repo: str) -> dict:
    def git(*args):
        return subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        changed = [line for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
                   if line.strip()]
        return {"commit": commit or None, "uncommitted_changes": len(changed)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "uncommitted_changes": None}


def strip_openblas_env(argv, keep: bool):
    """Re-exec this script without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (they pin OpenBLAS
    to older kernels) unless ``keep``; must run before numpy is imported. Returns the
    record of what was done (the runner passes it to the re-executed process)."""
    present = {k: os.environ[k] for k in OPENBLAS_VARS if k in os.environ}
    if keep or not present:
        return {"kept": keep, "removed": os.environ.get("SG_BENCH_REMOVED_OPENBLAS_ENV", ""),
                "present": present}
    env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARS}
    env["SG_BENCH_REMOVED_OPENBLAS_ENV"] = ",".join(f"{k}={v}" for k, v in present.items())
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *argv], env)
