"""Symbolic reverse mode: gradients are new nodes in the same graph.

The walk is iterative (reverse topological order over the ancestors of the outputs),
so a chain of 100,000 ops differentiates without touching the recursion limit.
"""
from __future__ import annotations

import numpy as np

from .errors import GradientError
from .op import format_source
from .types import fmt_shape, is_float


def _api():
    from . import api
    return api


def _flatten(wrt):
    """(list of tensors, a function that rebuilds ``wrt``'s structure from a list)."""
    from .tensor import Tensor
    if isinstance(wrt, Tensor):
        return [wrt], lambda xs: xs[0]
    if isinstance(wrt, dict):
        keys = list(wrt)
        return [wrt[k] for k in keys], lambda xs: dict(zip(keys, xs))
    if isinstance(wrt, (list, tuple)):
        items = list(wrt)
        for t in items:
            if not isinstance(t, Tensor):
                raise TypeError(f"wrt must hold Tensors, got {type(t).__name__}")
        return items, (lambda xs: list(xs)) if isinstance(wrt, list) else (lambda xs: tuple(xs))
    raise TypeError(f"wrt must be a Tensor, a list/tuple or a dict of Tensors, got "
                    f"{type(wrt).__name__}")


def grad(cost, wrt, *, disconnected: str = "raise"):
    """d cost / d wrt for a scalar ``cost``; the result has ``wrt``'s structure.

    ``disconnected="raise"`` (default) refuses a ``wrt`` the cost does not depend on;
    ``"zero"`` returns zeros for it.

    >>> (gw,) = sg.grad(loss, [w])
    """
    cost = _api().as_tensor(cost)
    if cost.ndim != 0:
        raise GradientError(f"grad: the cost must be a scalar, got shape {cost.shape}; "
                            "reduce it (e.g. .sum() or .mean()) or use sg.vjp")
    if not is_float(cost.dtype):
        raise GradientError(f"grad: the cost must be a float scalar, got {cost.dtype}")
    seed = _api().ones_like(cost)
    return vjp(cost, wrt, seed, disconnected=disconnected)


def vjp(outputs, wrt, cotangents, *, disconnected: str = "raise"):
    """The vector-Jacobian product sum_i cotangents[i] . d outputs[i] / d wrt."""
    from .tensor import Tensor
    if disconnected not in ("raise", "zero"):
        raise ValueError(f"disconnected must be 'raise' or 'zero', got {disconnected!r}")
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    cots = [cotangents] if isinstance(cotangents, Tensor) or not isinstance(
        cotangents, (list, tuple)) else list(cotangents)
    if len(outs) != len(cots):
        raise GradientError(f"vjp: {len(outs)} outputs but {len(cots)} cotangents")
    targets, rebuild = _flatten(wrt)
    api = _api()
    graph = outs[0].graph
    for t in targets + outs:
        if t.graph is not graph:
            raise GradientError("vjp: outputs and wrt belong to different graphs")
    for t in targets:
        if not is_float(t.dtype):
            raise GradientError(f"grad: {_label(t)} is {t.dtype}; gradients are taken with "
                                "respect to float tensors only")
    cots = [_cotangent(c, o, graph) for o, c in zip(outs, cots)]

    grads, connected = _backprop(graph, [o.id for o in outs], cots, {t.id for t in targets})
    results = []
    for t in targets:
        g = grads.get(t.id)
        if g is None:
            # Connected only through piecewise-constant ops (argmax, comparisons, integer
            # casts, stop_gradient): the gradient is zero. Not connected at all: an error
            # unless asked for zeros, as Theano does, since it is usually a mistake.
            if t.id not in connected and disconnected == "raise":
                raise GradientError(f"grad: the cost does not depend on {_label(t)}; pass "
                                    "disconnected='zero' to get zeros")
            g = api.zeros_like(t)
        results.append(g)
    return rebuild(results)


def _label(t) -> str:
    return f"{t.name!r} ({t.type})" if t.name else f"node %{t.id} ({t.type})"


def _cotangent(c, out, graph):
    """``c`` as a tensor of ``out``'s shape: same rank, static dims equal; symbolic dims
    become call-time requirements (through broadcast_to)."""
    from .tensor import Tensor
    api = _api()
    if isinstance(c, Tensor):
        if c.graph is not graph:
            raise GradientError("vjp: a cotangent belongs to another graph than the outputs")
    else:
        c = api.constant(c, graph=graph)
    same = c.ndim == out.ndim and all(
        not (type(a) is int and type(b) is int and a != b) for a, b in zip(c.shape, out.shape))
    if not same:
        raise GradientError(f"vjp: cotangent shape {fmt_shape(c.shape)} does not match the "
                            f"output shape {fmt_shape(out.shape)}")
    if tuple(c.shape) != tuple(out.shape):
        c = api.broadcast_to(c, out.shape)
    return c


def _backprop(graph, output_ids, cotangents, target_ids):
    api = _api()
    order = graph.topo_order(output_ids)
    # Only nodes on a path from a target to an output need a cotangent.
    relevant = set(target_ids)
    for nid in order:
        if nid not in relevant and any(i in relevant for i in graph.inputs(nid)):
            relevant.add(nid)
    pending: dict = {}
    for oid, c in zip(output_ids, cotangents):
        c = api.cast(c, graph.type(oid).dtype) if c.dtype != graph.type(oid).dtype else c
        pending.setdefault(oid, []).append(c)
    done = {}
    for nid in reversed(order):
        parts = pending.pop(nid, None)
        if not parts or nid not in relevant:
            continue
        g = parts[0]
        for p in parts[1:]:
            g = g + p
        done[nid] = g
        node = graph.node(nid)
        op, ins = node["op"], node["inputs"]
        if not ins or not any(i in relevant for i in ins):
            continue
        if not op.differentiable:
            continue
        in_tensors = [graph.tensor(i) for i in ins]
        in_grads = op.vjp(in_tensors, graph.tensor(nid), g)
        if len(in_grads) != len(ins):
            raise GradientError(f"vjp of {op} returned {len(in_grads)} cotangents for "
                                f"{len(ins)} inputs (node created at "
                                f"{format_source(node['source'])})")
        for i, gi in zip(ins, in_grads):
            if gi is None or i not in relevant or not is_float(graph.type(i).dtype):
                continue
            want = graph.type(i)
            if tuple(gi.shape) != tuple(want.shape):
                raise GradientError(f"vjp of {op} gave a cotangent of shape {gi.shape} for an "
                                    f"input of shape {want.shape} (node created at "
                                    f"{format_source(node['source'])})")
            if gi.dtype != want.dtype:
                gi = api.cast(gi, want.dtype)
            pending.setdefault(i, []).append(gi)
    connected = set(target_ids).intersection(order)
    return {t: done[t] for t in target_ids if t in done}, connected
