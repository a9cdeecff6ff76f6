"""Indexing: basic slicing (``x[1:-1, None, ::-2]``), gathers (``take``, ``x[idx]``) and one_hot.

Basic indexing is one ``Slice`` op that keeps the rank (an int index keeps its axis at
size 1), followed by a Reshape that drops int-indexed axes and inserts ``None`` axes.
Keeping the rank makes Slice and its gradient SliceGrad plain strided copies for the
code generator. Slice bounds are kept as the user wrote them and resolved against the
dim at run time, so one compiled function serves every batch size.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from .. import dims as D
from ..errors import DTypeError, ShapeError, UnsupportedError
from ..op import Op, apply
from ..types import TensorType, as_dtype, fmt_shape, is_int

_INDEX_DTYPES = (np.dtype("int32"), np.dtype("int64"))


def _api():
    from .. import api
    return api


# -- symbolic dim arithmetic for slice lengths ------------------------------------------------
def nonneg(d) -> bool:
    """True when ``d`` is provably >= 0. Conservative: False means "not known".

    Sizes are >= 0, and so are sums, products, floordivs, mins and maxes of sizes. A
    ``min`` subtracted (or a ``max`` added) is bounded by one of its arguments, which
    proves e.g. ``N - min(1, N) >= 0``.
    """
    if type(d) is int:
        return d >= 0
    if all(c > 0 and all(isinstance(a, str) or all(nonneg(x) for x in a.args) for a in m)
           for m, c in d.terms if m):
        return dict(d.terms).get((), 0) >= 0
    for mono, coeff in d.terms:
        if len(mono) == 1 and not isinstance(mono[0], str) and \
                (mono[0].kind, coeff < 0) in (("min", True), ("max", False)):
            rest = D.sub(d, D.mul(coeff, D.SymDim(((mono, 1),))))
            if any(nonneg(D.add(rest, D.mul(coeff, arg))) for arg in mono[0].args):
                return True
    return False


def _min(a, b):
    """dims.dmin, first using that sizes are non-negative (so ``min(b, n + b) = b``)."""
    if nonneg(D.sub(b, a)):
        return a
    if nonneg(D.sub(a, b)):
        return b
    return D.dmin(a, b)


def _max(a, b):
    if nonneg(D.sub(a, b)):
        return a
    if nonneg(D.sub(b, a)):
        return b
    return D.dmax(a, b)


def slice_length(n, start, stop, step):
    """len(range(n)[start:stop:step]) for a static or symbolic ``n`` (Python's rules).

    ``start``/``stop`` are None, ints, or symbolic dims, which must be >= 0 at run time.
    """
    if all(type(v) is int or v is None for v in (n, start, stop)):
        return len(range(*slice(start, stop, step).indices(n)))
    def given(v):   # a symbolic bound is a position, never counted from the end
        return not (type(v) is int and v < 0)

    if step > 0:   # clamp both bounds to [0, n]
        lo = 0 if start is None else (_min(start, n) if given(start) else _max(D.add(n, start), 0))
        hi = n if stop is None else (_min(stop, n) if given(stop) else _max(D.add(n, stop), 0))
    else:          # walk down from hi to lo (exclusive), both clamped to [-1, n - 1]
        last = D.sub(n, 1)
        hi = last if start is None else (_min(start, last) if given(start)
                                         else _max(D.add(n, start), -1))
        lo = -1 if stop is None else (_min(stop, last) if given(stop)
                                      else _max(D.add(n, stop), -1))
    k = abs(step)
    # ceil(span / k) as a floordiv of a non-negative span, so later rules can see it is >= 0
    length = D.floordiv(D.add(D.sub(hi, lo), k - 1), k)
    # with a default bound, the other bound lies inside the range: the span is >= 0
    return length if start is None or stop is None else _max(length, 0)


def _check_index(op, i, n, axis, shape):
    if type(n) is int and not -n <= i < n:
        raise IndexError(f"{op}: index {i} is out of bounds for axis {axis} with size {n} "
                         f"(tensor shape {fmt_shape(shape)})")


def _py_index(entry, n, axis, op):
    """A key entry as a Python slice over a concrete axis; an int entry keeps the axis."""
    if isinstance(entry, tuple):
        return slice(*entry)
    if not -n <= entry < n:
        raise IndexError(f"{op}: index {entry} is out of bounds for axis {axis} with size {n}")
    j = entry + n if entry < 0 else entry
    return slice(j, j + 1)


@dataclass(frozen=True, kw_only=True)
class Slice(Op):
    """``x[key]`` with one entry per axis: an int (the axis stays, with size 1) or a
    ``(start, stop, step)`` triple exactly as written by the user (a symbolic bound is a
    position >= 0, as the gradients of pad and concatenate use). An int on a symbolic dim
    is bounds-checked when the function runs (the lowering must check it too)."""

    key: tuple

    def infer(self, x):
        if len(self.key) != x.ndim:
            raise ShapeError(f"slice: key has {len(self.key)} entries for a tensor of rank "
                             f"{x.ndim} {fmt_shape(x.shape)}")
        out = []
        for axis, (e, n) in enumerate(zip(self.key, x.shape)):
            if isinstance(e, tuple):
                out.append(slice_length(n, *e))
            else:
                _check_index(self.name, e, n, axis, x.shape)
                out.append(1)
        return TensorType(x.dtype, tuple(out), x.weak)

    def reference(self, x):
        return x[tuple(_py_index(e, n, k, self.name)
                       for k, (e, n) in enumerate(zip(self.key, x.shape)))]

    def vjp(self, inputs, output, g):
        return [apply(SliceGrad(key=self.key, shape=inputs[0].shape), g)]


@dataclass(frozen=True, kw_only=True)
class SliceGrad(Op):
    """Zeros of ``shape`` with the input written into ``[key]``: the transpose of Slice."""

    key: tuple
    shape: tuple

    def infer(self, g):
        want = Slice(key=self.key).infer(TensorType(g.dtype, self.shape)).shape
        if len(want) != g.ndim or any(type(a) is int and type(b) is int and a != b
                                      for a, b in zip(want, g.shape)):
            raise ShapeError(f"slice_grad: cotangent {fmt_shape(g.shape)} does not fit "
                             f"the slice {fmt_shape(want)} of {fmt_shape(self.shape)}")
        return TensorType(g.dtype, self.shape)

    def requires(self, g):
        want = Slice(key=self.key).infer(TensorType(g.dtype, self.shape)).shape
        return [(a, b) for a, b in zip(want, g.shape) if a != b]

    def reference(self, g):
        out = np.zeros(self.shape, dtype=g.dtype)
        out[tuple(_py_index(e, n, k, self.name)
                  for k, (e, n) in enumerate(zip(self.key, self.shape)))] = g
        return out

    def vjp(self, inputs, output, g):
        return [apply(Slice(key=self.key), g)]


# -- getitem --------------------------------------------------------------------------------
def _bound(v, what):
    if v is None:
        return None
    if not isinstance(v, (int, np.integer, D.SymDim)) and hasattr(v, "graph"):
        raise UnsupportedError(f"getitem: a slice {what} must be static (an int or a dim), "
                               "not a Tensor: the result's shape would depend on data")
    if isinstance(v, D.SymDim):
        if not nonneg(v):
            raise UnsupportedError(f"getitem: the symbolic slice {what} {v} may be negative; "
                                   "only sizes (sums and products of dims) are supported")
        return v
    if isinstance(v, bool) or not hasattr(v, "__index__"):
        raise IndexError(f"getitem: slice {what} must be an int or None, got {v!r}")
    return operator.index(v)


def _slice_entry(s: slice):
    step = 1 if s.step is None else _bound(s.step, "step")
    if isinstance(step, D.SymDim):
        raise UnsupportedError("getitem: a slice step must be a static int")
    if step == 0:
        raise ValueError("getitem: slice step cannot be zero")
    return (_bound(s.start, "start"), _bound(s.stop, "stop"), step)


def _is_array_index(k) -> bool:
    from ..tensor import Tensor
    return isinstance(k, (Tensor, np.ndarray, list))


def _advanced(x, key):
    """``x[idx]`` / ``x[:, idx]``: one integer index array, full slices elsewhere -> take."""
    api = _api()
    arrays = [k for k, e in enumerate(key) if _is_array_index(e)]
    ell = [k for k, e in enumerate(key) if e is Ellipsis]
    full = all(e is Ellipsis or _is_array_index(e) or
               (isinstance(e, slice) and e == slice(None)) for e in key)
    if len(arrays) != 1 or len(ell) > 1 or not full:
        raise UnsupportedError(
            f"getitem: advanced indexing is supported only as one integer index array with "
            f"full slices elsewhere (x[idx], x[:, idx]); got {key!r}. Use sg.take or sg.where.")
    from ..tensor import Tensor
    idx = key[arrays[0]]
    if not isinstance(idx, Tensor):
        arr = np.asarray(idx)
        if arr.size == 0 and arr.dtype.kind == "f":  # [] is an empty integer index
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "biu":
            raise DTypeError(f"getitem: index arrays must be integers, got {arr.dtype}")
        idx = arr if arr.dtype.kind == "b" else api.constant(arr.astype(np.int64), graph=x.graph)
    if idx.dtype == np.dtype(bool):
        raise UnsupportedError("getitem: boolean mask indexing is not supported (the result's "
                               "size would depend on the data); use sg.where(mask, x, 0)")
    if not is_int(idx.dtype):
        raise DTypeError(f"getitem: index arrays must be integers, got {idx.dtype}")
    p = arrays[0]
    consumed = len(key) - len(ell)
    if consumed > x.ndim:
        raise IndexError(f"getitem: too many indices for a tensor of shape {fmt_shape(x.shape)}")
    axis = x.ndim - (len(key) - p) if ell and ell[0] < p else p
    return take(x, idx, axis=axis)


def getitem(x, key):
    """``x[key]`` with numpy semantics for ints, slices (any step), None and ``...``.

    One integer index array (``x[idx]``, ``x[:, idx]``) is a gather (see ``take``);
    boolean masks and several index arrays raise UnsupportedError.

    >>> y = x[..., None, 1:-1:2]
    """
    api = _api()
    x = api.as_tensor(x)
    key = key if isinstance(key, tuple) else (key,)
    if any(_is_array_index(e) for e in key):
        return _advanced(x, key)
    n_ell = sum(e is Ellipsis for e in key)
    if n_ell > 1:
        raise IndexError("getitem: an index can only have a single ellipsis ('...')")
    consumed = sum(e is not None and e is not Ellipsis for e in key)
    if consumed > x.ndim:
        raise IndexError(f"getitem: too many indices for a tensor of shape "
                         f"{fmt_shape(x.shape)}: {x.ndim}-dimensional, but {consumed} "
                         "were indexed")
    if not n_ell:
        key = key + (Ellipsis,)
    entries, out_shape_plan = [], []   # plan: ("keep", axis) or ("new",)
    axis = 0
    for e in key:
        if e is Ellipsis:
            for _ in range(x.ndim - consumed):
                entries.append((None, None, 1))
                out_shape_plan.append(("keep", axis))
                axis += 1
        elif e is None:
            out_shape_plan.append(("new",))
        elif isinstance(e, slice):
            entries.append(_slice_entry(e))
            out_shape_plan.append(("keep", axis))
            axis += 1
        elif isinstance(e, (bool, np.bool_)):
            raise UnsupportedError("getitem: a bool index is a mask; masks are not supported")
        elif hasattr(e, "__index__") and not isinstance(e, D.SymDim):
            i = operator.index(e)
            _check_index("getitem", i, x.shape[axis], axis, x.shape)
            entries.append(i)
            axis += 1
        else:
            raise IndexError(f"getitem: only ints, slices, None, '...' and integer index "
                             f"arrays are valid indices; got {e!r}")
    y = x
    if any(e != (None, None, 1) for e in entries):
        y = apply(Slice(key=tuple(entries)), x)
    shape = tuple(1 if p[0] == "new" else y.shape[p[1]] for p in out_shape_plan)
    return api.reshape(y, shape)


# -- gathers --------------------------------------------------------------------------------
def _gather_axis_size(op, x, axis):
    if axis is None:
        return D.product(x.shape)
    if not 0 <= axis < x.ndim:
        raise ShapeError(f"{op}: axis {axis} is out of range for a tensor of shape "
                         f"{fmt_shape(x.shape)}")
    return x.shape[axis]


def _check_indices_dtype(op, idx):
    if idx.dtype not in _INDEX_DTYPES:
        raise DTypeError(f"{op}: indices must be int32 or int64, got {idx.dtype}")


@dataclass(frozen=True, kw_only=True)
class Take(Op):
    """numpy.take (mode="raise"): negative indices count from the end; others out of range
    raise IndexError naming the bound. ``axis=None`` gathers from the flattened tensor."""

    axis: object = None

    def infer(self, x, idx):
        _check_indices_dtype(self.name, idx)
        _gather_axis_size(self.name, x, self.axis)
        if self.axis is None:
            return TensorType(x.dtype, idx.shape, x.weak)
        a = self.axis
        return TensorType(x.dtype, x.shape[:a] + idx.shape + x.shape[a + 1:], x.weak)

    def reference(self, x, idx):
        n = x.size if self.axis is None else x.shape[self.axis]
        what = (f"axis {self.axis} with size {n}" if self.axis is not None
                else f"the flattened tensor of size {n}")
        check_bounds(self.name, idx, -n, n, what)
        return np.take(x, idx, axis=self.axis)

    def vjp(self, inputs, output, g):
        x, idx = inputs
        return [apply(TakeGrad(axis=self.axis, shape=x.shape), g, idx), None]


def check_bounds(op, idx, lo, hi, what):
    """Refuse any index outside [lo, hi) with an IndexError naming the op and the bound."""
    if idx.size:
        bad = (idx < lo) | (idx >= hi)
        if bad.any():
            raise IndexError(f"{op}: index {idx[bad].flat[0]} is out of bounds for {what}; "
                             f"valid indices are [{lo}, {hi})")


@dataclass(frozen=True, kw_only=True)
class TakeGrad(Op):
    """Zeros of ``shape`` with g scatter-added at the indices (np.add.at): Take's transpose."""

    axis: object = None
    shape: tuple = ()

    def infer(self, g, idx):
        _check_indices_dtype(self.name, idx)
        want = Take(axis=self.axis).infer(TensorType(g.dtype, self.shape), idx).shape
        if len(want) != g.ndim:
            raise ShapeError(f"take_grad: cotangent {fmt_shape(g.shape)} does not fit "
                             f"{fmt_shape(want)}")
        return TensorType(g.dtype, self.shape)

    def reference(self, g, idx):
        out = np.zeros(self.shape, dtype=g.dtype)
        if self.axis is None:
            np.add.at(out.reshape(-1), idx, g)
        else:
            np.add.at(out, (slice(None),) * self.axis + (idx,), g)
        return out

    def vjp(self, inputs, output, g):
        return [take(g, inputs[1], axis=self.axis), None]


def take(x, indices, axis=None):
    """Elements of ``x`` at integer ``indices`` along ``axis`` (numpy.take).

    >>> rows = sg.take(table, ids, axis=0)
    """
    api = _api()
    x = api.as_tensor(x)
    indices = api.as_tensor(indices, graph=x.graph)
    if axis is not None:
        a = operator.index(axis)
        if not -x.ndim <= a < x.ndim:
            raise ShapeError(f"take: axis {a} is out of range for a tensor of shape "
                             f"{fmt_shape(x.shape)}")
        axis = a % x.ndim
    return apply(Take(axis=axis), x, indices)


@dataclass(frozen=True, kw_only=True)
class OneHot(Op):
    """``labels[..., None] == arange(depth)`` as ``dtype``. Labels outside [0, depth) raise
    IndexError when the function runs: unlike take, a negative label is refused, because
    it is almost always an "ignore" marker or a bug, never a class counted from the end."""

    depth: object
    dtype: np.dtype
    differentiable = False

    def infer(self, labels):
        if not is_int(labels.dtype):
            raise DTypeError(f"one_hot: labels must be integers, got {labels.dtype}")
        return TensorType(self.dtype, labels.shape + (self.depth,))

    def reference(self, labels):
        check_bounds(self.name, labels, 0, self.depth, f"depth {self.depth}")
        return (labels[..., None] == np.arange(self.depth)).astype(self.dtype)

    def vjp(self, inputs, output, g):
        return [None]


def one_hot(labels, depth, dtype="float32"):
    """One-hot rows of length ``depth`` (an int or a symbolic dim such as ``x.shape[1]``).
    A label outside [0, depth), negative ones included, raises IndexError when the
    function runs.

    >>> targets = sg.one_hot(y, logits.shape[1], dtype=logits.dtype)
    """
    labels = _api().as_tensor(labels)
    depth = D.normalize(depth)
    if type(depth) is int and depth < 0:
        raise ShapeError(f"one_hot: depth must be >= 0, got {depth}")
    return apply(OneHot(depth=depth, dtype=as_dtype(dtype, what="one_hot")), labels)
