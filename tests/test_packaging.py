"""The installed layout: one top-level package, ``symgraph``, with compiler/ and runtime/
inside it as ``symgraph.compiler`` and ``symgraph.runtime``.

The wheel test builds from a copy of the source tree (a stale build/ directory in the
checkout cannot leak into it), installs the wheel into a scratch venv that borrows
numpy, networkx and llvmlite from this environment, and imports from outside the repo.
"""
import importlib.metadata
import json
import math
import os
import pathlib
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
DEPS = ("numpy", "networkx", "llvmlite")


def _source_modules():
    """Installed path of every .py file under the three source roots."""
    out = set()
    for installed, src in ROOTS.items():
        for path in (REPO / src).rglob("*.py"):
            rel = path.relative_to(REPO / src)
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


def _clean_env():
    """The environment without variables that would put the repo on sys.path."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
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
    return whl


@pytest.mark.packaging
def test_wheel_holds_one_top_level_package_with_every_module(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"symgraph"}, f"unexpected top-level entries: {sorted(top)}"
    missing = _source_modules() - set(names)
    assert not missing, f"modules in the source tree but not in the wheel: {sorted(missing)}"
    (info,) = dist_info
    if f"{info}/top_level.txt" in names:
        top_level = zipfile.ZipFile(wheel).read(f"{info}/top_level.txt").decode().split()
        assert top_level == ["symgraph"]


@pytest.mark.packaging
def test_wheel_installs_and_runs_outside_the_repo(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv],
         cwd=tmp_path)
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index",
          "-q", wheel], cwd=tmp_path, env=_clean_env())
    # Dependencies come from this environment, not from a download: a .pth file appends
    # the directories they were imported from (after the venv's own site-packages).
    dep_dirs = sorted({str(pathlib.Path(__import__(m).__file__).resolve().parent.parent)
                       for m in DEPS})
    site = _run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                cwd=tmp_path).strip()
    (pathlib.Path(site) / "symgraph_test_deps.pth").write_text("\n".join(dep_dirs) + "\n")

    script = textwrap.dedent("""
        import importlib.util, json, pathlib, sys
        import numpy as np
        import symgraph as sg, symgraph.compiler, symgraph.runtime
        x = sg.placeholder(shape=(None, 3), dtype="float64", name="x")
        w = sg.shared(np.array([1.0, 2.0, 3.0]), name="w")
        loss = sg.sum(sg.exp(x * w))
        (gw,) = sg.grad(loss, [w])
        f = sg.function([x], [loss, gw], updates=[(w, w - 0.01 * gw)])
        value, grad = f(np.ones((2, 3)))
        print(json.dumps({
            "symgraph": sg.__file__,
            "compiler": symgraph.compiler.__file__,
            "runtime": symgraph.runtime.__file__,
            "top_compiler": importlib.util.find_spec("compiler") is not None,
            "top_runtime": importlib.util.find_spec("runtime") is not None,
            "value": float(value), "grad": grad.tolist(), "w": w.get_value().tolist(),
        }))
    """)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    got = json.loads(_run([py, "-c", script], cwd=outside, env=_clean_env()).splitlines()[-1])
    for key in ("symgraph", "compiler", "runtime"):
        path = pathlib.Path(got[key]).resolve()
        assert path.is_relative_to(pathlib.Path(site).resolve()), f"{key} imported from {path}"
        assert not path.is_relative_to(REPO), f"{key} imported from the repo: {path}"
    assert not got["top_compiler"], "`import compiler` works in the installed environment"
    assert not got["top_runtime"], "`import runtime` works in the installed environment"
    e = [1.0, 2.0, 3.0]
    want_grad = [2 * math.exp(v) for v in e]
    assert got["value"] == pytest.approx(2 * sum(math.exp(v) for v in e))
    assert got["grad"] == pytest.approx(want_grad)
    assert got["w"] == pytest.approx([v - 0.01 * g for v, g in zip(e, want_grad)])


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


@pytest.mark.skipif(not _editable_here(), reason="symgraph is not installed editable from this repo")
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
