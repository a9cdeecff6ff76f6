"""The installed layout: one top-level package, ``symgraph``, with compiler/ and runtime/
inside it as ``symgraph.compiler`` and ``symgraph.runtime``.

The wheel test builds from a copy of the source tree (a stale build/ directory in the
checkout cannot leak into it), installs the wheel into a scratch venv that borrows
numpy, networkx and llvmlite from this environment, and imports from outside the repo.
"""
import importlib
import importlib.metadata
import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap
import urllib.parse
import urllib.request
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
ROOTS = {"symgraph": "symgraph", "symgraph/compiler": "compiler", "symgraph/runtime": "runtime"}
# Import names that differ from the distribution name with "-" -> "_".
IMPORT_NAMES = {}


def _source_modules(tree):
    """Installed path of every .py file under the three source roots of ``tree``."""
    out = set()
    for installed, src in ROOTS.items():
        for path in (tree / src).rglob("*.py"):
            rel = path.relative_to(tree / src)
            if any(p == "__pycache__" or not p.isidentifier() for p in rel.parts[:-1]):
                continue
            out.add(f"{installed}/{rel.as_posix()}")
    return out


def _run(cmd, cwd, timeout=120, env=None):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                       timeout=timeout, env=env)
    assert r.returncode == 0, (f"{' '.join(map(str, cmd))} exited {r.returncode}\n"
                               f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
    return r.stdout


def _requirements(wheel):
    """Import names of the wheel's unconditional Requires-Dist entries."""
    with zipfile.ZipFile(wheel) as z:
        (meta,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        lines = z.read(meta).decode().splitlines()
    names = []
    for line in lines:
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            dist = re.match(r"[A-Za-z0-9._-]+", line.split(":", 1)[1].strip()).group(0)
            names.append(IMPORT_NAMES.get(dist.lower(), dist.lower().replace("-", "_")))
    return names


def _import_root(module):
    """The sys.path entry ``module`` was imported from."""
    path = pathlib.Path(importlib.import_module(module).__file__).resolve()
    return path.parent.parent if path.stem == "__init__" else path.parent


def _clean_env():
    """The environment without variables that would put the repo on sys.path."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(wheel, source copy): built from a snapshot, so concurrent edits can't race the checks."""
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools (test extra)")
    src = tmp_path_factory.mktemp("src")
    for item in REPO.iterdir():  # top-level files (pyproject, setup.py, README ...) and the roots
        if item.is_file():
            shutil.copy2(item, src / item.name)
    for d in ROOTS.values():
        shutil.copytree(REPO / d, src / d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "-q", "-w", dist, src], cwd=src, env=_clean_env())
    (whl,) = dist.glob("symgraph-*.whl")
    return whl, src


@pytest.mark.packaging
def test_wheel_holds_one_top_level_package_with_every_module(built):
    wheel, src = built
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"symgraph"}, f"unexpected top-level entries: {sorted(top)}"
    missing = _source_modules(src) - set(names)  # the copy it was built from
    assert not missing, f"modules in the source tree but not in the wheel: {sorted(missing)}"
    (info,) = dist_info
    if f"{info}/top_level.txt" in names:
        top_level = zipfile.ZipFile(wheel).read(f"{info}/top_level.txt").decode().split()
        assert top_level == ["symgraph"]


@pytest.mark.packaging
def test_wheel_installs_and_runs_outside_the_repo(built, tmp_path):
    wheel, _ = built
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv],
         cwd=tmp_path)
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index",
          "-q", wheel], cwd=tmp_path, env=_clean_env())
    # Dependencies come from this environment, not from a download: a .pth file appends
    # the directories they were imported from (after the venv's own site-packages).
    deps = _requirements(wheel)
    assert {"numpy", "networkx", "llvmlite"} <= set(deps), deps
    dep_dirs = sorted({str(_import_root(m)) for m in deps})
    site = _run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                cwd=tmp_path).strip()
    (pathlib.Path(site) / "symgraph_test_deps.pth").write_text("\n".join(dep_dirs) + "\n")

    script = textwrap.dedent("""
        import importlib.util, json, pathlib, sys
        import numpy as np
        import symgraph as sg, symgraph.compiler, symgraph.runtime
        for dep in sys.argv[1:]:
            __import__(dep)
        x = sg.placeholder(shape=(None, 3), dtype="float64", name="x")
        w = sg.shared(np.array([1.0, 2.0, 3.0]), name="w")
        loss = sg.sum(sg.exp(x * w))
        (gw,) = sg.grad(loss, [w])
        runs = {}
        for mode in sys.modules["symgraph.function"].MODES:  # native code too, once it exists
            w.set_value(np.array([1.0, 2.0, 3.0]))
            f = sg.function([x], [loss, gw], updates=[(w, w - 0.01 * gw)], mode=mode)
            value, grad = f(np.ones((2, 3)))
            runs[mode] = {"value": float(value), "grad": grad.tolist(),
                          "w": w.get_value().tolist()}
        print(json.dumps({
            "symgraph": sg.__file__,
            "compiler": symgraph.compiler.__file__,
            "runtime": symgraph.runtime.__file__,
            "top_compiler": importlib.util.find_spec("compiler") is not None,
            "top_runtime": importlib.util.find_spec("runtime") is not None,
            "runs": runs,
        }))
    """)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    got = json.loads(_run([py, "-c", script, *deps], cwd=outside,
                          env=_clean_env()).splitlines()[-1])
    for key in ("symgraph", "compiler", "runtime"):
        path = pathlib.Path(got[key]).resolve()
        assert path.is_relative_to(pathlib.Path(site).resolve()), f"{key} imported from {path}"
        assert not path.is_relative_to(REPO), f"{key} imported from the repo: {path}"
    assert not got["top_compiler"], "`import compiler` works in the installed environment"
    assert not got["top_runtime"], "`import runtime` works in the installed environment"
    e = [1.0, 2.0, 3.0]
    want_grad = [2 * math.exp(v) for v in e]
    assert "reference" in got["runs"], got["runs"]
    for mode, run in got["runs"].items():
        assert run["value"] == pytest.approx(2 * sum(math.exp(v) for v in e)), mode
        assert run["grad"] == pytest.approx(want_grad), mode
        assert run["w"] == pytest.approx([v - 0.01 * g for v, g in zip(e, want_grad)]), mode


def _editable_here():
    """Whether this environment has symgraph installed editable from this checkout.

    From the repo root a bare symgraph.egg-info is found first, so look at every copy.
    """
    for dist in importlib.metadata.distributions(name="symgraph"):
        info = json.loads(dist.read_text("direct_url.json") or "{}")
        url = urllib.parse.urlparse(info.get("url", ""))
        if url.scheme == "file" and info.get("dir_info", {}).get("editable", False):
            if pathlib.Path(urllib.request.url2pathname(url.path)).resolve() == REPO:
                return True
    return False


@pytest.mark.skipif(not _editable_here(), reason="symgraph is not installed editable from here")
def test_editable_install_maps_subpackages_to_the_repo(tmp_path):
    script = textwrap.dedent("""
        import importlib.util, json
        import symgraph, symgraph.compiler, symgraph.runtime
        print(json.dumps({
            "symgraph": symgraph.__file__,
            "compiler": symgraph.compiler.__file__,
            "runtime": symgraph.runtime.__file__,
            "top_compiler": importlib.util.find_spec("compiler") is not None,
            "top_runtime": importlib.util.find_spec("runtime") is not None,
        }))
    """)
    got = json.loads(_run([sys.executable, "-c", script], cwd=tmp_path,
                          env=_clean_env()).splitlines()[-1])
    assert pathlib.Path(got["symgraph"]).resolve() == REPO / "symgraph" / "__init__.py"
    assert pathlib.Path(got["compiler"]).resolve() == REPO / "compiler" / "__init__.py"
    assert pathlib.Path(got["runtime"]).resolve() == REPO / "runtime" / "__init__.py"
    assert not got["top_compiler"] and not got["top_runtime"]
