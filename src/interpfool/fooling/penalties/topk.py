"""Top-k fooling (Heo et al. 2019, eq. 4): lower the map on the cells that theta0's map ranked
highest. P_k = the top k% cells of h(theta0) (per image); both maps are min-max normalised per
image; penalty = mean over P_k of h(theta)^2. The test loss is the same quantity, R = [0, 0.3]."""
from __future__ import annotations

import math

import torch

from interpfool.fooling.penalties.base import Fooling
from interpfool.interpreters.base import normalize_map


def top_cells(h0: torch.Tensor, k: float) -> torch.Tensor:
    """Bool [B, H, W]: the ceil(k% of H*W) highest cells of each map (ties broken by torch.topk)."""
    flat = h0.flatten(1)
    n = max(1, math.ceil(k / 100 * flat.shape[1]))
    index = flat.topk(n, dim=1).indices
    return torch.zeros_like(flat, dtype=torch.bool).scatter_(1, index, True).view_as(h0)


class TopKFooling(Fooling):
    """Heo eq. 4. ``k``: percentage of cells in P_k, in (0, 100] (default 10, paper)."""

    name = "topk"
    needs_original = True

    def __init__(self, k: float = 10.0, interval=(0.0, 0.3)):
        super().__init__(interval)
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not 0 < k <= 100:
            raise ValueError(f"fooling.k={k!r}; allowed: a percentage in (0, 100]")
        self.k = float(k)

    def penalty(self, h: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        if h0 is None:
            raise ValueError("top-k fooling needs theta0's maps h0")
        cells = top_cells(normalize_map(h0, "minmax"), self.k)   # min-max keeps the order
        h = normalize_map(h, "minmax")
        return (h.square() * cells).flatten(1).sum(1) / cells.flatten(1).sum(1)
