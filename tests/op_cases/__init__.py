"""Importing this package registers every family's op cases in tests/opinfo.CASES."""
from . import elementwise, reductions, shape  # noqa: F401
from . import conv  # noqa: F401
from . import indexing, linalg  # noqa: F401
