"""Compile cache: the same graph never goes through the rewrites or LLVM twice.

Two levels: a dict in this process, and a directory on disk shared by processes
(``$SYMGRAPH_CACHE_DIR``, else ``$XDG_CACHE_HOME/symgraph`` or ``~/.cache/symgraph``;
``SYMGRAPH_CACHE_DIR=off`` disables it). ``sg.function`` looks an entry up by the key
of its program AS BUILT plus the rewrite options (cachekey.py), so a hit skips the
rewrite pipeline as well as LLVM: the manifest says what the code needs, and shared
variables and constants are found by their position in the as-built program (folded
constants, which exist only after rewriting, are stored in the entry).

An entry is one file: magic, lengths, the manifest (marshal: plain data, read without
importing anything; the Python version is in the key), object code, constants' bytes,
the code linked as a shared library (link.py; empty without a linker) and a checksum.
It is written to a temporary file and renamed, so a reader never sees half of it, and
anything that fails to verify is ignored and rebuilt.
"""
from __future__ import annotations

import hashlib
import marshal
import os
import struct
import tempfile
import threading
from pathlib import Path

import numpy as np

from symgraph.ops.leaves import Constant, Shared
from .build import Artifact, FORMAT_VERSION, build
from .cachekey import host_id, program_key, versions as _versions
from .gcpause import paused_gc

MAGIC = b"SGXC\x02"
_memory: dict = {}
_lock = threading.Lock()
stats = {"memory_hits": 0, "disk_hits": 0, "misses": 0, "rejected": 0}


def cache_dir():
    d = os.environ.get("SYMGRAPH_CACHE_DIR")
    if d is not None:
        return None if d.strip().lower() in ("", "off", "0", "none") else Path(d)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "symgraph"


# -- entries -------------------------------------------------------------------------------
def _encode(obj: bytes, manifest: dict, data: bytes = b"", library: bytes = b"") -> bytes:
    meta = marshal.dumps(manifest)
    parts = (meta, obj, data, library)
    body = struct.pack("<4Q", *map(len, parts)) + b"".join(parts)
    return MAGIC + body + hashlib.blake2b(body, digest_size=32).digest()


def _decode(data: bytes):
    """(object code, manifest, constants' bytes, shared library), or None for anything
    malformed."""
    head = 32
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + head + 32:
        return None
    body, digest = data[len(MAGIC):-32], data[-32:]
    if hashlib.blake2b(body, digest_size=32).digest() != digest:
        return None
    sizes = struct.unpack("<4Q", body[:head])
    if head + sum(sizes) != len(body):
        return None
    parts, start = [], head
    for n in sizes:
        parts.append(body[start:start + n])
        start += n
    try:
        manifest = marshal.loads(parts[0])
    except (ValueError, EOFError, TypeError):
        return None
    if not isinstance(manifest, dict):
        return None
    return parts[1], manifest, parts[2], parts[3]


def _valid(manifest, key) -> bool:
    return (manifest.get("format") == FORMAT_VERSION and manifest.get("key") == key
            and manifest.get("host") == host_id() and manifest.get("versions") == _versions())


def write_atomically(path: Path, data: bytes) -> None:
    """Write via a temporary file and a rename: readers see all of it or nothing.
    A cache that cannot be written is only a slower cache, so errors are ignored."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass


def _read_disk(key):
    d = cache_dir()
    if d is None:
        return None
    try:
        data = (d / f"{key}.sgxc").read_bytes()
    except OSError:
        return None
    decoded = _decode(data)
    if decoded is None or not _valid(decoded[1], key):
        stats["rejected"] += 1
        return None
    return decoded


def _write_disk(key, obj, manifest, data=b"", library=b"", *, directory=None) -> None:
    """Write the entry into ``directory``, or into the cache directory of the moment."""
    d = directory if directory is not None else cache_dir()
    if d is not None:
        write_atomically(d / f"{key}.sgxc", _encode(obj, manifest, data, library))


def _lookup(key):
    """((obj, manifest, data, library), "memory" | "disk") or (None, None)."""
    with _lock:
        hit = _memory.get(key)
    if hit is not None:
        stats["memory_hits"] += 1
        return hit, "memory"
    hit = _read_disk(key)
    if hit is not None:
        stats["disk_hits"] += 1
        with _lock:
            _memory[key] = hit
        return hit, "disk"
    return None, None


def _remember(key, art, data=b"") -> None:
    with _lock:
        _memory[key] = (art.object_code, art.manifest, data, art.library)


def _stamp(manifest, key) -> None:
    """What a reader checks before it trusts an entry."""
    manifest["key"] = key
    manifest["versions"] = _versions()
    manifest["host"] = host_id()


# -- an optimized program (debug probes, ahead-of-time use) ------------------------------
def compile_cached(program) -> Artifact:
    """The Artifact of an optimized ``program``, from memory, from disk, or freshly built."""
    key, pos = program_key(program)
    hit, source = _lookup(key)
    if hit is not None:
        obj, manifest, _, _ = hit
        art = Artifact(obj, manifest)
        by_pos = {p: nid for nid, p in pos.items()}
        art.shared_ids = [by_pos[p] for p in manifest["shared_pos"]]
        art.constant_ids = [by_pos[p] for p in manifest["constant_pos"]]
        art.cache = source
        return art
    stats["misses"] += 1
    art = build(program)
    _stamp(art.manifest, key)
    art.manifest["shared_pos"] = [pos[n] for n in art.shared_ids]
    art.manifest["constant_pos"] = [pos[n] for n in art.constant_ids]
    _write_disk(key, art.object_code, art.manifest)
    art.cache = "miss"
    _remember(key, art)
    return art


# -- a program as built (sg.function) ------------------------------------------------------
def compile_function(program, options_tag: str, optimize):
    """``(artifact, optimized program or None)`` for a program as built.

    ``optimize()`` runs the rewrites; it is called only on a miss. The artifact's
    ``shared`` and ``constants`` are the storages and arrays the code is called with,
    bound through the manifest on a hit and on a miss alike.
    """
    key, pos = program_key(program, f"rewrites {options_tag}")
    hit, source = _lookup(key)
    if hit is not None:
        obj, manifest, data, library = hit
        art = Artifact(obj, manifest, library=library)
        art.cache = source
        try:
            art.shared, art.constants = _bind(program, pos, manifest, data)
            if not library and source == "disk":  # written by a process that could
                _link_later(key, obj, manifest, data)  # not link it: next time, loaded
            return art, None
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            stats["rejected"] += 1  # an entry that does not fit this program: rebuild
    stats["misses"] += 1
    # the collector paused for the whole compile, not only in its phases: each pause's
    # end made it walk everything the pause had made (a 10,000-op graph: 0.2-0.3 s)
    # LLVM workers start now: their start-up (loading LLVM, about 0.1 s) overlaps the
    # rewrites as well as the lowering
    from . import workers
    with paused_gc(), workers.Pool(workers.expected_parts(program)) as pool:
        optimized = optimize()
        art = build(optimized, pool=pool)
    data = _record_bindings(art, program, optimized, pos)
    _stamp(art.manifest, key)
    art.shared, art.constants = _bind(program, pos, art.manifest, data)
    _write_disk(key, art.object_code, art.manifest, data)
    art.cache = "miss"
    _remember(key, art, data)
    _link_later(key, art.object_code, art.manifest, data)
    return art, optimized


def _record_bindings(art, program, optimized, pos) -> bytes:
    """Record in the manifest where each shared variable and constant the code takes
    comes from: a position in the as-built program, or (a constant the rewrites made)
    bytes stored in the entry. Returns those bytes."""
    src, opt = program.graph, optimized.graph
    art.manifest["shared_src"] = [pos[n] for n in art.shared_ids]
    slots, chunks, offset = [], [], 0
    for n in art.constant_ids:
        value = opt.op(n).value
        if n in pos and isinstance(src.op(n), Constant) and src.op(n).value == value:
            slots.append({"pos": pos[n]})
            continue
        raw = value.array.tobytes()
        slots.append({"offset": offset, "dtype": value.array.dtype.str,
                      "shape": list(value.array.shape)})
        chunks.append(raw)
        offset += len(raw)
    art.manifest["constants_src"] = slots
    return b"".join(chunks)


def _bind(program, pos, manifest, data):
    """(shared storages, constant arrays) of the entry, in argument order; raises
    ValueError when they do not match the types the code was compiled for."""
    order = list(pos)  # positions are the insertion order of ``pos``
    g = program.graph
    shared = []
    for p, want in zip(manifest["shared_src"], manifest["shared"], strict=True):
        op = g.op(order[p])
        if not isinstance(op, Shared):
            raise ValueError(f"position {p} is not a shared variable")
        _check(op.storage.value, want)
        shared.append(op.storage)
    constants = []
    for slot, want in zip(manifest["constants_src"], manifest["constants"], strict=True):
        if "pos" in slot:
            op = g.op(order[slot["pos"]])
            if not isinstance(op, Constant):
                raise ValueError(f"position {slot['pos']} is not a constant")
            arr = op.value.array
        else:
            dtype = np.dtype(slot["dtype"])
            count = int(np.prod(slot["shape"], dtype=np.int64))
            arr = np.frombuffer(data, dtype, count, slot["offset"]).reshape(slot["shape"]).copy()
            arr.flags.writeable = False
        _check(arr, want)
        constants.append(arr)
    return shared, constants


def _check(arr, want) -> None:
    if arr.dtype.str != want["dtype"] or list(arr.shape) != list(want["shape"]):
        raise ValueError(f"a {arr.dtype}{list(arr.shape)} array where the code takes "
                         f"{want['dtype']}{want['shape']}")


# -- the shared library, off the critical path ----------------------------------------------
_links: "queue.Queue | None" = None   # (key, obj, manifest, data) for the linking thread
_linker = None                        # that thread


def _link_later(key, obj, manifest, data) -> None:
    """Have the object linked into a shared library by a background thread, which then
    rewrites the entry with it. Only other processes gain from the library: this one
    has LLVM loaded and loads the object itself (a few ms, less than the linker takes),
    so the compile does not wait. One thread links entries one at a time; the process
    waits for it when it exits, so the entry is complete for the next process."""
    global _links, _linker
    directory = cache_dir()      # the entry's own: the variable may change meanwhile
    if directory is None:
        return
    from .link import linker, prepare
    if linker() is None:
        return
    prepare(manifest["external"])  # what needs LLVM is done here, not in the thread
    with _lock:
        if _links is None:
            import atexit
            import queue
            _links = queue.Queue()
            _linker = threading.Thread(target=_linker_loop, args=(_links,),
                                       name="symgraph-link", daemon=True)
            _linker.start()
            atexit.register(flush)
    _links.put((directory, key, obj, manifest, data))


def _linker_loop(links) -> None:
    from .link import link_shared
    while True:
        directory, key, obj, manifest, data = links.get()
        try:
            library = link_shared(obj, manifest["external"])
            if library:
                _write_disk(key, obj, manifest, data, library, directory=directory)
                with _lock:
                    if key in _memory:
                        _memory[key] = (obj, manifest, data, library)
        except Exception:  # noqa: BLE001  a library that cannot be made is only a
            pass            # slower load next time; the thread must keep serving
        finally:
            links.task_done()


def flush() -> None:
    """Wait until the entries being completed in the background are written."""
    # A forked child has the queue but not the thread: it has nothing to wait for.
    if _links is not None and _linker is not None and _linker.is_alive():
        _links.join()


def clear_memory() -> None:
    with _lock:
        _memory.clear()
