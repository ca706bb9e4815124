"""Class activation maps at the native layer resolution: Grad-CAM (Selvaraju et al., ICCV 2017,
eqs. 1-2), Grad-CAM++ (Chattopadhay et al., WACV 2018) and the positive-gradient Grad-CAM that
Lerma & Lucas (2022) show practically equivalent to Grad-CAM++.

All share map = ReLU(sum_k w_k A^k) (Selvaraju eq. 2) with A the *input* of the target layer and
channel weights w from G = dS/dA; they differ only in w. Upsampling is a separate, explicit step.
Per-channel attribution (``attribution``): w_k A^k, before the sum and the ReLU.
"""
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
        return act, self.grad_of_score(fwd, index, act, create_graph)

    def channel_weights(self, act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def explain_raw(self, fwd: Forward, index: torch.Tensor, create_graph: bool) -> torch.Tensor:
        act, grad = self.layer_gradient(fwd, index, create_graph)
        weights = self.channel_weights(act, grad)                       # [B, K]
        return torch.relu(torch.einsum("bk,bkhw->bhw", weights, act))   # Selvaraju eq. 2

    def attribution_raw(self, fwd: Forward, index: torch.Tensor, create_graph: bool) -> torch.Tensor:
        act, grad = self.layer_gradient(fwd, index, create_graph)
        return self.channel_weights(act, grad)[:, :, None, None] * act   # w_k A^k

    def reduce_channels(self, attribution: torch.Tensor) -> torch.Tensor:
        return torch.relu(attribution.sum(1))                            # Selvaraju eq. 2


@register("gradcam")
class GradCAM(_CamBase):
    """w_k = mean_ij dS/dA^k_ij (Selvaraju eq. 1)."""

    def channel_weights(self, act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return grad.mean(dim=(2, 3))


@register("gradcampp")
class GradCAMPlusPlus(_CamBase):
    """Grad-CAM++ in the closed form of Chattopadhay et al. (2018) for an exponential score, as
    pytorch-grad-cam implements it (it drops the per-sample factor exp(S), which the max
    normalisation removes anyway):

        alpha^k_ij = g^2 / (2 g^2 + sum_ab A^k_ab g^3 + eps),  g = dS/dA^k_ij     (eq. 19)
        w_k = sum_ij ReLU(g) alpha^k_ij                                            (eq. 7)

    ``eps`` (> 0, default 1e-6, pytorch-grad-cam's value) keeps the ratio finite where g is tiny.
    Only g > 0 contributes to w, so alpha is evaluated on ReLU(g): same weights and same gradients
    as on g, and no 0/0 or blown-up ratio where 2 + g sum A ~ 0 for negative g.
    """

    def __init__(self, net, layer: str | None = None, score: str | None = None, normalize: str | None = None,
                 eps: float = 1e-6):
        super().__init__(net, layer=layer, score=score, normalize=normalize)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps <= 0:
            raise ValueError(f"eps={eps!r}; allowed: a number > 0 (0 gives 0/0 where dS/dA = 0)")
        self.eps = float(eps)

    def channel_weights(self, act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        g = torch.relu(grad)
        g2 = g * g
        sum_act = act.sum(dim=(2, 3), keepdim=True)
        alpha = g2 / (2 * g2 + sum_act * g2 * g + self.eps)   # Chattopadhay eq. 19
        return (g * alpha).sum(dim=(2, 3))                    # Chattopadhay eq. 7


@register("gradcam_pos")
class GradCAMPositive(_CamBase):
    """w_k = mean_ij ReLU(dS/dA^k_ij): Grad-CAM with positive gradients, which Lerma & Lucas (2022,
    "Grad-CAM++ is equivalent to Grad-CAM with positive gradients") show practically equivalent
    to Grad-CAM++."""

    def channel_weights(self, act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return torch.relu(grad).mean(dim=(2, 3))
