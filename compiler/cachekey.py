"""Cache keys: everything that decides the machine code (and the messages) of a compile.

A key hashes a Program with its nodes numbered canonically (topological order of the
roots, then inputs nothing reads), so equal graphs built in different processes get
equal keys. Each node contributes its op (constants by their bytes), type, name, inputs,
call-time checks and the user's source line (they appear in error messages). Around
the graph go the versions of symgraph, llvmlite, Python and the artifact format, a
digest of symgraph's own source files (an edited rewrite or code generator never
reuses an old entry) and the host CPU (host_id).

The same function keys two programs: the one as built (looked up before any rewrite
runs, so a warm ``sg.function`` skips the pipeline) and the optimized one.
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from symgraph.ops.leaves import Constant
from . import target
from .build import FORMAT_VERSION
from .gcpause import paused_gc

# The packages whose sources decide what a compile produces: front end (ops, folding
# references), compiler (rewrites, lowering) and runtime (what reads the manifest).
_PACKAGES = ("symgraph", "symgraph.compiler", "symgraph.runtime")


def versions() -> str:
    return _static_versions() + _parallel_tag() + _codegen_tag()


def _codegen_tag() -> str:
    """The code generator's switches that change the code it makes (tests set them:
    a build made with other settings must not be a hit). The code generator is not
    imported for this: a switch of a module not imported yet has its default."""
    import sys
    tag = ""
    for module, switch in (("target", "BIG_MODULE_FUNCTIONS"), ("lowerings", "VECTOR_KERNELS")):
        m = sys.modules.get(f"{__package__}.{module}")
        if m is not None and getattr(m, switch) != getattr(m, "DEFAULT_" + switch):
            tag += f"|{switch} {getattr(m, switch)}"
    return tag


def _parallel_tag() -> str:
    from symgraph.runtime.threads import parallel_code_wanted
    return f"|parallel {parallel_code_wanted()}"


# Fields of /proc/cpuinfo that identify what the CPU can run (not its clock or core).
_CPUINFO_FIELDS = ("vendor_id", "cpu family", "model", "model name", "stepping", "flags")


@functools.lru_cache(maxsize=None)
def host_id() -> str:
    """The host CPU, cheaply: the first processor's identity and flags in /proc/cpuinfo
    (no need to load LLVM to look an entry up), else LLVM's name and features. With
    the llvmlite version in the key, it decides LLVM's host CPU and features."""
    import platform
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break
                name, _, value = line.partition(":")
                if name.strip() in _CPUINFO_FIELDS:
                    fields[name.strip()] = value.strip()
    except OSError:
        pass
    if "flags" not in fields:
        return "llvm|" + target.cpu_fingerprint()
    text = "|".join(f"{k}={fields.get(k, '')}" for k in _CPUINFO_FIELDS)
    return f"{platform.machine()}|" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@functools.lru_cache(maxsize=None)
def _static_versions() -> str:
    import sys
    import symgraph
    from llvmlite import __version__ as llvmlite_version
    return (f"symgraph {symgraph.__version__}|llvmlite {llvmlite_version}|"
            f"python {sys.version_info[0]}.{sys.version_info[1]}|"
            f"format {FORMAT_VERSION}|sources {sources_digest()}")


def _source_files() -> list:
    """(path, stat) of every .py file of the packages, in a fixed order."""
    import importlib
    out, seen = [], set()
    for name in _PACKAGES:
        stack = [Path(importlib.import_module(name).__file__).resolve().parent]
        while stack:
            d = stack.pop()
            if d in seen:  # installed, the compiler and runtime live inside symgraph/
                continue
            seen.add(d)
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
            for e in entries:
                if e.is_dir(follow_symlinks=False) and e.name != "__pycache__":
                    stack.append(Path(e.path))
                elif e.name.endswith(".py"):
                    out.append((e.path, e.stat()))
    return out


@functools.lru_cache(maxsize=None)
def sources_digest() -> str:
    """A digest of symgraph's sources by their names, sizes and modification times.

    Reading and hashing the contents (~400 kB in ~70 files) costs several milliseconds,
    a large share of a cold ``sg.function``; a stat of each file costs one. An edit
    changes the modification time, so it changes the digest; touching a file without
    changing it only costs a recompile.
    """
    h = hashlib.blake2b(digest_size=8)
    for path, st in _source_files():
        h.update(f"{os.path.basename(path)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def canonical_order(program) -> list:
    """The program's nodes in topological order, then inputs nothing depends on."""
    order = program.order()
    seen = set(order)
    order.extend(n for n in program.inputs if n not in seen)
    return order


@paused_gc()
def program_key(program, extra: str = ""):
    """(hex key, canonical position of every node) of a Program.

    ``extra`` is mixed in (the rewrite options, for a program keyed before rewriting).
    """
    g = program.graph
    order = canonical_order(program)
    pos = {nid: k for k, nid in enumerate(order)}
    h = hashlib.blake2b(digest_size=20)
    h.update(versions().encode())
    h.update(host_id().encode())
    h.update(extra.encode())
    nodes = g.nx._node
    ops: dict = {}       # op -> its text; equal ops print alike (repr is slow)
    dtypes: dict = {}    # dtype -> its code (str(dtype) is slower still)
    shapes: dict = {}    # shape -> its text (a symbolic dim prints slowly)
    sources: dict = {}   # source -> its text (file names repeat)
    lines = []
    for nid in order:
        node = nodes[nid]
        op = node["op"]
        if isinstance(op, Constant):
            arr = op.value.array
            desc = f"const {arr.dtype.str} {arr.shape} " + hashlib.blake2b(
                arr.tobytes(), digest_size=16).hexdigest()
        else:
            desc = ops.get(op)
            if desc is None:
                desc = ops[op] = repr(op)
        t = node["type"]
        dt = dtypes.get(t.dtype)
        if dt is None:
            dt = dtypes[t.dtype] = t.dtype.str
        shape = shapes.get(t.shape)
        if shape is None:
            shape = shapes[t.shape] = repr(t.shape)
        src = node["source"]
        where = sources.get(src)
        if where is None:
            where = sources[src] = repr(src and (src[0], src[1]))
        lines.append(f"{desc}|{dt}{shape}{t.weak}|{node['name']}|"
                     f"{[pos[i] for i in node['inputs']]}|{node.get('requires', ())}|{where}\n")
    h.update("".join(lines).encode())
    h.update(repr(([pos[i] for i in program.inputs], [pos[o] for o in program.outputs],
                   [(pos[s], pos[v]) for s, v in program.updates])).encode())
    return h.hexdigest(), pos
