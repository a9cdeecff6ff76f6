"""Exceptions of symgraph. Each is also a built-in exception type a user already catches."""


class SymgraphError(Exception):
    """Base of every error symgraph raises on purpose."""


class ShapeError(SymgraphError, ValueError):
    """Shapes that do not fit an op, found at graph-build time or at call time."""


class DTypeError(SymgraphError, TypeError):
    """A dtype an op or a placeholder does not accept."""


class GraphError(SymgraphError, ValueError):
    """Misuse of graphs: mixing graphs, a missing input, a cycle."""


class GradientError(SymgraphError, ValueError):
    """A gradient that cannot be taken (non-scalar cost, disconnected input, no vjp)."""


class InputError(SymgraphError, ValueError):
    """A bad argument to a compiled function, named by position and placeholder."""


class UnsupportedError(SymgraphError, NotImplementedError):
    """A feature symgraph does not have (yet); the message says which."""


class CallShapeError(InputError, ShapeError):
    """Arguments whose sizes fail a check that only compiled code can make (a reduction
    over an empty axis, an input too small for a kernel): both an InputError and the
    ShapeError the reference executor raises for the same arguments."""
