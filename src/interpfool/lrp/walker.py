"""The LRP walker: an explicit forward over a model's plan that records what LRP needs, and the relevance
pass that walks it back (the attributor, in Zennit's terms).

``LRPAdapter`` asks ``lrp.plans`` for the model's plan: a flat list of ops (``lrp.ops``; a conv with the
BatchNorm that follows it, a ReLU, a pooling layer, a whole ResNet block, a whole DenseNet layer ...).
``forward`` runs the ops with the model's modules and parameters (no copies, so the logits are
bit-for-bit ``net(x)`` and gradients reach the parameters) and keeps each op's input; ``relevance`` runs
the ops' rules in reverse. Every op boundary is a cut of the network (every path from the input to the
logits passes through it), so the relevance at the input of op k is a proper LRP layer relevance, and
stopping there (``stop=name``) makes LRP_T cost only the head above the target layer.

The walker knows no architecture and no rule: those are the plans' and the composite's.
``lrp.adapters.build_adapter`` picks the adapter for a model (this one, or the pre-softmax shifted one).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from interpfool.lrp.composites import Composite
from interpfool.lrp.plans import PLANS, SUPPORTED, family_of

Tensor = torch.Tensor


@dataclass
class Trace:
    """What one adapter forward recorded: the logits and each op's saved tensors (its input first)."""

    logits: Tensor
    inputs: list[Tensor]
    saved: list[Any] = field(default_factory=list)


class LRPAdapter:
    """Explicit forward + relevance pass for one model (see the module docstring)."""

    def __init__(self, net: nn.Module, cls: type | None = None):
        """``cls``: plan ``net`` as an instance of that class (a subclass that only wraps the forward, such as
        the pre-softmax shifted model, is planned as its base class)."""
        family = family_of(net, cls)
        if family is None:
            raise ValueError(f"LRP has no adapter for {type(net).__module__}.{type(net).__name__}; supported: "
                             f"{'; '.join(SUPPORTED)} (with their own forward)")
        self.net, self.family = net, family
        self.ops = PLANS[family](net)
        nonneg = False
        for op in self.ops:
            op.nonneg_in = nonneg
            nonneg = op.out_nonneg(nonneg)
        self._bns = [bn for op in self.ops for bn in op.batchnorms()]
        self.boundaries = {name: k for k, op in enumerate(self.ops) for name in op.names}

    def check_layer(self, layer: str) -> int:
        """Index of the op whose input is ``layer``'s input, or a ValueError naming the allowed layers."""
        if layer not in self.boundaries:
            names = list(self.boundaries)
            raise ValueError(f"LRP cannot stop at the input of {layer!r} in {type(self.net).__name__} (not a "
                             f"cut of the network, or inside a fused conv+BN / block); allowed: "
                             f"{', '.join(names[-12:])}{' ...' if len(names) > 12 else ''}")
        return self.boundaries[layer]

    def forward(self, x: Tensor) -> Trace:
        """Logits (== net(x)) and the recorded inputs, in one pass with the model's modules."""
        for bn in self._bns:
            if bn.training:
                raise ValueError("LRP needs BatchNorm in eval mode (its rule folds the running statistics); "
                                 "call net.eval() (frozen BatchNorm statistics, DESIGN.md 2.2)")
        inputs, saved = [], []
        for op in self.ops:
            inputs.append(x)
            x, s = op.forward(x)
            saved.append(s)
        return Trace(x, inputs, saved)

    def relevance(self, trace: Trace, relevance: Tensor, comp: Composite, stop: str | None = None) -> Tensor:
        """Propagate ``relevance`` (shaped like the logits) down to the model input, or to the input of
        layer ``stop`` (then only the ops above it run)."""
        last = 0 if stop is None else self.check_layer(stop)
        for k in range(len(self.ops) - 1, last - 1, -1):
            relevance = self.ops[k].backward(trace.saved[k], relevance, comp)
        return relevance

    def activation(self, trace: Trace, layer: str) -> Tensor:
        return trace.inputs[self.check_layer(layer)]
