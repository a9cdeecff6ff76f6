"""How many threads compiled code may use: one setting for every loaded function.

Each module with parallel loops exports a 32-bit word (compiler/parallel.py) that
its code reads before splitting a loop. The runtime writes the current setting into
it when the code is loaded, and again into every live module when the setting
changes. The setting is SYMGRAPH_NUM_THREADS, else OMP_NUM_THREADS, else the cores
this process may run on; ``set_num_threads`` changes it.

A child process forked after libgomp was loaded runs serially: libgomp's thread pool
does not survive a fork, and a child that asked it for threads would wait for them
forever. (Python's own ``os.fork`` and multiprocessing's fork start method run the
hook below; a fork from C code that bypasses Python is not seen.)
"""
from __future__ import annotations

import ctypes
import os
import threading
import weakref

_lock = threading.Lock()
_words: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # code -> address
_setting: int | None = None
_libgomp_loaded = False
_forked_after_libgomp = False


def parallel_code_wanted() -> bool:
    """Whether compiled code gets parallel loops: unless SYMGRAPH_PARALLEL is 0, off,
    false or no, and only when libgomp can be loaded."""
    flag = os.environ.get("SYMGRAPH_PARALLEL", "1").strip().lower()
    if flag in ("0", "off", "false", "no"):
        return False
    from .externals import libgomp_available
    return libgomp_available()


def _env_threads(name: str) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    first = text.split(",")[0].strip()   # OMP_NUM_THREADS may list one count per level
    try:
        n = int(first)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a thread count (a positive integer)") \
            from None
    if n < 1:
        raise ValueError(f"{name}={text!r}: the thread count must be at least 1")
    return n


def _default() -> int:
    for name in ("SYMGRAPH_NUM_THREADS", "OMP_NUM_THREADS"):
        n = _env_threads(name)
        if n is not None:
            return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def num_threads() -> int:
    """The number of threads a compiled function may use for one loop."""
    global _setting
    with _lock:
        if _setting is None:
            _setting = _default()
        return 1 if _forked_after_libgomp else _setting


def set_num_threads(n: int) -> None:
    """Use at most ``n`` threads per loop in every compiled function, loaded or not."""
    global _setting
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive integer, got {n!r}")
    if _forked_after_libgomp and n > 1:
        raise RuntimeError("set_num_threads: this process was forked after libgomp started, "
                           "and libgomp's threads do not survive a fork; compiled code runs "
                           "serially here (start worker processes with 'spawn' or "
                           "'forkserver' to use several threads in them)")
    with _lock:
        _setting = n
        for addr in list(_words.values()):
            ctypes.c_int32.from_address(addr).value = n


def attach(code, symbol: str) -> None:
    """Give loaded ``code`` the current setting, and keep it updated while it lives."""
    addr = code.address(symbol)
    if not addr:
        raise RuntimeError(f"compiled code has no thread-count word {symbol!r}")
    n = num_threads()
    with _lock:
        ctypes.c_int32.from_address(addr).value = n
        _words[code] = addr


def note_libgomp_loaded() -> None:
    global _libgomp_loaded
    _libgomp_loaded = True


def _after_fork_in_child() -> None:
    global _forked_after_libgomp, _lock
    _lock = threading.Lock()            # a lock held by another thread at the fork
    if not _libgomp_loaded:
        return
    _forked_after_libgomp = True
    for addr in list(_words.values()):
        ctypes.c_int32.from_address(addr).value = 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
