"""LRP (input level) and LRP_T (target layer), Heo et al. 2019 Sec. 3.1 / 4 and authors' code, with explicit,
twice-differentiable rules (``interpfool.lrp``; DESIGN.md 2.1, 4).

Relevance starts from the chosen score S_c placed on the target logit (R_L = S_c e_c; ``score='logit'``:
S_c = z_c as in the authors' code; ``score='prob'``: S_c = y_c). Every rule is linear in the relevance
it receives, so a raw ``prob`` map is the ``logit`` map times y_c / z_c per sample (up to the last
layer's epsilon): after ``absmax`` normalisation the same map where z_c > 0 and its negative where
z_c < 0 (for ``lrpT`` the ReLU then keeps the other sign's part); its parameter gradients differ.

``interp.forward(x)`` is the model's one forward pass (its logits serve the CE loss) and records the
inputs the rules need; ``interp.explain(fwd, target, create_graph=True)`` then propagates without
another forward. LRP_T only runs the rules of the layers above the target layer.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from interpfool.interpreters.base import Forward, Interpreter, class_score, full_precision
from interpfool.interpreters.registry import register
from interpfool.lrp import Trace, build_adapter, get_composite


@dataclass
class LRPForward(Forward):
    """A ``Forward`` that also carries the adapter's trace (the recorded layer inputs)."""

    trace: Trace | None = None


class _LRPBase(Interpreter):
    """Shared by ``lrp`` and ``lrpT``. ``composite``: a name from ``interpfool.lrp.COMPOSITES``
    (default ``epsilon_plus``) or a ``Composite``; ``maxpool`` / ``avgpool`` / ``add`` / ``bn_first`` /
    ``epsilon`` / ``stabilizer`` override single rules (``None``: the composite's)."""

    def __init__(self, net: nn.Module, layer: str | None = None, score: str = "logit", normalize: str | None = None,
                 composite="epsilon_plus", maxpool: str | None = None, avgpool: str | None = None,
                 add: str | None = None, bn_first: str | None = None, epsilon: float | None = None,
                 stabilizer: float | None = None):
        super().__init__(net, layer=layer, score=score, normalize=normalize)
        self.composite = get_composite(composite, maxpool=maxpool, avgpool=avgpool, add=add, bn_first=bn_first,
                                       epsilon=epsilon, stabilizer=stabilizer)
        self.adapter = build_adapter(self.net)     # the original module of a torch.compile wrapper
        if self.uses_layer:
            self.adapter.check_layer(self.layer)

    def forward(self, x: torch.Tensor) -> LRPForward:
        with full_precision(x):                 # the rules run on fp32 layer inputs under autocast too
            trace = self.adapter.forward(x)
        acts = {self.layer: self.adapter.activation(trace, self.layer)} if self.uses_layer else {}
        return LRPForward(x, trace.logits, acts, trace=trace)

    def relevance(self, fwd: Forward, index: torch.Tensor, create_graph: bool, stop: str | None) -> torch.Tensor:
        """Relevance at the input (``stop=None``) or at the input of layer ``stop``, same shape as it."""
        if not isinstance(fwd, LRPForward) or fwd.trace is None:
            raise ValueError(f"{self.name} needs the Forward returned by its own forward(x) (it records the "
                             f"layer inputs the LRP rules need); got {type(fwd).__name__}")
        with torch.set_grad_enabled(create_graph):
            score = class_score(fwd.logits, index, self.score)
            # dtype-safe: CUDA autocast gives an fp32 softmax score on bf16 / fp16 logits
            start = torch.zeros_like(fwd.logits).scatter(1, index[:, None], score[:, None].to(fwd.logits.dtype))
            return self.adapter.relevance(fwd.trace, start, self.composite, stop=stop)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(layer={self.layer!r}, score={self.score!r}, normalize={self.normalize!r}, "
                f"composite={self.composite})")


@register("lrp")
class LRP(_LRPBase):
    """Input-level LRP: relevance summed over colour channels, signed; normalised by max |h| by default."""

    default_normalize = "absmax"

    def attribution_raw(self, fwd: Forward, index: torch.Tensor, create_graph: bool) -> torch.Tensor:
        return self.relevance(fwd, index, create_graph, stop=None)

    def reduce_channels(self, attribution: torch.Tensor) -> torch.Tensor:
        return attribution.sum(1)


@register("lrpT")
class LRPT(_LRPBase):
    """LRP_T: relevance at the input of the target layer, summed over channels, ReLU, min-max
    normalised per sample (authors' code)."""

    default_normalize = "minmax"
    uses_layer = True

    def attribution_raw(self, fwd: Forward, index: torch.Tensor, create_graph: bool) -> torch.Tensor:
        rel = self.relevance(fwd, index, create_graph, stop=self.layer)
        if rel.ndim != 4:
            raise ValueError(f"lrpT layer {self.layer!r} has a {rel.ndim}-d input, not a [B, C, H, W] map; "
                             f"pick a convolutional layer")
        return rel

    def reduce_channels(self, attribution: torch.Tensor) -> torch.Tensor:
        return torch.relu(attribution.sum(1))
