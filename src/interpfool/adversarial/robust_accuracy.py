"""PGD top-1: the accuracy of a model on L-inf PGD adversarial examples (Madry et al. 2018, eq. 2 / Sec. 2.1),
the validation number of adversarial training (Heo et al. 2019, Figure 4c: "PGD(D_val)").

x^{t+1} = Proj_{B_eps(x) ∩ [0,1]^d} (x^t + alpha * sign(grad_x CE(f(x^t), y))), from a uniform random start in the
eps ball (Madry Sec. 4), in pixel space; the model sees (x^t - mean) / std: ``interpfool.attacks.pgd``.
Parameters and their ``.grad`` are untouched. The caller puts the model in eval mode.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from interpfool.attacks.pgd import pgd


def pgd_correct(net: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
                mean: float | Sequence[float] = 0.0, std: float | Sequence[float] = 1.0, random_start: bool = True,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """[B] bool: whether ``net`` still classifies each image correctly after ``steps`` PGD steps of size ``alpha``
    in the L-inf ball of radius ``eps`` (pixel units; ``x`` is the normalised model input)."""
    adv = x if eps == 0 else pgd(net, x, y, eps, alpha, steps, random_start=random_start, generator=generator,
                                 mean=mean, std=std)      # eps 0: the ball is the clean image (alpha 0 too)
    with torch.no_grad():
        return net(adv).argmax(1) == y


def pgd_top1(net: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
             mean: float | Sequence[float] = 0.0, std: float | Sequence[float] = 1.0, **kwargs) -> torch.Tensor:
    """Top-1 accuracy (a 0-dim tensor in [0, 1]) of ``net`` on the PGD examples of (x, y) (``pgd_correct``)."""
    return pgd_correct(net, x, y, eps, alpha, steps, mean, std, **kwargs).float().mean()
