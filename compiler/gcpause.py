"""Python's cyclic garbage collector kept out of lowering: paused while a module is
built and printed, and not needed to free it afterwards. Building, keying and rewriting
a program pause it too (function.py, cachekey.py, pipeline.py), for the same reason,
and so does a whole compile (cache.py): each pause's end made the collector walk what
that pause had made.

Lowering allocates hundreds of thousands of llvmlite objects, all alive until the
module is printed, and every few thousand allocations the collector walks them, and
with them everything else the process holds (the graphs, numpy, networkx): a fifth of
the lowering time of a 3,000-op graph went to collections that found nothing to free.
Reference counting still frees what it can meanwhile; the cycles left over are
collected as usual once the collector runs again.

Pauses nest and may overlap across threads: the collector is switched off by the
first of them and back on by the last, and only if it was on to begin with.

A module is a web of reference cycles (an instruction and its block, a function and
its arguments, the module and its metadata, a function written as text and its
blocks), so once printed it would wait for the
collector, whose next pass then walks all of it (about 0.3 s for a 3,000-op graph):
``release`` cuts those cycles, and reference counting frees the module at once.
"""
from __future__ import annotations

import gc
import threading
from contextlib import contextmanager

from .irtext import TEXT_ATTRIBUTE

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


def release(module) -> None:
    """Empty every function, block, instruction, argument and metadata node of a
    module that is no longer used (then the module itself), so that nothing in it is
    left in a cycle. Constants and types are left alone: they hold no cycles, and
    constants are shared between modules (irutil.i64)."""
    for gv in list(module.globals.values()):
        for blk in getattr(gv, "blocks", ()):
            for instr in blk.instructions:
                instr.__dict__.clear()
            blk.__dict__.clear()
        for arg in getattr(gv, "args", ()):
            arg.__dict__.clear()
        rv = getattr(gv, "return_value", None)
        if rv is not None:
            rv.__dict__.clear()
        _release_text(gv.__dict__.get(TEXT_ATTRIBUTE))
        gv.__dict__.clear()
    for md in module.metadata:
        md.__dict__.clear()
    module.__dict__.clear()


def _release_text(written) -> None:
    """Cut the cycles of a function written as text (irtext.TextFunction: its blocks
    name it, phis name blocks): 160,000 objects of a 10,000-op graph's kernels were
    otherwise left to one collection of 0.18 s at the end of its compile."""
    if written is None:
        return
    for blk in written.blocks:
        blk.lines = blk.function = None
    written.__dict__.clear()
