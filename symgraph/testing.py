"""``sg.testing``: tools to check user-defined graphs, such as gradients by finite differences."""
from __future__ import annotations

import numpy as np

from .errors import GradientError


def numeric_grad(f, arrays, eps=1e-6):
    """Central finite differences of the scalar ``f(*arrays)`` in float64."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        flat, gflat = a.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            h = eps * max(1.0, abs(old))
            flat[i] = old + h
            up = float(f(*arrays))
            flat[i] = old - h
            down = float(f(*arrays))
            flat[i] = old
            gflat[i] = (up - down) / (2 * h)
        grads.append(g)
    return grads


def check_grad(fn, inputs, *, eps=1e-6, rtol=1e-4, atol=1e-6, mode="reference"):
    """Compare symgraph's symbolic gradient of ``fn`` with finite differences (float64).

    ``fn`` takes one Tensor per array in ``inputs`` and returns a Tensor; a non-scalar
    result is reduced with a fixed random projection so every output element counts.
    Raises AssertionError naming the input and the worst element when they disagree.

    >>> sg.testing.check_grad(lambda a, b: sg.sum(sg.exp(a * b)), [A, B])
    """
    from . import api
    from .function import function
    from .graph import Graph
    from .grad import grad

    arrays = [np.asarray(a, dtype=np.float64) for a in inputs]
    with Graph("check_grad"):
        xs = [api.placeholder(shape=a.shape, dtype="float64", name=f"input{i}")
              for i, a in enumerate(arrays)]
        out = api.as_tensor(fn(*xs))
        if out.ndim:
            rng = np.random.default_rng(0)
            proj = rng.standard_normal(tuple(int(d) for d in out.shape))
            out = api.sum(api.cast(out, "float64") * proj)
        grads = grad(out, xs, disconnected="zero")
        f_val = function(xs, out, mode=mode)
        f_grad = function(xs, grads, mode=mode)
    symbolic = f_grad(*arrays)
    numeric = numeric_grad(f_val, arrays, eps)
    for i, (s, n) in enumerate(zip(symbolic, numeric)):
        if not np.allclose(s, n, rtol=rtol, atol=atol, equal_nan=False):
            err = np.abs(s - n)
            k = np.unravel_index(np.argmax(err), err.shape) if err.ndim else ()
            raise AssertionError(f"check_grad: gradient of input {i} differs at index {k}: "
                                 f"symbolic {s[k]!r}, finite differences {n[k]!r} "
                                 f"(max abs error {err.max():.3g})")
    return symbolic
