"""Spearman rank correlation between two maps, per image (Heo et al. 2019, Sec. 4.2, active fooling).

rho = Pearson correlation of the ranks; tied values get their average rank (as scipy.stats.spearmanr).
A map with all cells equal has no ranking: its rho is defined as 0 here (scipy returns NaN), so such
maps count as "no agreement" instead of poisoning means with NaN. Not differentiable (not needed).

Kept hand-written rather than torchmetrics' ``spearman_corrcoef`` (which it equals to 1e-6,
tests/metrics/test_spearman.py): this one ranks the whole batch with one sort and two searchsorted calls
in float64 and equals scipy to 1e-12 — the active fooling's test loss is a difference of two rhos
compared with interval ends; torchmetrics ranks each output column in a Python loop in the input's
dtype and adds eps = 1e-6 to the denominator (and, in torchmetrics 1.9, fails on float64 maps with
"Double did not match Float"). Measured on one CPU thread (64 maps): equal speed at
28 x 28 (0.02 s each), torchmetrics faster at 64 x 64 (0.09 s against 0.16 s).
"""
from __future__ import annotations

import torch
from interpfool.metrics.mean import PerImageMean


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


class SpearmanCorrelation(PerImageMean):
    """Mean over images of the per-image Spearman rho between two maps. Sum states: exact under DDP."""

    def score(self, a, b):
        rho = spearman(a, b)
        return rho, torch.ones_like(rho, dtype=torch.bool)
