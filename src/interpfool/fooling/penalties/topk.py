"""Top-k fooling (Heo et al. 2019, eq. 4): lower the map on the cells that theta0's map ranked
highest. P_k = the top k% cells of h(theta0) (per image); both maps are min-max normalised per
image; penalty = mean over P_k of h(theta)^2. The test loss is the same quantity, R = [0, 0.3], except
where theta0's map is constant (all zero for Grad-CAM): it has no top cells, so P_k is undefined and the
test loss is NaN, which is not a success (as an empty map has no centre for center-mass fooling).
Without this, an empty theta0 map passes the test by itself (28% of theta0's Grad-CAM maps on
Fashion-MNIST small_vgg), and FSR measures theta0 rather than the fooling."""
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

    def test_loss(self, h: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        t = self.penalty(h, h0)
        flat0 = h0.flatten(1)
        constant = flat0.amax(1) == flat0.amin(1)                  # no top cells: P_k undefined
        return torch.where(constant, torch.full_like(t, float("nan")), t)
