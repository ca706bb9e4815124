"""Iterative L-inf attacks: the basic iterative method (BIM; Kurakin, Goodfellow & Bengio 2017, "Adversarial
examples in the physical world", Sec. 2.2) and projected gradient descent (PGD; Madry et al. 2018, "Towards deep
learning models resistant to adversarial attacks", Sec. 2.1 and 3):

    p_0 = p (BIM) or p + U(-eps, eps) (PGD: random start),
    p_{n+1} = Clip_{p, eps}( p_n + alpha * sign(grad_p J(p_n)) )

Clip_{p, eps}: onto the L-inf ball of radius eps around the clean pixels, intersected with the valid pixel
range. Pixel units throughout."""
from __future__ import annotations

import torch
from torch import nn

from interpfool.attacks.pixels import (PixelSpace, Stat, check_eps, check_step, check_steps, loss_gradient,
                                       resolve_goal)


def pgd(net: nn.Module, x: torch.Tensor, y: torch.Tensor | None, eps: float, alpha: float, steps: int, *,
        random_start: bool = True, generator: torch.Generator | None = None, mean: Stat = None, std: Stat = None,
        clamp=(0.0, 1.0), targeted=None) -> torch.Tensor:
    """``steps`` signed steps of size ``alpha`` projected to the eps ball (pixel units). ``random_start=True``:
    PGD (Madry et al. 2018: uniform start in the ball, drawn from ``generator``, default a fresh one seeded 0);
    ``False``: BIM (Kurakin et al. 2017). Untargeted by default (ascend CE of ``y``, or of the clean prediction
    when ``y`` is None); ``targeted``: an int class or [B] tensor whose CE is descended. Returns the last iterate
    in the model's input space; ``net`` in eval mode (caller); parameters and their ``.grad`` untouched."""
    eps, steps = check_eps(eps), check_steps(steps)
    alpha = check_step(alpha)
    space = PixelSpace.of(x, mean, std, clamp)
    goal, is_targeted = resolve_goal(net, x, y, targeted)
    if eps == 0:                                    # the ball is the clean image
        return x.detach().clone()
    p0 = space.to_pixels(x).detach()
    p = p0
    if random_start:                      # Madry et al. 2018, Sec. 3: random start in the ball
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        noise = torch.rand(p0.shape, generator=gen, dtype=p0.dtype, device=gen.device).to(p0.device)
        p = space.project(p0 + eps * (2 * noise - 1), p0, eps)
    for _ in range(steps):
        g = loss_gradient(net, space, p, goal, is_targeted)
        p = space.project(p + alpha * g.sign(), p0, eps)      # Kurakin et al. 2017, Sec. 2.2
    return space.to_input(p).detach()


def bim(net: nn.Module, x: torch.Tensor, y: torch.Tensor | None, eps: float, alpha: float, steps: int,
        **kwargs) -> torch.Tensor:
    """``pgd`` without the random start (Kurakin et al. 2017, Sec. 2.2)."""
    return pgd(net, x, y, eps, alpha, steps, random_start=False, **kwargs)
