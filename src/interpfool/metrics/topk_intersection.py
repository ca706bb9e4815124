"""Top-k intersection (Ghorbani, Abid & Zou 2019): the share of the k most important cells of the
original map h0 that are also among the k most important cells of the other map h,
|top_k(h) ∩ top_k(h0)| / k, in [0, 1].

k = max(1, round(fraction * cells)); the default fraction 0.1 is the top-k fooling's 10% (Heo et al.
2019, Sec. 3.2). Ties at the k-th value go to the lower flat index (a stable descending sort), so the
sets, and the score, are deterministic.
"""
from __future__ import annotations

import torch

from interpfool.metrics.mean import PerImageMean


def top_cells(h: torch.Tensor, k: int) -> torch.Tensor:
    """[B, ...] -> [B, cells] bool: the k largest cells of each map (ties: lower index first)."""
    flat = h.detach().flatten(1)
    order = flat.sort(dim=1, descending=True, stable=True).indices[:, :k]
    return torch.zeros_like(flat, dtype=torch.bool).scatter_(1, order, True)


def topk_intersection(h: torch.Tensor, h0: torch.Tensor, fraction: float = 0.1) -> torch.Tensor:
    """Per-image share of h0's top-k cells that are among h's top-k cells -> [B] float64."""
    if h.shape != h0.shape:
        raise ValueError(f"topk_intersection: maps of shapes {tuple(h.shape)} and {tuple(h0.shape)}; "
                         "allowed: equal shapes")
    if not 0 < fraction <= 1:
        raise ValueError(f"topk_intersection: fraction={fraction}; allowed: 0 < fraction <= 1")
    k = max(1, round(fraction * h[0].numel())) if h.shape[0] else 1
    return (top_cells(h, k) & top_cells(h0, k)).sum(1).double() / k


class TopKIntersection(PerImageMean):
    """Mean over images of ``topk_intersection(h, h0, fraction)``; update(h, h0) with h0 the original's map."""

    def __init__(self, fraction: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.fraction = fraction

    def score(self, h, h0):
        values = topk_intersection(h, h0, self.fraction)
        return values, torch.ones_like(values, dtype=torch.bool)
