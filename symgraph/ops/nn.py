"""Neural-network ops with numerically stable references: softmax and log_softmax."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DTypeError, ShapeError
from ..op import Op
from ..types import TensorType, is_float


def _api():
    from .. import api
    return api


@dataclass(frozen=True, kw_only=True)
class Softmax(Op):
    axis: int

    def infer(self, x):
        if not is_float(x.dtype):
            raise DTypeError(f"{self.name}: expected a float tensor, got {x.dtype}")
        if not 0 <= self.axis < x.ndim:
            raise ShapeError(f"{self.name}: axis {self.axis} out of range for rank {x.ndim}")
        return TensorType(x.dtype, x.shape)

    def reference(self, x):
        m = np.max(x, axis=self.axis, keepdims=True) if x.size else 0
        m = np.where(np.isfinite(m), m, 0)
        e = np.exp(x - m)
        return e / np.sum(e, axis=self.axis, keepdims=True)

    def vjp(self, inputs, output, g):
        api = _api()
        gy = g * output
        return [gy - output * api.sum(gy, axis=self.axis, keepdims=True)]


@dataclass(frozen=True, kw_only=True)
class LogSoftmax(Softmax):
    def reference(self, x):
        m = np.max(x, axis=self.axis, keepdims=True) if x.size else 0
        m = np.where(np.isfinite(m), m, 0)
        s = x - m
        return s - np.log(np.sum(np.exp(s), axis=self.axis, keepdims=True))

    def vjp(self, inputs, output, g):
        api = _api()
        return [g - api.exp(output) * api.sum(g, axis=self.axis, keepdims=True)]
