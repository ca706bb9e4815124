"""PGD top-1: the accuracy of a model on L-inf PGD adversarial examples (Madry et al. 2018, eq. 2 / Sec. 2.1),
the validation number of adversarial training (Heo et al. 2019, Figure 4c: "PGD(D_val)").

x^{t+1} = Proj_{B_eps(x) ∩ [0,1]^d} (x^t + alpha * sign(grad_x CE(f(x^t), y))), from a uniform random start in the
eps ball (Madry Sec. 4), in pixel space; the model sees (x^t - mean) / std. A private, minimal PGD so that the
adversarial-training code does not wait for ``interpfool.attacks.pgd`` (issue 12, item 1); once that is merged this
should call it. Gradients only via ``torch.autograd.grad`` w.r.t. the perturbation: parameters and their ``.grad``
are untouched. The caller puts the model in eval mode.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _stat(value: float | Sequence[float] | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A scalar or per-channel mean / std, shaped to broadcast over [B, C, H, W]."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return t.reshape(1, -1, *([1] * (like.dim() - 2))) if t.dim() else t


def pgd_correct(net: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
                mean: float | Sequence[float] = 0.0, std: float | Sequence[float] = 1.0, random_start: bool = True,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """[B] bool: whether ``net`` still classifies each image correctly after ``steps`` PGD steps of size ``alpha``
    in the L-inf ball of radius ``eps`` (pixel units; ``x`` is the normalised model input)."""
    mean, std = _stat(mean, x), _stat(std, x)
    with torch.no_grad():
        pixel = x * std + mean                          # the image in [0, 1]
        if random_start and eps > 0:
            u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device="cpu" if generator is None
                           else generator.device).to(x.device)
            delta = ((2 * u - 1) * eps + pixel).clamp(0, 1) - pixel
        else:
            delta = torch.zeros_like(x)
    with torch.enable_grad():
        for _ in range(steps):
            delta = delta.clone().requires_grad_(True)
            loss = F.cross_entropy(net((pixel + delta - mean) / std), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                # Madry et al. 2018, eq. 2: ascent step on sign(grad), projection on the eps ball and the pixel range
                delta = (delta + alpha * grad.sign()).clamp(-eps, eps)
                delta = (pixel + delta).clamp(0, 1) - pixel
    with torch.no_grad():
        return net((pixel + delta - mean) / std).argmax(1) == y


def pgd_top1(net: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
             mean: float | Sequence[float] = 0.0, std: float | Sequence[float] = 1.0, **kwargs) -> torch.Tensor:
    """Top-1 accuracy (a 0-dim tensor in [0, 1]) of ``net`` on the PGD examples of (x, y) (``pgd_correct``)."""
    return pgd_correct(net, x, y, eps, alpha, steps, mean, std, **kwargs).float().mean()
