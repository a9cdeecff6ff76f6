"""Linking an object into a shared library, so a warm process can load it without LLVM.

Loading a cached object takes an LLVM JIT, and importing llvmlite alone costs more than
the whole budget of a warm ``sg.function`` (tens of milliseconds). A shared library is
loaded by the system's dynamic loader in a fraction of a millisecond. llvmlite has no
linker, so the system's ``ld`` is used when there is one (``$SYMGRAPH_LINKER`` names
another, ``off`` disables linking); without it, or when it fails, the cache keeps the
object alone and the runtime loads that with the JIT.

The library records the libraries its external symbols come from (OpenBLAS, libgomp)
by their sonames; the runtime opens those first, so the loader finds them already
loaded, whatever directory they came from.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile


@functools.lru_cache(maxsize=None)
def linker():
    """The path of the linker to run, or None."""
    name = os.environ.get("SYMGRAPH_LINKER", "ld").strip()
    if name.lower() in ("", "off", "0", "none"):
        return None
    return shutil.which(name)


def link_shared(obj: bytes, external=()) -> bytes | None:
    """The bytes of a shared library made of ``obj``, or None when it cannot be made."""
    ld = linker()
    if ld is None:
        return None
    try:
        from symgraph.runtime.externals import link_arguments
        libs = link_arguments(list(external))
    except (OSError, RuntimeError, ImportError):
        return None
    with tempfile.TemporaryDirectory(prefix="symgraph-link-") as d:
        src, out = os.path.join(d, "code.o"), os.path.join(d, "code.so")
        with open(src, "wb") as f:
            f.write(obj)
        # -Bsymbolic: the library's own calls never bind to another library's symbols;
        # noexecstack: glibc refuses to dlopen a library asking for an executable stack.
        cmd = [ld, "-shared", "-Bsymbolic", "-z", "noexecstack", "-o", out, src, *libs]
        try:
            r = subprocess.run(cmd, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return None
        if r.returncode != 0:
            return None
        try:
            with open(out, "rb") as f:
                return f.read()
        except OSError:
            return None
