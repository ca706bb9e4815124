"""The control of the input attacks: random sign noise of the same L-inf norm, p' = clip(p + eps * s),
s_i in {-1, +1} uniformly at random (the notes: "the addition of pixels that are randomly assigned only rarely
changes the model's output significantly"). Same budget as FGSM, no gradient: the gap between the two is
what the gradient buys."""
from __future__ import annotations

import torch

from interpfool.attacks.pixels import PixelSpace, Stat, check_eps


def random_noise(x: torch.Tensor, eps: float, *, generator: torch.Generator | None = None, mean: Stat = None,
                 std: Stat = None, clamp=(0.0, 1.0)) -> torch.Tensor:
    """x + eps * random signs in pixel units (drawn from ``generator``, default a fresh one seeded 0), clipped to
    the valid range; returned in the model's input space."""
    eps = check_eps(eps)
    space = PixelSpace.of(x, mean, std, clamp)
    if eps == 0:
        return x.detach().clone()
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    signs = 2 * torch.randint(0, 2, x.shape, generator=gen, device=gen.device).to(x.device, x.dtype) - 1
    return space.to_input(space.valid(space.to_pixels(x) + eps * signs)).detach()
