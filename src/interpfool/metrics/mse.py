"""Mean squared error between two maps, each min-max normalised to [0, 1] (Dombrowski et al. 2019 and
Anders et al. 2020 report MSE between manipulated and original explanations):
MSE = (1/HW) sum_ij (a_ij - b_ij)^2, in [0, 1]."""
from __future__ import annotations

import torch

from interpfool.metrics.mean import PerImageMean
from interpfool.metrics.normalise import minmax


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-map MSE of min-max normalised [B, H, W] maps -> [B] float64."""
    if a.shape != b.shape:
        raise ValueError(f"mse: maps of shapes {tuple(a.shape)} and {tuple(b.shape)}; allowed: equal shapes")
    return (minmax(a) - minmax(b)).square().flatten(1).mean(1)


class MapMSE(PerImageMean):
    """Mean over images of the per-map MSE (``mse``)."""

    def score(self, a, b):
        values = mse(a, b)
        return values, torch.ones_like(values, dtype=torch.bool)
