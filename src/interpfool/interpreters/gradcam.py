"""Grad-CAM (Selvaraju et al., ICCV 2017, eqs. 1-2), at the native layer resolution."""
from __future__ import annotations

import torch

from interpfool.interpreters.base import Forward, Interpreter
from interpfool.interpreters.registry import register


class _CamBase(Interpreter):
    """Class activation maps: ReLU(sum_k w_k A^k) with channel weights w from dS/dA."""

    default_normalize = "max"   # authors' code: divided by the per-sample max
    uses_layer = True

    def layer_gradient(self, fwd: Forward, index: torch.Tensor, create_graph: bool):
        act = fwd.activations[self.layer]
        (grad,) = torch.autograd.grad(self.score_of(fwd, index), act, create_graph=create_graph)
        return act, grad

    def channel_weights(self, act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def explain_raw(self, fwd: Forward, index: torch.Tensor, create_graph: bool) -> torch.Tensor:
        act, grad = self.layer_gradient(fwd, index, create_graph)
        weights = self.channel_weights(act, grad)                       # [B, K]
        return torch.relu(torch.einsum("bk,bkhw->bhw", weights, act))   # Selvaraju eq. 2


@register("gradcam")
class GradCAM(_CamBase):
    """w_k = mean_ij dS/dA^k_ij (Selvaraju eq. 1)."""

    def channel_weights(self, act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return grad.mean(dim=(2, 3))
