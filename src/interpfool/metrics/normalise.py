"""Per-map min-max normalisation to [0, 1], the scale on which SSIM and MSE compare two maps.

Maps of theta0 and theta* can differ in scale (the fooling can shrink or grow raw gradients); the
project normalises Grad-CAM by its max and LRP_T min-max (DESIGN.md 2.1), the top-k fooling min-max
(Heo et al. 2019, Sec. 3.2). A constant map becomes all zeros.
"""
from __future__ import annotations

import torch


def minmax(h: torch.Tensor) -> torch.Tensor:
    """[B, H, W] -> [B, H, W] in [0, 1] per map: (h - min) / (max - min); constant maps -> 0. float64."""
    flat = h.detach().flatten(1).double()
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    span = high - low
    live = span > 0
    out = torch.where(live, (flat - low) / torch.where(live, span, torch.ones_like(span)), torch.zeros_like(flat))
    return out.view(h.shape)


def constant(h: torch.Tensor) -> torch.Tensor:
    """[B, ...] -> [B] bool: every cell of the map has the same value (no ranking, no correlation)."""
    flat = h.detach().flatten(1)
    return flat.amax(1) == flat.amin(1)
