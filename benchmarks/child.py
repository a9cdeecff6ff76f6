"""Runs one measurement in a fresh process, for compile times that must start cold.

    python benchmarks/child.py <workload module> '<json spec>'

calls ``workloads.<module>.child(spec)`` and prints its dict as the last line of
stdout, as JSON. The parent (:func:`run_child`) reads it back.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MARK = "SG_BENCH_RESULT "


def run_child(module: str, spec: dict, *, env_updates: dict | None = None,
              timeout: float = 600) -> dict:
    """The dict the child returned, or {"status": "error"/"timeout", "message": ...}."""
    env = dict(os.environ)
    for k, v in (env_updates or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    try:
        proc = subprocess.run([sys.executable, os.path.join(HERE, "child.py"), module,
                               json.dumps(spec)], capture_output=True, text=True, env=env,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "message": f"no result after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"status": "error", "message": f"child exited with {proc.returncode}: {tail}"}


def main(argv):
    sys.path.insert(0, HERE)
    import importlib
    from common import clean_message
    module = importlib.import_module(f"workloads.{argv[1]}")
    spec = json.loads(argv[2])
    try:
        result = module.child(spec)
    except Exception as exc:
        status = "unsupported" if type(exc).__name__ == "UnsupportedError" else "error"
        result = {"status": status, "message": clean_message(f"{type(exc).__name__}: {exc}")}
    print(MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv)
