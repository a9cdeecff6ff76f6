"""The reference executor: runs a Program node by node with each op's numpy semantics.

It is the oracle of the native compiler's tests and a debugging mode. Every node's
result is checked against the node's static type (dtype and bound shape), so a
disagreement between an op's shape rule and its reference shows up at once.
"""
from __future__ import annotations

import numpy as np

from symgraph import dims as D
from symgraph.errors import SymgraphError
from symgraph.op import format_source
from symgraph.ops.leaves import Placeholder, Shared


class ReferenceExecutor:
    def __init__(self, program):
        self.program = program
        g = program.graph
        self.order = program.order()
        self.input_pos = {nid: k for k, nid in enumerate(program.inputs)}
        # last use of each value, so intermediates are freed as soon as possible
        keep = set(program.outputs) | {v for _, v in program.updates}
        self.last_use: dict = {}
        for step, nid in enumerate(self.order):
            for i in g.inputs(nid):
                self.last_use[i] = step
        self.free_after = {}
        for nid, step in self.last_use.items():
            if nid not in keep:
                self.free_after.setdefault(step, []).append(nid)
        # what each step needs, looked up once rather than on every call
        self.steps = []
        for nid in self.order:
            node = g.node(nid)
            op = node["op"]
            self.steps.append((nid, op, node, op.is_symbolic, node["type"].is_static))

    def run(self, arrays, env, *, observe=None):
        """Values of all outputs and update values; ``observe(nid, value)`` sees every node."""
        values = {}
        free_after = self.free_after
        with np.errstate(all="ignore"):
            for step, (nid, op, node, symbolic, static) in enumerate(self.steps):
                if isinstance(op, Placeholder):
                    value = arrays[self.input_pos[nid]]
                elif isinstance(op, Shared):
                    value = op.storage.value
                else:
                    value = self._apply(op.bind(env) if symbolic else op, node, values, env,
                                        nid, static)
                values[nid] = value
                if observe is not None:
                    observe(nid, value)
                for dead in free_after.get(step, ()):
                    values.pop(dead, None)
        return values

    @staticmethod
    def _apply(op, node, values, env, nid, static):
        args = [values[i] for i in node["inputs"]]
        try:
            value = op.reference(*args)
        except SymgraphError:
            raise
        except (IndexError, ValueError) as e:
            raise type(e)(f"{op.name} (node %{nid}, created at "
                          f"{format_source(node['source'])}) failed: {e}") from None
        type_ = node["type"]
        if (static and type(value) is np.ndarray and value.dtype == type_.dtype
                and value.shape == type_.shape):
            return value  # the common case, checked without evaluating dims
        return _conform(value, type_, env, nid, op, node)


def _conform(value, type_, env, nid, op, node):
    value = np.asarray(value)
    if value.dtype != type_.dtype:
        value = value.astype(type_.dtype)
    want = tuple(D.evaluate(d, env) for d in type_.shape)
    if value.shape != want:
        raise AssertionError(f"internal error: {op} (node %{nid}, created at "
                             f"{format_source(node['source'])}) produced shape {value.shape}, "
                             f"its shape rule says {want}")
    return value
