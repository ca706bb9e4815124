"""Spearman rank correlation between two maps, per image (Heo et al. 2019, Sec. 4.2, active fooling).

rho = Pearson correlation of the ranks; tied values get their average rank (as scipy.stats.spearmanr).
A map with all cells equal has no ranking: its rho is defined as 0 here (scipy returns NaN), so such
maps count as "no agreement" instead of poisoning means with NaN. Not differentiable (not needed).
"""
from __future__ import annotations

import torch
from torchmetrics import Metric


def average_ranks(v: torch.Tensor) -> torch.Tensor:
    """Per-row ranks 1..N of [B, N] values, ties given the mean of the ranks they span."""
    ordered = v.sort(dim=1).values
    below = torch.searchsorted(ordered, v.contiguous(), right=False)      # cells strictly smaller
    upto = torch.searchsorted(ordered, v.contiguous(), right=True)        # cells smaller or equal
    return (below + upto + 1).to(torch.float64) / 2


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image Spearman rho of maps [B, ...] and [B, ...] (same shape) -> [B] (float64)."""
    if a.shape != b.shape:
        raise ValueError(f"spearman: maps of shapes {tuple(a.shape)} and {tuple(b.shape)}; allowed: equal shapes")
    ra = average_ranks(a.detach().flatten(1).double())
    rb = average_ranks(b.detach().flatten(1).double())
    ra = ra - ra.mean(1, keepdim=True)
    rb = rb - rb.mean(1, keepdim=True)
    den = (ra.square().sum(1) * rb.square().sum(1)).sqrt()
    defined = den > 0
    return torch.where(defined, (ra * rb).sum(1) / torch.where(defined, den, torch.ones_like(den)),
                       torch.zeros_like(den))


class SpearmanCorrelation(Metric):
    """Mean over images of the per-image Spearman rho between two maps. Sum states: exact under DDP."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("rho_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, a: torch.Tensor, b: torch.Tensor) -> None:
        rho = spearman(a, b)
        self.rho_sum += rho.sum()
        self.total += rho.numel()

    def compute(self) -> torch.Tensor:
        return self.rho_sum / self.total.clamp_min(1)
