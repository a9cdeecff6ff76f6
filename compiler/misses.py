"""Remembered misses: a rule that found nothing at a node is not tried there again until
something it read has changed.

Rules read the graph through the Rewriter's accessors, and those that return a node's
inputs, consumers or root status note the node (an id's op and type never change, so
reading them needs no note). A rule that returned None without building anything
(``make``, ``constant``) depends only on what it read, so it would return None again
while none of those nodes has changed: later rounds and phases skip it. The rewriter
reports every edit a rule could see through ``changed``; a note older than a change of
any node it lists is void. Rewriting thus ends in the graph, node ids included, that
trying every rule at every visit gives (tests/test_rewrite_misses.py compares them).
"""
from __future__ import annotations


class Misses:
    """node -> (tick when noted, nodes read, rules that returned None)."""

    __slots__ = ("notes", "version", "tick")

    def __init__(self):
        self.notes: dict = {}
        self.version: dict = {}     # node -> tick of its last change a rule could see
        self.tick = 0

    def changed(self, nodes) -> None:
        """What a rule could read of ``nodes`` (inputs, consumers, root status) changed."""
        t = self.tick = self.tick + 1
        version = self.version
        for m in nodes:
            version[m] = t

    def lookup(self, n):
        """(nodes read, rules that missed) of ``n``'s note if it still holds, else None.
        The caller may extend both sets and ``keep`` them again."""
        note = self.notes.get(n)
        if note is None:
            return None
        tick, seen, quiet = note
        version = self.version
        for m in seen:
            if version.get(m, 0) > tick:
                del self.notes[n]
                return None
        return seen, quiet

    def keep(self, n, tick, seen, quiet) -> None:
        """Note that ``quiet`` missed at ``n``, having read ``seen`` since ``tick``."""
        self.notes[n] = (tick, seen, quiet)

    def forget(self, n) -> None:
        self.notes.pop(n, None)
