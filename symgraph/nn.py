"""``sg.nn``: the functions networks are built from (activations, losses, conv, pooling)."""
from __future__ import annotations

import numpy as np

from .errors import DTypeError, ShapeError
from .op import apply
from .ops.nn import Softmax, LogSoftmax
from .ops.conv import conv2d  # noqa: F401  (defined beside its ops)
from .ops.pool import max_pool2d, avg_pool2d  # noqa: F401
from .types import is_float, is_int, fmt_shape


def _api():
    from . import api
    return api


def _axis(x, axis):
    if not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"axis {axis} is out of range for a tensor of rank {x.ndim}")
    return axis % x.ndim


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis``, computed with the max subtracted."""
    x = _api().as_tensor(x)
    return apply(Softmax(axis=_axis(x, axis)), x)


def log_softmax(x, axis=-1):
    """log(softmax(x)) without overflow or log(0)."""
    x = _api().as_tensor(x)
    return apply(LogSoftmax(axis=_axis(x, axis)), x)


def relu(x):
    return _api().relu(x)


def sigmoid(x):
    return _api().sigmoid(x)


def softplus(x):
    return _api().softplus(x)


def tanh(x):
    return _api().tanh(x)


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy over the batch.

    ``logits`` is (N, C). ``labels`` is (N,) integer class ids, or (N, C) float
    targets (one-hot or probabilities).

    >>> loss = sg.nn.cross_entropy(x @ w, y)
    """
    api = _api()
    logits, labels = api.as_tensor(logits), api.as_tensor(labels)
    if logits.ndim != 2:
        raise ShapeError(f"cross_entropy: logits must be (batch, classes), got "
                         f"{fmt_shape(logits.shape)}")
    logp = log_softmax(logits, axis=-1)
    if is_int(labels.dtype):
        if labels.ndim != 1:
            raise ShapeError(f"cross_entropy: integer labels must be (batch,), got "
                             f"{fmt_shape(labels.shape)}")
        targets = api.one_hot(labels, logits.shape[1], dtype=logits.dtype)
    elif is_float(labels.dtype):
        if labels.ndim != 2:
            raise ShapeError(f"cross_entropy: float targets must be (batch, classes), got "
                             f"{fmt_shape(labels.shape)}")
        targets = labels
    else:
        raise DTypeError(f"cross_entropy: labels must be integer ids or float targets, got "
                         f"{labels.dtype}")
    return -api.mean(api.sum(targets * logp, axis=-1))
