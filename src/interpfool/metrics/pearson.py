"""Pearson correlation between two maps, per image (Dombrowski et al. 2019 and Anders et al. 2020 report it
between manipulated and original explanations):
r = sum (a - mean a)(b - mean b) / sqrt(sum (a - mean a)^2 sum (b - mean b)^2).

Computed by torchmetrics' ``pearson_corrcoef`` with the B maps as its B outputs ([HW, B] columns: one call
per batch), in float64. A constant map has no correlation: torchmetrics returns NaN with a warning; here
such maps get r = 0 ("no agreement", the convention of ``spearman``) and are not passed to it.
"""
from __future__ import annotations

import torch
from torchmetrics.functional.regression import pearson_corrcoef

from interpfool.metrics.mean import PerImageMean
from interpfool.metrics.normalise import constant


def columnwise(fn, a: torch.Tensor, b: torch.Tensor, name: str) -> torch.Tensor:
    """Apply a torchmetrics regression function ``fn(preds [N, d], target [N, d]) -> [d]`` to the maps of
    [B, ...] tensors as d = B outputs (float64); maps where either side is constant get 0."""
    if a.shape != b.shape:
        raise ValueError(f"{name}: maps of shapes {tuple(a.shape)} and {tuple(b.shape)}; allowed: equal shapes")
    out = torch.zeros(a.shape[0], dtype=torch.float64, device=a.device)
    live = ~(constant(a) | constant(b))
    if a.shape[0] and bool(live.any()):
        fa, fb = a.detach().flatten(1)[live].double(), b.detach().flatten(1)[live].double()
        # one map: 1-D tensors (torchmetrics' Kendall squeezes a [N, 1] input and then fails on it)
        values = fn(fa[0], fb[0]) if fa.shape[0] == 1 else fn(fa.T, fb.T)
        out[live] = values.reshape(-1).to(torch.float64)
    return out


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image Pearson r of maps [B, ...] and [B, ...] (same shape) -> [B] float64; 0 for constant maps."""
    return columnwise(pearson_corrcoef, a, b, "pearson")


class PearsonCorrelation(PerImageMean):
    """Mean over images of the per-image Pearson r (``pearson``)."""

    def score(self, a, b):
        values = pearson(a, b)
        return values, torch.ones_like(values, dtype=torch.bool)
