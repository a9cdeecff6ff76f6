"""Package layout for setuptools; all metadata lives in pyproject.toml.

The repository keeps compiler/ and runtime/ at the top level, but installed they are
``symgraph.compiler`` and ``symgraph.runtime``: no generic top-level module lands in
site-packages. Packages are discovered here, so a new subpackage under any of the three
roots (with or without an ``__init__.py``) is installed without editing a list;
tests/test_packaging.py checks the wheel against the source tree.
"""
import os

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
ROOTS = {"symgraph": "symgraph", "symgraph.compiler": "compiler", "symgraph.runtime": "runtime"}


def discover(package, directory):
    """``package`` and every subdirectory of ``directory`` that holds Python files."""
    for dirpath, dirnames, filenames in os.walk(os.path.join(HERE, directory)):
        dirnames[:] = sorted(d for d in dirnames if d.isidentifier() and d != "__pycache__")
        if any(f.endswith(".py") for f in filenames):
            rel = os.path.relpath(dirpath, os.path.join(HERE, directory))
            yield package if rel == os.curdir else f"{package}.{rel.replace(os.sep, '.')}"


setup(
    package_dir=dict(ROOTS),
    packages=sorted(p for package, d in ROOTS.items() for p in discover(package, d)),
)
