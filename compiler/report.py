"""The rewrite report: nodes before and after each phase, rule firings, kernel counts.

``sg.function(...).rewrite_report`` is one; it prints as a table.
"""
from __future__ import annotations

from collections import Counter


class PhaseStats:
    """One phase's row of the report. (A plain class: a dataclass costs about a
    millisecond to create, on every cold compile.)"""

    __slots__ = ("name", "nodes_before", "nodes_after", "seconds")

    def __init__(self, name: str, nodes_before: int, nodes_after: int, seconds: float):
        self.name, self.nodes_before, self.nodes_after = name, nodes_before, nodes_after
        self.seconds = seconds

    def __repr__(self):
        return (f"PhaseStats({self.name!r}, {self.nodes_before} -> {self.nodes_after}, "
                f"{self.seconds * 1e3:.1f} ms)")


class RewriteReport:
    """What a rewrite run did: nodes before/after each phase and how often each rule fired."""

    def __init__(self):
        self.phases: list = []
        self.fired: Counter = Counter()
        self.kernels: dict = {}
        self.excluded: tuple = ()

    @property
    def nodes_before(self) -> int:
        return self.phases[0].nodes_before if self.phases else 0

    @property
    def nodes_after(self) -> int:
        return self.phases[-1].nodes_after if self.phases else 0

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.phases)

    def __str__(self) -> str:
        lines = [f"rewrites: {self.nodes_before} -> {self.nodes_after} nodes "
                 f"in {self.seconds * 1e3:.1f} ms"]
        for p in self.phases:
            lines.append(f"  {p.name:<12} {p.nodes_before:>6} -> {p.nodes_after:<6} "
                         f"{p.seconds * 1e3:8.1f} ms")
        if self.kernels:
            lines.append("  kernels: " + ", ".join(f"{k}={v}" for k, v in self.kernels.items()))
        for name, count in sorted(self.fired.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {count:>6}  {name}")
        if self.excluded:
            lines.append("  excluded: " + ", ".join(self.excluded))
        return "\n".join(lines)

    __repr__ = __str__
