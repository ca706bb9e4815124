"""Gaussian noise on the parameters (Heo et al. 2019, Sec. 5, Figure 4b): does a little noise on
theta* reveal or undo the fooling?

``perturb_parameters`` returns a copy with theta + eps, eps ~ N(0, (sigma * s_p)^2) drawn per
parameter tensor p, where s_p is the standard deviation of that tensor's entries ("relative", the
default: one sigma means the same thing for every layer whatever its scale; a one-entry tensor uses its
absolute value) or s_p = 1 ("absolute"). Only parameters move; BatchNorm running statistics (buffers)
stay. The draws come from ``generator``: the same seed gives the same noise, and two models with the
same parameter shapes (theta0, theta*) get the same standard-normal draws, so their curves are paired.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

SCALES = ("relative", "absolute")


def perturb_parameters(net: nn.Module, sigma: float, generator: torch.Generator, scale: str = "relative") -> nn.Module:
    if scale not in SCALES:
        raise ValueError(f"robustness.scale={scale!r}; allowed: {', '.join(SCALES)}")
    if not sigma >= 0:
        raise ValueError(f"robustness sigma={sigma}; allowed: >= 0")
    noisy = copy.deepcopy(net)
    with torch.no_grad():
        for p in noisy.parameters():
            eps = torch.randn(p.shape, generator=generator, dtype=torch.float32).to(p.device, p.dtype)
            if scale == "relative":
                s = p.std(unbiased=False) if p.numel() > 1 else p.abs().reshape(())
            else:
                s = torch.ones((), dtype=p.dtype, device=p.device)
            p.add_(eps * sigma * s)
    return noisy
