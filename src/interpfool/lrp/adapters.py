"""Which LRP adapter a model gets: ``build_adapter(net)``.

A plain model gets the walker (``lrp.walker.LRPAdapter``) over its plan (``lrp.plans``); a pre-softmax
shifted model (``models.presoftmax_shift``) is recognised here, by its class, and gets
``lrp.presoftmax.PresoftmaxShiftAdapter`` (the models package knows nothing of LRP). ``LRPAdapter``,
``Trace`` and ``SUPPORTED`` are re-exported for old imports; their homes are ``lrp.walker`` / ``lrp.plans``.
"""
from __future__ import annotations

from torch import nn

from interpfool.lrp.plans import SUPPORTED
from interpfool.lrp.presoftmax import PresoftmaxShiftAdapter
from interpfool.lrp.walker import LRPAdapter, Trace
from interpfool.models.presoftmax import PresoftmaxShifted

__all__ = ["SUPPORTED", "LRPAdapter", "PresoftmaxShiftAdapter", "Trace", "build_adapter"]


def build_adapter(net: nn.Module) -> LRPAdapter | PresoftmaxShiftAdapter:
    """The adapter for ``net``'s type; ValueError naming the type and what is supported otherwise.
    A pre-softmax shifted model (``models.presoftmax_shift``) gets ``PresoftmaxShiftAdapter``."""
    if isinstance(net, PresoftmaxShifted):
        return PresoftmaxShiftAdapter(net)
    return LRPAdapter(net)
