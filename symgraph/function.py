"""``sg.function``: the one place that wires front end, compiler and runtime together."""
from __future__ import annotations

import operator

import numpy as np

from .errors import GraphError
from .printing import format_tree

MODES = ("native", "reference", "debug")


def _as_update_pairs(updates):
    from .tensor import Tensor
    if updates is None:
        return []
    items = list(updates.items()) if isinstance(updates, dict) else list(updates)
    pairs = []
    for k, item in enumerate(items):
        try:
            s, v = item
        except (TypeError, ValueError):
            raise GraphError(f"function: update {k} must be a (shared variable, new value) "
                             f"pair, got {item!r}") from None
        from .api import as_tensor, cast
        v = as_tensor(v, graph=getattr(s, "graph", None))
        if isinstance(s, Tensor) and v.dtype != s.dtype:
            import numpy as _np
            if _np.can_cast(v.dtype, s.dtype, casting="same_kind"):
                v = cast(v, s.dtype)
        pairs.append((s, v))
    return pairs


class Function:
    """A compiled function: call it with arrays; ``.graph`` is the networkx graph it runs."""

    def __init__(self, inputs, outputs, updates=None, *, mode="native", name=None,
                 rewrites=None, nan_guard=False):
        from .tensor import Tensor
        from .program import build_program
        if mode not in MODES:
            raise ValueError(f"function: mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.nan_guard = bool(nan_guard)
        self.name = name
        if isinstance(inputs, Tensor):
            inputs = [inputs]
        self._single = isinstance(outputs, Tensor)
        if outputs is None:
            outputs = []
        outs = [outputs] if self._single else list(outputs)
        from .api import as_tensor
        pairs = _as_update_pairs(updates)  # once: it may add casts to the user's graph
        first = (list(inputs) + outs + [s for s, _ in pairs] or [None])[0]
        outs = [as_tensor(o, graph=getattr(first, "graph", None)) for o in outs]
        from .compiler.gcpause import paused_gc
        with paused_gc():   # a big graph's copy would make the collector walk the process
            self.program = build_program(list(inputs), outs, pairs)
        # The rewritten copy runs; self.program stays as built, for inspection. The
        # copy is made lazily: a cache hit needs only the program as built.
        from .compiler.options import parse_options
        self._rewrites = rewrites
        self._options = parse_options(rewrites)  # bad options fail here, hit or miss
        self._optimized = self._report = None
        self._compile()

    def _optimize(self):
        """The optimized program, computed on first use (never, for a warm hit that is
        only called)."""
        if self._optimized is None:
            from .compiler.pipeline import optimize
            self._optimized, self._report = optimize(self.program, self._rewrites)
        return self._optimized

    @property
    def optimized(self):
        """The program after the rewrites: what the native code computes."""
        return self._optimize()

    @property
    def rewrite_report(self):
        """What the rewrites did (None when they are off)."""
        self._optimize()
        return self._report

    def _compile(self):
        self._native = None
        self.artifact = None
        self._checker = None
        if self.mode in ("native", "debug"):
            from .compiler.cache import compile_function
            from .compiler.options import options_tag
            from .runtime.load import native_function
            self.artifact, _ = compile_function(self.program, options_tag(self._options),
                                                self._optimize)
            self._native = native_function(self.artifact.object_code, self.artifact.manifest,
                                           self.artifact.shared, self.artifact.constants,
                                           self.artifact.library)
            self.signature = self._native.signature
            if self.mode == "debug" or self.nan_guard:
                self._checker = _LazyChecker(self)
        else:
            from .runtime.signature import signature_of
            from .runtime.reference import ReferenceExecutor
            self.signature = signature_of(self.optimized)
            self._executor = ReferenceExecutor(self.optimized)

    def _make_checker(self):
        from .compiler.build import constant_values, shared_storages
        from .compiler.cache import compile_cached
        from .runtime.debugging import Checker, probe_program
        from .runtime.load import native_function
        probe = probe_program(self.optimized)
        art = compile_cached(probe)
        fn = native_function(art.object_code, art.manifest, shared_storages(probe, art),
                             constant_values(probe, art))
        return Checker(self.optimized, fn, compare=self.mode == "debug",
                       nan_guard=self.nan_guard)

    # -- calling ---------------------------------------------------------------------
    def _dispatch(self, *args):
        """Calls until the native builtin is known; then the builtin replaces this
        method on the instance and ``f(...)`` is that builtin's call, with no Python frame
        in between (the builtin hands any call it does not take to the runtime's Python
        path itself)."""
        if self._checker is None and self._native is not None:
            fast = self._native.builtin(self._single)
            if fast is not None:
                self._dispatch = fast
                return fast(*args)
        return self._call(args)

    # ``f(*args)`` looks ``__call__`` up on the class; this property gives ``_dispatch``
    # of the instance (the builtin once installed) through a C getter.
    __call__ = property(operator.attrgetter("_dispatch"), doc="Call the compiled function.")

    def _call(self, args):
        if self._checker is not None:
            self._checker.check(args)
        if self._native is not None:
            outs = self._native(args)
            return outs[0] if self._single else outs
        arrays, env = self.signature.bind(args)
        values = self._executor.run(arrays, env)
        return self._finish(values)

    def _full_artifact(self, what: str):
        """The artifact with its IR and plan (rebuilt once if it came from the cache)."""
        if self.artifact is None:
            raise ValueError(f"{what} exists only for mode='native'")
        if not self.artifact.ir:
            from .compiler.build import build
            full = build(self.optimized)
            self.artifact.ir, self.artifact.optimized_ir = full.ir, full.optimized_ir
            self.artifact.plan = full.plan
        return self.artifact

    @property
    def llvm_ir(self) -> str:
        """The optimized LLVM IR of the native entry point and its kernels."""
        return self._full_artifact("llvm_ir").optimized_ir

    @property
    def asm(self) -> str:
        """Host assembly of the native code."""
        from .compiler import target
        return target.assembly(self._full_artifact("asm").ir)

    @property
    def memory_plan(self):
        """The static memory plan; ``.scratch_bytes`` is the peak scratch size (a dim)."""
        return self._full_artifact("memory_plan").plan

    def _finish(self, values):
        p = self.optimized
        outs = [np.array(values[o], copy=True) for o in p.outputs]
        if p.updates:
            g = p.graph
            new = [(g.op(s).storage, np.array(values[v], dtype=g.type(s).dtype, copy=True))
                   for s, v in p.updates]
            for storage, value in new:  # all new values are computed before any is stored
                np.copyto(storage.value, value)
        if self._single:
            return outs[0]
        return outs

    # -- inspection --------------------------------------------------------------------
    @property
    def graph(self):
        """The networkx DiGraph this function executes."""
        return self.optimized.graph.nx

    def describe(self, optimized: bool = True) -> str:
        p = self.optimized if optimized else self.program
        g = p.graph
        titles = [f"output {k}" for k in range(len(p.outputs))]
        titles += [f"update of {g.node(s)['name'] or '%' + str(s)}" for s, _ in p.updates]
        return format_tree(g, list(p.outputs) + [v for _, v in p.updates], titles)

    def __repr__(self):
        return (f"<symgraph.Function {self.name or ''} mode={self.mode} inputs="
                f"{[a.name for a in self.signature.args]} outputs={len(self.program.outputs)}>")


class _LazyChecker:
    """Stands in for the debug/NaN-guard checker until the first call: building it
    needs the optimized program, which a cache hit does not compute."""

    def __init__(self, fn):
        self.fn = fn

    def check(self, args):
        checker = self.fn._make_checker()
        self.fn._checker = checker
        return checker.check(args)


def function(inputs, outputs=None, updates=None, *, mode="native", name=None,
             rewrites=None, nan_guard=False) -> Function:
    """Compile ``outputs`` (and ``updates``) as a function of ``inputs``.

    ``updates`` is a list of ``(shared, new_value)`` pairs or a dict; every new value
    is computed from the old values before any is stored (Theano semantics).

    ``rewrites`` chooses the graph rewrites (docs/rewrites.md): None runs them all;
    False turns them off; ``{"exclude": ["fuse_elementwise"]}`` skips rules by name.
    ``f.rewrite_report`` says what they did; ``f.program`` is the graph before them.

    ``mode``: "native" compiles one native function; "reference" runs the numpy
    reference executor; "debug" runs native code and checks every node against the
    reference, naming the first node that differs. ``nan_guard=True`` names the first
    node that produced a NaN or inf (before any update is applied).

    >>> step = sg.function([x, y], loss, updates=[(w, w - 0.1 * gw)])
    """
    return Function(inputs, outputs, updates, mode=mode, name=name, rewrites=rewrites,
                    nan_guard=nan_guard)
