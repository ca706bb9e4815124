"""The max-normalised gradient step of the notes ("Input attribution and adversarial examples", section
"Adversarial examples": g' = g / max(g), a' = a + eps * g'). Here max = the largest |g| of each image, so the
largest pixel change is exactly eps (pixel units) and the step keeps the gradient's relative sizes, where FGSM
keeps only its signs. An image whose gradient is zero everywhere is left unchanged."""
from __future__ import annotations

import torch
from torch import nn

from interpfool.attacks.pixels import Stat, single_step


def gradient_step(net: nn.Module, x: torch.Tensor, y: torch.Tensor | None, eps: float, *, mean: Stat = None,
                  std: Stat = None, clamp=(0.0, 1.0), targeted=None) -> torch.Tensor:
    """p' = clip(p + eps * g / max|g|), g = grad_p J per image (J as in ``fgsm``: untargeted CE of ``y``, or minus
    the CE of ``targeted``). Returns the batch in the model's input space; ``net`` in eval mode (caller)."""
    return single_step(net, x, y, eps, max_normalised, mean=mean, std=std, clamp=clamp, targeted=targeted)


def max_normalised(g: torch.Tensor) -> torch.Tensor:
    """g / max|g| per image (the notes: a' = a + eps * g / max(g)); zero where the gradient is zero."""
    top = g.flatten(1).abs().amax(1).view(-1, *([1] * (g.dim() - 1)))
    return torch.where(top > 0, g / torch.where(top > 0, top, torch.ones_like(top)), torch.zeros_like(g))
