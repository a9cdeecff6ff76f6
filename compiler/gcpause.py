"""Python's cyclic garbage collector paused while a module is lowered.

Lowering allocates hundreds of thousands of llvmlite objects, all alive until the
module is printed, and every few thousand allocations the collector walks them, and
with them everything else the process holds (the graphs, numpy, networkx): a fifth of
the lowering time of a 3,000-op graph went to collections that found nothing to free.
Reference counting still frees what it can meanwhile; the cycles left over are
collected as usual once the collector runs again.

Pauses nest and may overlap across threads: the collector is switched off by the
first of them and back on by the last, and only if it was on to begin with.
"""
from __future__ import annotations

import gc
import threading
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def paused_gc():
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
