"""Matrix-product rules: transposes become MatMul flags, vector products get their own form.

The code generator passes MatMul's transpose flags to GEMM, so a transposed operand is
never copied. Inner products become a fused multiply-and-sum, and a row vector times a
matrix becomes the matrix (flagged transposed) times a column vector: the GEMV shape.
"""
from __future__ import annotations

from symgraph.ops import elementwise as E
from symgraph.ops import reductions as R
from symgraph.ops.linalg import MatMul
from symgraph.ops.shape import Reshape, Transpose
from symgraph.types import is_float

from .rewrite import rewrite


def _swaps_last_two(rw, n) -> bool:
    """Whether ``n`` is a transpose that exchanges the last two axes and nothing else."""
    if not rw.isa(n, Transpose):
        return False
    axes = rw.op(n).axes
    k = len(axes)
    return k >= 2 and axes == tuple(range(k - 2)) + (k - 1, k - 2)


@rewrite("simplify", MatMul)
def fold_transpose_into_matmul(rw, n):
    """matmul(a.T, b) -> matmul(a, b, transpose_a=True), and the same for b"""
    a, b = rw.ins(n)
    op = rw.op(n)
    ta, tb = op.transpose_a, op.transpose_b
    if _swaps_last_two(rw, a):
        a, ta = rw.ins(a)[0], not ta
    if _swaps_last_two(rw, b):
        b, tb = rw.ins(b)[0], not tb
    if (a, b) != rw.ins(n):
        return rw.make(MatMul(transpose_a=ta, transpose_b=tb), a, b)


@rewrite("simplify", Transpose)
def fold_transpose_of_matmul(rw, n):
    """transpose(a @ b) -> b.T @ a.T, with the transposes as flags"""
    (m,) = rw.ins(n)
    if not (_swaps_last_two(rw, n) and rw.isa(m, MatMul)):
        return None
    a, b = rw.ins(m)
    op = rw.op(m)
    return rw.make(MatMul(transpose_a=not op.transpose_b, transpose_b=not op.transpose_a), b, a)


def _flat(rw, x):
    k = rw.shape(x)[0] * rw.shape(x)[1]
    return rw.make(Reshape(shape=(k,)), x)


@rewrite("specialize", MatMul)
def specialize_inner_product(rw, n):
    """(1, k) @ (k, 1) -> sum(a * b): an inner product is one fused loop, not a GEMM call.
    Reassociates the sum."""
    a, b = rw.ins(n)
    if rw.shape(n) != (1, 1) or len(rw.shape(a)) != 2 or len(rw.shape(b)) != 2 \
            or not is_float(rw.dtype(n)) or rw.dtype(a) != rw.dtype(b):
        return None
    prod = rw.make(E.Multiply(), _flat(rw, a), _flat(rw, b))
    total = rw.make(R.Sum(axes=(0,), keepdims=False), prod)
    return rw.conform(rw.make(Reshape(shape=(1, 1)), total), n)


@rewrite("specialize", MatMul)
def specialize_vector_matrix(rw, n):
    """(1, k) @ B -> (B^T @ (k, 1)) reshaped to (1, n): a matrix-vector product (GEMV)"""
    a, b = rw.ins(n)
    op = rw.op(n)
    sa, sb = rw.shape(a), rw.shape(b)
    if len(sa) != 2 or len(sb) != 2 or op.transpose_a or sa[0] != 1 or rw.shape(n)[1] == 1:
        return None
    col = rw.make(Reshape(shape=(sa[1], 1)), a)
    mv = rw.make(MatMul(transpose_a=not op.transpose_b, transpose_b=False), b, col)
    return rw.make(Reshape(shape=rw.shape(n)), mv)
