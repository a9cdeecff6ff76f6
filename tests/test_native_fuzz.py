"""Differential fuzzing of the code generator: random graphs (the rewrite fuzzer's
generator: elementwise chains, reductions, softmax, shape ops, matmul, slicing,
concatenation, with and without gradients; random shapes with broadcasting, float32
and float64) compiled to native code agree with the reference executor.

Runs SYMGRAPH_NATIVE_FUZZ_EXAMPLES examples (60 by default: each compiles one
function); set it higher for a longer search.
"""
import os

import numpy as np
from hypothesis import HealthCheck, given, reject, settings

import symgraph as sg
from symgraph.errors import SymgraphError
from .test_rewrite_fuzz import programs, _agree, _build

EXAMPLES = int(os.environ.get("SYMGRAPH_NATIVE_FUZZ_EXAMPLES", "60"))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(programs())
def test_native_code_computes_what_the_reference_does(prog):
    dtype, shapes, steps, grad, seed = prog
    rng = np.random.default_rng(seed)
    arrays = [(rng.standard_normal(s) * 1.5).astype(dtype) for s in shapes]
    with sg.Graph():
        xs = [sg.placeholder(shape=a.shape, dtype=dtype, name=f"x{i}")
              for i, a in enumerate(arrays)]
        try:
            outs = _build(steps, grad)(*xs)
        except SymgraphError:
            reject()
        ref = sg.function(xs, outs, mode="reference")
        nat = sg.function(xs, outs, mode="native")
    _agree(ref(*arrays), nat(*arrays), dtype, rtol32=5e-4, specials=True)
