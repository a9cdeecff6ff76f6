"""Compile cache: the same optimized graph never goes through LLVM twice.

Two levels: a dict in this process, and a directory on disk shared by processes
(``$SYMGRAPH_CACHE_DIR``, else ``$XDG_CACHE_HOME/symgraph`` or ``~/.cache/symgraph``;
``SYMGRAPH_CACHE_DIR=off`` disables it). The key hashes the optimized graph with
nodes numbered canonically, the dtypes/shapes, constants' bytes, the user's source
lines (they appear in error messages), the symgraph, llvmlite and format versions and
the host CPU. An entry is one file: magic, lengths, manifest JSON, object code and a
checksum; it is written to a temporary file and renamed, so a reader never sees half
of it, and anything that fails to verify is ignored and rebuilt.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import struct
import tempfile
import threading
from pathlib import Path

from symgraph.ops.leaves import Constant
from . import target
from .build import Artifact, FORMAT_VERSION, build

MAGIC = b"SGXC\x01"
_memory: dict = {}
_lock = threading.Lock()
stats = {"memory_hits": 0, "disk_hits": 0, "misses": 0, "rejected": 0}


def cache_dir():
    d = os.environ.get("SYMGRAPH_CACHE_DIR")
    if d is not None:
        return None if d.strip().lower() in ("", "off", "0", "none") else Path(d)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "symgraph"


def _versions() -> str:
    return _static_versions() + _parallel_tag()


def _parallel_tag() -> str:
    from .parallel import available as parallel_loops
    return f"|parallel {parallel_loops()}"


@functools.lru_cache(maxsize=None)
def _static_versions() -> str:
    """Versions that change generated code, including a digest of the compiler's own
    sources, so a changed code generator never reuses an old entry."""
    import llvmlite
    import symgraph
    h = hashlib.blake2b(digest_size=8)
    here = Path(__file__).resolve().parent
    for path in sorted(here.rglob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return (f"symgraph {symgraph.__version__}|llvmlite {llvmlite.__version__}|"
            f"format {FORMAT_VERSION}|compiler {h.hexdigest()}")


def program_key(program):
    """(hex key, canonical position of every node) of a Program."""
    g = program.graph
    order = program.order()
    pos = {nid: k for k, nid in enumerate(order)}
    for nid in program.inputs:  # an input nothing depends on is still an argument
        if nid not in pos:
            pos[nid] = len(pos)
            order.append(nid)
    h = hashlib.blake2b(digest_size=20)
    h.update(_versions().encode())
    h.update(target.cpu_fingerprint().encode())
    for nid in order:
        node = g.node(nid)
        op = node["op"]
        if isinstance(op, Constant):
            arr = op.value.array
            desc = f"const {arr.dtype.str} {arr.shape} " + hashlib.blake2b(
                arr.tobytes(), digest_size=16).hexdigest()
        else:
            desc = repr(op)
        src = node["source"]
        h.update(f"{desc}|{node['type']}|{[pos[i] for i in node['inputs']]}|"
                 f"{node.get('requires', ())}|{src and (src[0], src[1])}\n".encode())
    h.update(repr(([pos[i] for i in program.inputs], [pos[o] for o in program.outputs],
                   [(pos[s], pos[v]) for s, v in program.updates])).encode())
    return h.hexdigest(), pos


def _encode(obj: bytes, manifest: dict) -> bytes:
    meta = json.dumps(manifest, sort_keys=True).encode()
    body = struct.pack("<QQ", len(meta), len(obj)) + meta + obj
    return MAGIC + body + hashlib.blake2b(body, digest_size=32).digest()


def _decode(data: bytes):
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 16 + 32:
        return None
    body, digest = data[len(MAGIC):-32], data[-32:]
    if hashlib.blake2b(body, digest_size=32).digest() != digest:
        return None
    n_meta, n_obj = struct.unpack("<QQ", body[:16])
    if 16 + n_meta + n_obj != len(body):
        return None
    manifest = json.loads(body[16:16 + n_meta])
    return body[16 + n_meta:], manifest


def _valid(manifest, key) -> bool:
    return (manifest.get("format") == FORMAT_VERSION and manifest.get("key") == key
            and manifest.get("cpu") == target.cpu_fingerprint()
            and manifest.get("versions") == _versions())


def _read_disk(key):
    d = cache_dir()
    if d is None:
        return None
    path = d / f"{key}.sgxc"
    try:
        data = path.read_bytes()
    except OSError:
        return None
    decoded = _decode(data)
    if decoded is None or not _valid(decoded[1], key):
        stats["rejected"] += 1
        return None
    return decoded


def _write_disk(key, obj, manifest) -> None:
    d = cache_dir()
    if d is None:
        return
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=d)
        with os.fdopen(fd, "wb") as f:
            f.write(_encode(obj, manifest))
        os.replace(tmp, d / f"{key}.sgxc")
    except OSError:
        pass  # a cache that cannot be written is only a slower cache


def compile_cached(program) -> Artifact:
    """The Artifact of ``program``, from memory, from disk, or freshly built."""
    key, pos = program_key(program)
    with _lock:
        hit = _memory.get(key)
    source = "memory"
    if hit is None:
        hit = _read_disk(key)
        source = "disk"
    if hit is not None:
        obj, manifest = hit
        stats["memory_hits" if source == "memory" else "disk_hits"] += 1
        art = Artifact(obj, manifest)
        by_pos = {p: nid for nid, p in pos.items()}
        art.shared_ids = [by_pos[p] for p in manifest["shared_pos"]]
        art.constant_ids = [by_pos[p] for p in manifest["constant_pos"]]
        art.cache = source
    else:
        stats["misses"] += 1
        art = build(program)
        art.manifest["key"] = key
        art.manifest["versions"] = _versions()
        art.manifest["shared_pos"] = [pos[n] for n in art.shared_ids]
        art.manifest["constant_pos"] = [pos[n] for n in art.constant_ids]
        _write_disk(key, art.object_code, art.manifest)
        art.cache = "miss"
    with _lock:
        _memory[key] = (art.object_code, art.manifest)
    return art


def clear_memory() -> None:
    with _lock:
        _memory.clear()
