"""Op cases of the linalg family: MatMul (with transpose flags), matmul, dot, outer."""
import numpy as np

import symgraph as sg
from symgraph.op import apply
from symgraph.ops.linalg import MatMul
from ..opinfo import OpCase, register, integers

MATMUL_SHAPES = [
    ((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((1, 3, 4), (2, 4, 5)),
    ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4,)), ((4,), (2, 4, 3)),
    ((0, 4), (4, 5)), ((3, 0), (0, 5)), ((1, 1), (1, 1)), ((2, 0, 3), (3, 2)), ((0,), (0,)),
]


def _t(x):
    return np.swapaxes(x, -1, -2)


register(
    OpCase("matmul", sg.matmul, np.matmul, MATMUL_SHAPES),
    OpCase("matmul[@]", lambda a, b: a @ b, lambda a, b: a @ b, [((3, 4), (4, 2))]),
    OpCase("matmul[float32@float64]", sg.matmul, np.matmul, [((2, 3), (3, 2))],
           input_dtypes=("float32", "float64"), dtypes=("float64",)),
    OpCase("matmul[int]", sg.matmul, np.matmul, [((2, 3), (3, 4)), ((2, 2, 3), (3,))],
           inputs=(integers(-5, 5), integers(-5, 5)), input_dtypes=("int64", "int64"),
           dtypes=("float64",)),
    OpCase("matmul[int32@int64]", sg.matmul, np.matmul, [((2, 3), (3, 4))],
           inputs=(integers(-5, 5), integers(-5, 5)), input_dtypes=("int32", "int64"),
           dtypes=("float64",)),
    OpCase("matmul[int@float]", sg.matmul, np.matmul, [((2, 3), (3, 4))],
           inputs=(integers(-5, 5), None), input_dtypes=("int32", None)),
)

for _ta in (False, True):
    for _tb in (False, True):
        if not (_ta or _tb):
            continue
        register(OpCase(
            f"MatMul[transpose_a={_ta},transpose_b={_tb}]",
            lambda a, b, ta=_ta, tb=_tb: apply(MatMul(transpose_a=ta, transpose_b=tb), a, b),
            lambda a, b, ta=_ta, tb=_tb: np.matmul(_t(a) if ta else a, _t(b) if tb else b),
            [((4, 3) if _ta else (3, 4), (5, 4) if _tb else (4, 5)),
             ((2, 1, 4, 3) if _ta else (2, 1, 3, 4), (3, 5, 4) if _tb else (3, 4, 5)),
             ((0, 2) if _ta else (2, 0), (3, 0) if _tb else (0, 3))]))

register(
    OpCase("dot", sg.dot, np.dot,
           [((), ()), ((), (3,)), ((2, 3), ()), ((4,), (4,)), ((2, 3), (3,)), ((3,), (3, 2)),
            ((2, 3), (3, 4)), ((0,), (0,)), ((2, 0), (0, 3))]),
    OpCase("dot[method]", lambda a, b: a.dot(b), lambda a, b: a.dot(b), [((2, 3), (3, 2))]),
    OpCase("outer", sg.outer, np.outer, [((3,), (4,)), ((2, 2), (3,)), ((0,), (3,)), ((), (2,)),
                                        ((1,), (1, 1))]),
)
