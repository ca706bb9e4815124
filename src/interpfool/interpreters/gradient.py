"""Plain gradient maps: SimpleGrad (input), SimpleGrad_T (target layer) and Gradient x Input.

Maps (documented choices, DESIGN.md 2.1):

- ``simpleg``: attribution |dS/dx| per channel (Simonyan et al. 2014, Sec. 3.1, which
  takes the max over channels of |w|; we sum, as Heo et al. 2019 and Captum-based tools do);
  map = sum_c |dS/dx_c|. Default normalisation: per-sample max.
- ``simplegT``: the same at the input A of the target layer: map = sum_k |dS/dA^k|, at the
  layer's native resolution. Default normalisation: per-sample max.
- ``gradinput``: attribution x * dS/dx (Shrikumar et al. 2016, "Gradient * Input"; Ancona et al.
  2018, Sec. 2.1); map = sum_c x_c dS/dx_c, signed. Default normalisation: per-sample max |.|.

All are batched (the score summed over the batch has the per-sample gradient as its gradient;
model in eval mode) and, with ``create_graph=True``, twice differentiable w.r.t. the parameters.
"""
from __future__ import annotations

import torch

from interpfool.interpreters.base import Forward, Interpreter
from interpfool.interpreters.registry import register


class _ChannelSum(Interpreter):
    """Map = sum over channels of the per-channel attribution."""

    def reduce_channels(self, attribution: torch.Tensor) -> torch.Tensor:
        return attribution.sum(1)


@register("simpleg")
class SimpleGrad(_ChannelSum):
    """|dS/dx| (Simonyan et al. 2014, Sec. 3.1), summed over colour channels."""

    default_normalize = "max"
    needs_input_grad = True

    def attribution_raw(self, fwd: Forward, index: torch.Tensor, create_graph: bool) -> torch.Tensor:
        return self.grad_of_score(fwd, index, fwd.x, create_graph).abs()


@register("simplegT")
class SimpleGradT(_ChannelSum):
    """|dS/dA| at the input A of the target layer (SimpleG_T of Heo et al. 2019), summed over channels."""

    default_normalize = "max"
    uses_layer = True

    def attribution_raw(self, fwd: Forward, index: torch.Tensor, create_graph: bool) -> torch.Tensor:
        return self.grad_of_score(fwd, index, fwd.activations[self.layer], create_graph).abs()


@register("gradinput")
class GradientInput(_ChannelSum):
    """x * dS/dx (Shrikumar et al. 2016; Ancona et al. 2018 Sec. 2.1), summed over channels, signed."""

    default_normalize = "absmax"
    needs_input_grad = True

    def attribution_raw(self, fwd: Forward, index: torch.Tensor, create_graph: bool) -> torch.Tensor:
        return fwd.x * self.grad_of_score(fwd, index, fwd.x, create_graph)
