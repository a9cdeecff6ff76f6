"""symgraph: a define-then-run graph compiler for array programs.

    import numpy as np, symgraph as sg
    x = sg.placeholder(shape=(None, 3), name="x")
    w = sg.shared(np.ones((3,), np.float32), name="w")
    loss = sg.sum(sg.exp(x * w))
    (gw,) = sg.grad(loss, [w])
    step = sg.function([x], loss, updates=[(w, w - 0.1 * gw)])
"""
from .api import *  # noqa: F401,F403  (the public functions)
from .api import __all__ as _api_all
from .dims import SymDim
from .errors import (SymgraphError, ShapeError, DTypeError, GraphError, GradientError,
                     InputError, UnsupportedError)
from .function import function, Function
from .grad import grad, vjp
from .graph import Graph, get_default_graph, reset_default_graph
from .printing import debugprint
from .tensor import Tensor, SharedVariable
from . import nn, testing
from .runtime.threads import num_threads, set_num_threads

__version__ = "0.1.0"
