"""Linking an object into a shared library, so a warm process can load it without LLVM.

Loading a cached object takes an LLVM JIT, and importing llvmlite alone costs more than
the whole budget of a warm ``sg.function`` (tens of milliseconds). A shared library is
loaded by the system's dynamic loader in a fraction of a millisecond. llvmlite has no
linker, so the system's ``ld`` is used when there is one (``$SYMGRAPH_LINKER`` names
another, ``off`` disables linking); without it, or when it fails, the cache keeps the
object alone and the runtime loads that with the JIT.

The library records the libraries its external symbols come from (OpenBLAS, libgomp)
by their sonames; the runtime opens those first, so the loader finds them already
loaded, whatever directory they came from. OpenBLAS is 30 MB of symbols that ld would
read on every link (three quarters of its time), so ld is given an empty stand-in with
the same soname instead: the dependency is recorded, the symbols stay undefined (as a
shared library may leave them) and are bound to the real library when it is loaded.

A compile links in a background thread (compiler/cache.py), so nothing here may use
LLVM except through ``prepare``, on the compiling thread.
"""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
import threading

from symgraph.runtime.objects import unpack


@functools.lru_cache(maxsize=None)
def linker():
    """The path of the linker to run, or None."""
    name = os.environ.get("SYMGRAPH_LINKER", "ld").strip()
    if name.lower() in ("", "off", "0", "none"):
        return None
    return shutil.which(name)


def _run(cmd) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


_stand_ins: dict = {}  # soname -> path of its stand-in, or None if it could not be made
_stand_in_lock = threading.Lock()


@functools.lru_cache(maxsize=None)
def _scratch_dir() -> str:
    """This process's directory for stand-ins and link inputs and outputs, removed at
    exit. Made by ``prepare`` on the compiling thread, before the cache registers its
    exit handler that waits for pending links: handlers run last-registered first, so
    the directory outlives the links. (A TemporaryDirectory per link would not: its
    cleanup at exit may be registered after, and run before, that handler.)"""
    d = tempfile.mkdtemp(prefix="symgraph-link-")
    atexit.register(_remove, d, os.getpid())
    return d


def _remove(d: str, owner: int) -> None:
    if os.getpid() == owner:  # a forked child inherits the handler, not the directory
        shutil.rmtree(d, ignore_errors=True)


def _stand_in(soname: str, *, llvm_ok: bool) -> str | None:
    """The path of an empty shared library called ``soname``, made once per process.

    Its empty object comes from the assembler (``as``, next to ``ld`` in binutils), or
    from LLVM when ``llvm_ok``: LLVM's context is not for background threads."""
    with _stand_in_lock:
        if soname in _stand_ins:
            return _stand_ins[soname]
        d = _scratch_dir()
        empty, out = os.path.join(d, "empty.o"), os.path.join(d, soname)
        asm = shutil.which("as")
        if asm is None or not _run([asm, "-o", empty, os.devnull]):
            if not llvm_ok:
                return None
            from .target import emit_object, llvm
            with open(empty, "wb") as f:
                f.write(emit_object(llvm().parse_assembly("")))
        ok = _run([linker(), "-shared", "-soname", soname, "-o", out, empty])
        _stand_ins[soname] = out if ok else None
        return _stand_ins[soname]


def _library_arguments(external, *, llvm_ok: bool) -> list:
    """ld arguments for the libraries defining ``external``, big ones by a stand-in."""
    from symgraph.runtime.externals import link_arguments
    out = []
    for arg in link_arguments(list(external)):
        if os.path.isabs(arg):
            arg = _stand_in(os.path.basename(arg), llvm_ok=llvm_ok) or arg
        out.append(arg)
    return out


def prepare(external=()) -> None:
    """On the compiling thread, before linking on another: the stand-ins' directory,
    and the stand-ins themselves if making them takes LLVM (no assembler)."""
    if linker() is None:
        return
    _scratch_dir()
    if shutil.which("as") is None:
        try:
            _library_arguments(external, llvm_ok=True)
        except (OSError, RuntimeError, ImportError):
            pass


def link_shared(obj: bytes, external=()) -> bytes | None:
    """The bytes of a shared library made of ``obj`` (an object, or a bundle of them:
    runtime/objects.py), or None when it cannot be made."""
    ld = linker()
    if ld is None:
        return None
    try:
        libs = _library_arguments(external, llvm_ok=False)
    except (OSError, RuntimeError, ImportError):
        return None
    try:
        fd, out = tempfile.mkstemp(suffix=".so", dir=_scratch_dir())
    except OSError:
        return None
    os.close(fd)
    srcs = []
    try:
        for k, part in enumerate(unpack(obj)):  # the parts of a module compiled apart
            srcs.append(f"{out[:-3]}.{k}.o")
            with open(srcs[-1], "wb") as f:
                f.write(part)
        # -Bsymbolic: the library's own calls never bind to another library's symbols;
        # noexecstack: glibc refuses to dlopen a library asking for an executable stack.
        if not _run([ld, "-shared", "-Bsymbolic", "-z", "noexecstack", "-o", out, *srcs,
                     *libs]):
            return None
        with open(out, "rb") as f:
            return f.read()
    except (OSError, ValueError):
        return None
    finally:
        for path in (*srcs, out):
            try:
                os.unlink(path)
            except OSError:
                pass

