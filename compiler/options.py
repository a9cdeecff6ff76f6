"""What ``sg.function(..., rewrites=...)`` asks of the rewrite pipeline, as a value.

Kept apart from pipeline.py so that reading the options (which every ``sg.function``
does, to key its cache lookup) does not import the rewrite machinery, which a cache
hit never runs. The choices are described in pipeline.py.
"""
from __future__ import annotations

import os


class RewriteOptions:
    """An immutable value. (A plain class: a frozen dataclass costs about a millisecond
    to create at import, a visible share of a warm ``sg.function``.)"""

    __slots__ = ("exclude", "finite_math", "verify")

    def __init__(self, exclude=frozenset(), finite_math: bool = False, verify=None):
        if verify is None:
            verify = os.environ.get("SYMGRAPH_VERIFY", "") not in ("", "0")
        for name, value in (("exclude", frozenset(exclude)), ("finite_math", finite_math),
                            ("verify", verify)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"RewriteOptions is immutable (cannot set {name!r})")

    def _fields(self):
        return (self.exclude, self.finite_math, self.verify)

    def __eq__(self, other):
        return isinstance(other, RewriteOptions) and self._fields() == other._fields()

    def __hash__(self):
        return hash(self._fields())

    def __repr__(self):
        return (f"RewriteOptions(exclude={self.exclude!r}, finite_math={self.finite_math!r}, "
                f"verify={self.verify!r})")


def parse_options(spec):
    """``rewrites=`` as RewriteOptions, or None when rewriting is off."""
    if spec is None or spec is True:
        return RewriteOptions()
    if spec is False or spec == "none":
        return None
    if isinstance(spec, RewriteOptions):
        opts = spec
    elif isinstance(spec, dict):
        unknown = set(spec) - {"exclude", "finite_math", "verify"}
        if unknown:
            raise ValueError(f"rewrites: unknown keys {sorted(unknown)}; use 'exclude', "
                             "'finite_math' or 'verify'")
        exclude = spec.get("exclude", ())
        if isinstance(exclude, str):
            exclude = (exclude,)
        kw = {k: bool(spec[k]) for k in ("finite_math", "verify") if k in spec}
        opts = RewriteOptions(exclude=frozenset(exclude), **kw)
    else:
        raise TypeError(f"rewrites must be None, False, 'none', a dict or RewriteOptions, "
                        f"got {type(spec).__name__}")
    from .pipeline import all_rules
    from .rewrite import DEAD, MERGE
    known = set(all_rules()) | {MERGE, DEAD}
    bad = sorted(set(opts.exclude) - known)
    if bad:
        raise ValueError(f"rewrites: no rule named {bad}; known rules: {sorted(known)}")
    return opts


def options_tag(opts) -> str:
    """The options as text for the cache key: rewrites that differ give other code."""
    if opts is None:
        return "off"
    return (f"exclude={sorted(opts.exclude)} finite_math={opts.finite_math} "
            f"verify={opts.verify}")
