"""The markdown table of a benchmark run: times, spreads and ratios against symgraph."""
from __future__ import annotations


def fmt_seconds(s) -> str:
    if s is None:
        return ""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def _ratio(row, base) -> str:
    if row["status"] != "ok" or base is None:
        return "-"
    return f"{row['median'] / base:.2f}"


def _status(row) -> str:
    if row["status"] == "ok":
        return fmt_seconds(row["median"])
    message = row.get("message") or ""
    return f"{row['status']}: {message}".replace("|", "/") if message else row["status"]


def _blas_lines(blas: dict) -> list:
    lines = []
    sg = blas.get("symgraph")
    if isinstance(sg, dict):
        lines.append(f"symgraph (scipy-openblas32): OpenBLAS kernel {sg.get('corename')}, "
                     f"{_threads(sg.get('threads'))}"
                     + (f"; generated loops on {_threads(sg['loop_threads'])} (libgomp)"
                        if sg.get("loop_threads") else ""))
    elif sg:
        lines.append(f"symgraph: {sg}")
    pools = blas.get("threadpoolctl")
    if isinstance(pools, list):
        for p in pools:
            if p.get("user_api") == "blas":
                lines.append(f"{p.get('shipped_by')}: {p.get('internal_api')} {p.get('version')}, "
                             f"kernel {p.get('architecture')}, {_threads(p.get('num_threads'))}")
    elif pools:
        lines.append(str(pools))
    if blas.get("torch"):
        lines.append(f"torch: {blas['torch']}")
    return lines


def _threads(n) -> str:
    return f"{n} thread{'s' if n != 1 else ''}"


def markdown(result: dict, titles: dict) -> str:
    m, v = result["machine"], result["versions"]
    out = ["# symgraph benchmarks", ""]
    out.append(f"{result['mode']} run ({result['settings']['reps']} repetitions after "
               f"{result['settings']['warmup']} warm-up calls; median and interquartile "
               f"range), {result['created']}, symgraph commit "
               f"{(result['git'].get('commit') or 'unknown')[:10]}"
               + (f" plus {result['git']['uncommitted_changes']} uncommitted file changes"
                  if result['git'].get('uncommitted_changes') else "") + ".")
    out.append("")
    out.append(f"- Machine: {m['cpu']}, {m['usable_cores']} cores usable "
               f"({', '.join(m['vector_extensions'])}), {m['system']}, Python {m['python']}")
    out.append("- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val))
    env = result["openblas_env"]
    if env.get("kept"):
        out.append(f"- OpenBLAS environment kept as found: {env.get('present') or 'none set'}")
    else:
        out.append("- OpenBLAS environment: " + (f"removed {env['removed']} for this run"
                                                 if env.get("removed") else
                                                 "OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE not set"))
    for line in _blas_lines(result["blas"]):
        out.append(f"- BLAS: {line}")
    out.append(f"- Threads: {result.get('threads', 'library defaults')}; PyTensor mode: "
               f"{result['pytensor_mode']}")
    load = result.get("load_average")
    if load:
        out.append(f"- Load average (1, 5, 15 min) at start {load['start']}, at end {load['end']}")
        if max(load["start"][0], load["end"][0]) > (m.get("usable_cores") or 1):
            out.append("- **The machine was busy with other work during this run** (load above "
                       "the core count): absolute times are inflated and noisy, and "
                       "multi-threaded libraries suffer most.")
    out += ["", "`x symgraph` is a framework's median divided by symgraph's: above 1, "
            "symgraph is faster. IQR is the interquartile range (the full range below four "
            "measurements). `compile` is the time to build the callable. `check` compares the first outputs (for training steps, the "
            "first two losses) with the hand-written numpy version.", ""]
    out.append("| workload | case | framework | median | IQR | x symgraph | compile | check | note |")
    out.append("| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- |")
    rows = result["results"]
    for workload in dict.fromkeys(r["workload"] for r in rows):
        for case in dict.fromkeys(r["case"] for r in rows if r["workload"] == workload):
            group = [r for r in rows if r["workload"] == workload and r["case"] == case]
            base = next((r["median"] for r in group
                         if r["framework"] == "symgraph" and r["status"] == "ok"), None)
            for r in group:
                check = r.get("check") or {}
                check_text = ("" if not check else
                              ("ok" if check["ok"] else "MISMATCH")
                              + f" ({check['max_rel_diff']:.1e})")
                out.append("| " + " | ".join([
                    workload, case, r["framework"], _status(r),
                    fmt_seconds(r.get("iqr")) if r["status"] == "ok" else "",
                    _ratio(r, base), fmt_seconds(r.get("compile_seconds")), check_text,
                    (r.get("note") or "").replace("|", "/")]) + " |")
    out += ["", "## Workloads", ""]
    for name, title in titles.items():
        if any(r["workload"] == name for r in rows):
            out.append(f"- `{name}`: {title}")
    out.append("")
    return "\n".join(out)
