"""Horizontal fusion: sibling kernels over the same space that read a common input run
as one loop nest (one kernel function, several outputs), with the same results as the
reference executor."""
import re

import numpy as np
import pytest

import symgraph as sg
from symgraph.compiler.horizontal import grouped_order, sibling_groups

from .test_rewrite_util import assert_same

DTYPES = [np.float32, np.float64]
rng = np.random.default_rng(11)


def _pair(build, shapes, dtype):
    """(reference function, native function) of ``build(*placeholders)``."""
    with sg.Graph():
        xs = [sg.placeholder(shape=s, dtype=dtype, name=f"x{k}") for k, s in enumerate(shapes)]
        outs = build(*xs)
        ref = sg.function(xs, outs, mode="reference")
        nat = sg.function(xs, outs, mode="native")
    return ref, nat


def _kernel_functions(f):
    """Names of the loop kernels defined in the generated module."""
    return re.findall(r'define internal void @"(k\.[^"]+)"', f.artifact.ir or f._full_artifact("ir").ir)


def _groups(f):
    return {tuple(g) for g in f.memory_plan.groups.values()}


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)


def _loss_and_grad(x):
    loss = sg.sum(sg.tanh(x * 1.5 - 0.25) ** 2 + sg.exp(-x) * sg.sigmoid(x))
    (gx,) = sg.grad(loss, [x])
    return [loss, gx]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_value_and_gradient_are_one_loop(dtype, n):
    ref, nat = _pair(_loss_and_grad, [("n",)], dtype)
    x = rng.standard_normal(n).astype(dtype) * 3
    assert_same(ref(x), nat(x), **_tol(dtype))
    (group,) = _groups(nat)
    assert len(group) == 2
    assert len(_kernel_functions(nat)) == 1      # the loss and the gradient: one loop
    assert nat.memory_plan.scratch_bytes == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 5), (1, 5), (4, 1), (0, 3), (3, 0), (1, 1)])
def test_reductions_along_different_axes_and_an_elementwise_output(dtype, shape):
    def build(x):
        return [sg.sum(sg.tanh(x), axis=0), sg.sum(sg.exp(-x) * x, axis=1),
                sg.sin(x) * 2.0, sg.sum(x * x), sg.max(sg.cos(x), axis=0, keepdims=True)]
    if 0 in shape[:1]:           # max over an empty axis 0 is an error; keep it defined
        def build(x):  # noqa: F811
            return [sg.sum(sg.tanh(x), axis=0), sg.sum(sg.exp(-x) * x, axis=1),
                    sg.sin(x) * 2.0, sg.sum(x * x)]
    ref, nat = _pair(build, [shape], dtype)
    x = rng.standard_normal(shape).astype(dtype)
    assert_same(ref(x), nat(x), **_tol(dtype))
    assert max(len(g) for g in _groups(nat)) >= 4


@pytest.mark.parametrize("dtype", DTYPES)
def test_symbolic_dims_with_several_sizes_and_broadcast_inputs(dtype):
    def build(x, row):
        return [sg.sum(sg.sigmoid(x + row), axis=1), sg.tanh(x + row) * row,
                sg.sum(sg.exp(x + row), axis=0)]
    ref, nat = _pair(build, [("a", "b"), ("b",)], dtype)
    for a, b in [(3, 4), (1, 9), (5, 1), (0, 2), (2, 0), (17, 33)]:
        x = rng.standard_normal((a, b)).astype(dtype)
        row = rng.standard_normal(b).astype(dtype)
        assert_same(ref(x, row), nat(x, row), **_tol(dtype))
    assert max(len(g) for g in _groups(nat)) == 3


def test_a_kernel_that_reads_its_siblings_value_is_not_merged_with_it():
    def build(x):
        s = sg.sum(sg.exp(x), axis=1, keepdims=True)        # needed by the next one
        return [s, sg.exp(x) / s]
    ref, nat = _pair(build, [(3, 4)], np.float32)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    assert_same(ref(x), nat(x), **_tol(np.float32))
    assert not _groups(nat)


def test_kernels_over_different_spaces_or_inputs_stay_apart():
    def build(x, y, z):
        return [sg.tanh(x) * 2.0, sg.exp(y) + 1.0, sg.sum(sg.exp(z) * 2.0)]
    ref, nat = _pair(build, [(3, 4), (3, 4), (5,)], np.float64)
    xs = [rng.standard_normal(s) for s in [(3, 4), (3, 4), (5,)]]
    assert_same(ref(*xs), nat(*xs), **_tol(np.float64))
    assert not _groups(nat)


def test_common_subexpressions_of_merged_kernels_are_emitted_once():
    def build(x):
        return [sg.tanh(x * 3.0) + 1.0, sg.tanh(x * 3.0) * x]
    with sg.Graph():
        x = sg.placeholder(shape=(64,), dtype=np.float32, name="x")
        f = sg.function([x], build(x), mode="native")
    ir = f._full_artifact("ir").ir
    (kernel,) = [k for k in ir.split("\ndefine ") if k.startswith('internal void @"k.')]
    # a kernel in vector form computes in its body function (vector_kernels.py)
    body = [k for k in ir.split("\ndefine ") if '@"vbody.k.' in k.split("\n", 1)[0]]
    assert (kernel + "".join(body)).count("sg.vm.tanh") == 1
    xv = rng.standard_normal(64).astype(np.float32)
    t = np.tanh(xv * np.float32(3))
    a, b = f(xv)
    np.testing.assert_allclose(a, t + 1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, t * xv, rtol=1e-5, atol=1e-6)


def test_grouped_order_keeps_dependencies():
    """Every node's inputs are scheduled before it, and a group's members are adjacent."""
    with sg.Graph():
        x = sg.placeholder(shape=(8,), name="x")
        y = sg.placeholder(shape=(8,), name="y")
        outs = _loss_and_grad(x) + [sg.sum(sg.exp(y) * x), sg.tanh(x + y) * 2.0]
        f = sg.function([x, y], outs, mode="reference")
    prog = f.optimized
    groups = sibling_groups(prog)
    assert groups
    order, kept = grouped_order(prog, groups)
    pos = {n: k for k, n in enumerate(order)}
    for n in order:
        assert all(pos[i] < pos[n] for i in prog.graph.inputs(n) if i in pos)
    for grp in set(kept.values()):
        ks = sorted(pos[m] for m in grp)
        assert ks == list(range(ks[0], ks[0] + len(grp)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_full_reductions_vectorize_with_several_accumulators(dtype):
    """sum and max over the innermost axis keep several vector accumulators (the adds
    reassociate), in one loop for both."""
    with sg.Graph():
        x = sg.placeholder(shape=("n",), dtype=dtype, name="x")
        f = sg.function([x], [sg.sum(x * x), sg.max(x * 2.0)], mode="native")
    lanes = 32 // np.dtype(dtype).itemsize
    ty = "float" if dtype == np.float32 else "double"
    (kernel,) = [k for k in f.llvm_ir.split("\ndefine ") if "@k." in k.split("(")[0]]
    accumulators = re.findall(rf"phi <{lanes} x {ty}>", kernel)
    assert len(accumulators) >= 2 * 2            # two reductions, interleaved
    for n in (1, 7, 1001):
        xv = rng.standard_normal(n).astype(dtype)
        s, m = f(xv)
        np.testing.assert_allclose(s, (xv.astype(np.float64) ** 2).sum(), rtol=1e-5)
        assert m == (xv * dtype(2)).max()
    with pytest.raises(sg.errors.CallShapeError, match="max of an empty axis"):
        f(np.zeros(0, dtype))
