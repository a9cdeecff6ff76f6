"""The rewrite pipeline: one ordered list of phases, readable at a glance.

Each phase applies the rule groups it names until none fires (one worklist run of the
driver in rewrite.py), then its whole-graph passes. Groups accumulate: cleanup
(constant folding, merging) and canonical forms keep running while later phases create
new nodes. Rules are collected from the modules in RULE_MODULES, in their order of
definition, so adding a rule is one decorated function in the module of its theme.

``sg.function(..., rewrites=...)`` chooses what runs:

- ``None`` or ``True``: the default pipeline;
- ``False`` or ``"none"``: no rewriting at all;
- a dict with any of ``exclude`` (rule names), ``finite_math`` (bool: assume no inf or
  nan, enabling ``x * 0 -> 0``, ``x - x -> 0`` and inverted float comparisons),
  ``verify`` (bool: check the graph after every phase), or a RewriteOptions.
"""
from __future__ import annotations

import time

from .gcpause import paused_gc
from .options import RewriteOptions, options_tag, parse_options  # noqa: F401  (re-exported)
from .rewrite import GraphPass, Rewriter, RewriteReport, Rule

# (phase, rule groups that run in it, whole-graph passes run after its rules)
PIPELINE = (
    ("canonicalize", ("cleanup", "canonicalize"), ()),
    ("simplify", ("cleanup", "canonicalize", "simplify"), ()),
    ("stabilize", ("cleanup", "canonicalize", "simplify", "stabilize"), ()),
    ("specialize", ("cleanup", "simplify", "specialize"), ()),
    ("fuse", (), ("fuse_elementwise",)),
)

# How many times the pipeline ran in this process (a warm cache hit runs it zero times).
stats = {"runs": 0}

# A phase rescans the whole graph at most this many times; each scan is linear.
MAX_ROUNDS = 4

RULE_MODULES = ("cleanup", "rules_algebra", "rules_shape", "rules_stabilize", "rules_matrix",
                "fusion")


def all_rules() -> dict:
    """name -> Rule or GraphPass, over every rule module, in definition order."""
    import importlib
    out: dict = {}
    for mod in RULE_MODULES:
        m = importlib.import_module(f"{__package__}.{mod}")
        for v in vars(m).values():
            if isinstance(v, (Rule, GraphPass)) and v.name not in out:
                out[v.name] = v
    return out


def optimize(program, rewrites=None):
    """``(optimized program, report)`` for a Program; the program itself is not modified.

    >>> opt, report = optimize(f.program, {"exclude": ["fuse_elementwise"]})
    """
    opts = parse_options(rewrites)
    if opts is None:
        return program, None
    stats["runs"] += 1
    with paused_gc():      # a fifth of rewriting a 10,000-op graph went to collections
        return _optimize(program, opts)


def _optimize(program, opts):
    work = program.copy()
    report = RewriteReport()
    report.excluded = tuple(sorted(opts.exclude))
    rules = all_rules()
    rw = Rewriter(work, opts, report)
    if opts.verify:
        from .verify import verify
        verify(work, "before rewriting")
    for phase, groups, passes in PIPELINE:
        t0, before = time.perf_counter(), len(work.graph)
        active = [r for r in rules.values() if isinstance(r, Rule) and r.group in groups]
        for _ in range(MAX_ROUNDS):  # a rule may enable another one deeper in the graph
            if not rw.run(active):
                break
        for name in passes:
            if name not in opts.exclude:
                count = rules[name].fn(rw)
                if count:
                    report.fired[name] += count
        report.phases.append(_stats(phase, before, len(work.graph), t0))
        if opts.verify:
            from .verify import verify
            verify(work, f"after phase {phase}")
    rw.sweep()  # dead nodes go as they die; this only catches what nothing ever read
    from .fusion import kernel_counts
    report.kernels = kernel_counts(work)
    return work, report


def _stats(name, before, after, t0):
    from .report import PhaseStats
    return PhaseStats(name, before, after, time.perf_counter() - t0)
