"""Fast gradient sign method (Goodfellow, Shlens & Szegedy 2015, "Explaining and harnessing adversarial
examples", Sec. 4): eta = eps * sign(grad_x J(theta, x, y)), x' = x + eta; here in pixel units and clipped to
the valid pixel range (the lecture's x + eps * sign(grad_x J); the notes' a' = a + eps * sign(g))."""
from __future__ import annotations

import torch
from torch import nn

from interpfool.attacks.pixels import Stat, single_step


def fgsm(net: nn.Module, x: torch.Tensor, y: torch.Tensor | None, eps: float, *, mean: Stat = None, std: Stat = None,
         clamp=(0.0, 1.0), targeted=None) -> torch.Tensor:
    """One signed gradient step of size ``eps`` (pixel units) on the pixels p = x * std + mean.

    Untargeted (default): ascends CE(f(x), y) (``y`` None: the clean prediction). ``targeted``: an int class or a
    [B] tensor; descends that class's CE (p' = p - eps * sign(grad_p CE(f, t))). Returns the adversarial batch
    in the model's input space. ``net`` must be in eval mode (the caller's job); parameters and their ``.grad``
    are not touched."""
    return single_step(net, x, y, eps, torch.sign, mean=mean, std=std, clamp=clamp,   # Goodfellow 2015, Sec. 4
                       targeted=targeted)
