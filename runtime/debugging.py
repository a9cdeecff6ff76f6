"""Debug mode and the NaN guard: native values of every node, checked node by node.

Both compile a second native function from the same optimized graph whose outputs are
all of its computed nodes (and no updates), so every intermediate value can be read
without changing what the real function computes.

- debug mode (like Theano's DebugMode) runs that function and the reference executor
  on the same arguments and names the first node, in schedule order, whose native
  value differs from the reference, with the user's source line.
- the NaN guard names the first node that *produced* a NaN or an infinity: a NaN from
  inputs without NaN, or an infinity from finite inputs. A node that passes on a
  non-finite value it received (a -inf mask through log_softmax, say) is no alarm.
"""
from __future__ import annotations

import numpy as np

from symgraph.errors import SymgraphError
from symgraph.op import format_source


class DebugMismatch(SymgraphError, AssertionError):
    """Native code and the reference executor disagree."""


class NonFiniteError(SymgraphError, FloatingPointError):
    """A node produced a NaN or an infinity (raised by the NaN guard)."""


def probe_program(program):
    """The same graph with every computed node as an output and no updates."""
    p = program.copy()
    p.outputs = probe_program_nodes(p)
    p.updates = []
    return p


def _where(g, nid) -> str:
    node = g.node(nid)
    return (f"node %{nid} ({node['op']}, {node['type']}) created at "
            f"{format_source(node['source'])}")


def first_mismatch(g, nodes, native_values, reference_values, rtol, atol):
    """(nid, message) of the first node whose values differ, or None."""
    for nid, got in zip(nodes, native_values):
        want = reference_values.get(nid)
        if want is None:
            continue
        want = np.asarray(want)
        if got.shape != want.shape:
            return nid, f"{_where(g, nid)}: native shape {got.shape}, reference {want.shape}"
        if got.dtype.kind == "f":
            close = np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
        else:
            close = got == want
        if not np.all(close):
            k = np.unravel_index(np.argmin(close), close.shape) if close.ndim else ()
            return nid, (f"{_where(g, nid)}: native {got[k]!r} vs reference {want[k]!r} "
                         f"at index {tuple(int(i) for i in k)} "
                         f"({int(np.size(close) - np.count_nonzero(close))} of {close.size} differ)")
    return None


def first_nonfinite(g, values: dict, leaves_ok=True):
    """(nid, message) of the first node that produced a NaN or inf, or None."""
    for nid, v in values.items():
        v = np.asarray(v)
        if v.dtype.kind != "f" or np.all(np.isfinite(v)):
            continue
        ins = [np.asarray(values[i]) if i in values else None for i in g.inputs(nid)]
        if not g.inputs(nid):
            continue  # a leaf: the data was given that way
        in_nan = any(a is not None and a.dtype.kind == "f" and np.isnan(a).any() for a in ins)
        in_inf = any(a is not None and a.dtype.kind == "f" and np.isinf(a).any() for a in ins)
        has_nan, has_inf = np.isnan(v).any(), np.isinf(v).any()
        if (has_nan and not in_nan) or (has_inf and not (in_inf or in_nan)):
            what = "NaN" if has_nan and not in_nan else "inf"
            return nid, f"{_where(g, nid)} produced {what}"
    return None


class Checker:
    """Runs the probe before the real call: compares with the reference (debug mode)
    and/or looks for the first NaN/inf producer (NaN guard). Raises before the real
    call, so shared variables are not updated by a failing step."""

    def __init__(self, program, probe, *, compare: bool, nan_guard: bool,
                 rtol=1e-4, atol=1e-5):
        from .reference import ReferenceExecutor
        self.program = program
        self.probe = probe          # a NativeFunction whose outputs are probe_nodes
        self.nodes = list(probe_program_nodes(program))
        self.compare = compare
        self.nan_guard = nan_guard
        self.rtol, self.atol = rtol, atol
        self.reference = ReferenceExecutor(program) if compare else None

    def check(self, args) -> None:
        g = self.program.graph
        arrays, env = self.probe.signature.bind(args)
        native = self.probe(arrays)
        if self.compare:
            ref_values = {}
            self.reference.run(arrays, env, observe=lambda nid, v: ref_values.__setitem__(nid, v))
            bad = first_mismatch(g, self.nodes, native, ref_values, self.rtol, self.atol)
            if bad is not None:
                raise DebugMismatch(f"native code and the reference executor disagree at "
                                    f"{bad[1]}")
        if self.nan_guard:
            values = self._leaf_values(arrays)
            values.update(zip(self.nodes, native))
            ordered = {n: values[n] for n in self.program.order() if n in values}
            bad = first_nonfinite(g, ordered)
            if bad is not None:
                raise NonFiniteError(f"NaN guard: {bad[1]}")

    def _leaf_values(self, arrays) -> dict:
        from symgraph.ops.leaves import Placeholder, Shared, Constant
        g = self.program.graph
        out = {}
        for k, nid in enumerate(self.program.inputs):
            out[nid] = arrays[k]
        for nid in self.program.order():
            op = g.op(nid)
            if isinstance(op, Shared):
                out[nid] = op.storage.value
            elif isinstance(op, Constant):
                out[nid] = op.value.array
        return out


def probe_program_nodes(program):
    g = program.graph
    return [n for n in program.order() if not g.op(n).is_leaf and g.inputs(n)]
