"""Fast gradient sign method (Goodfellow, Shlens & Szegedy 2015, "Explaining and harnessing adversarial
examples", Sec. 4): eta = eps * sign(grad_x J(theta, x, y)), x' = x + eta; here in pixel units and clipped to
the valid pixel range (the lecture's x + eps * sign(grad_x J); the notes' a' = a + eps * sign(g))."""
from __future__ import annotations

import torch
from torch import nn

from interpfool.attacks.pixels import PixelSpace, Stat, check_eps, loss_gradient, resolve_goal


def fgsm(net: nn.Module, x: torch.Tensor, y: torch.Tensor | None, eps: float, *, mean: Stat = None, std: Stat = None,
         clamp=(0.0, 1.0), targeted=None) -> torch.Tensor:
    """One signed gradient step of size ``eps`` (pixel units) on the pixels p = x * std + mean.

    Untargeted (default): ascends CE(f(x), y) (``y`` None: the clean prediction). ``targeted``: an int class or a
    [B] tensor; descends that class's CE (p' = p - eps * sign(grad_p CE(f, t))). Returns the adversarial batch
    in the model's input space. ``net`` must be in eval mode (the caller's job); parameters and their ``.grad``
    are not touched."""
    eps = check_eps(eps)
    space = PixelSpace.of(x, mean, std, clamp)
    goal, is_targeted = resolve_goal(net, x, y, targeted)
    if eps == 0:                                    # no perturbation: the clean batch itself
        return x.detach().clone()
    p = space.to_pixels(x)
    g = loss_gradient(net, space, p, goal, is_targeted)
    return space.to_input(space.valid(p + eps * g.sign())).detach()   # Goodfellow et al. 2015, Sec. 4
