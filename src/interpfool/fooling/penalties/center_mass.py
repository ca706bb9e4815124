"""Center-mass fooling (Heo et al. 2019, eq. 5, after Ghorbani et al. 2019): move the map's
intensity-weighted centre as far as possible from theta0's.

C(h) = sum_ij relu(h_ij) (i, j) / sum_ij relu(h_ij), in cell coordinates of the map (its native
resolution). Signed maps (LRP, Gradient x Input) are weighted by their positive part; a map with no
positive mass has no centre, so it has not moved one: its shift is 0 (penalty 0, test loss 0, not a success).
(The authors' code divides by sum + 1e-8, which puts an empty map's centre outside the grid and counts a
map that vanished as a moved one; here only a map that still points somewhere can move its centre.)
Training penalty = -||C(h) - C(h0)||_1 (minimised, so the shift is maximised).
Test loss = ||C(h) - C(h0)||_2 / (length of the grid's diagonal, sqrt(2) (side - 1) for a square map),
in [0, 1]; R = [0.1, 1].
"""
from __future__ import annotations

import math

import torch

from interpfool.fooling.penalties.base import Fooling


def centre_and_mass(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, H, W] -> ([B, 2] (row, column) centres of relu(h), [B] bool: the map has positive mass).
    A map without mass gets the geometric centre of the grid (and no NaN, value or gradient)."""
    rows, cols = h.shape[-2:]
    mass = torch.relu(h)
    total = mass.flatten(1).sum(1)
    has_mass = total > 0
    safe = torch.where(has_mass, total, torch.ones_like(total))    # no 0/0, no NaN gradients
    r = torch.arange(rows, dtype=h.dtype, device=h.device)
    c = torch.arange(cols, dtype=h.dtype, device=h.device)
    centre = torch.stack([(mass.sum(2) * r).sum(1), (mass.sum(1) * c).sum(1)], 1) / safe[:, None]
    middle = torch.stack([r.new_full((), (rows - 1) / 2), c.new_full((), (cols - 1) / 2)])   # no host copy
    return torch.where(has_mass[:, None], centre, middle), has_mass


def center_of_mass(h: torch.Tensor) -> torch.Tensor:
    """[B, H, W] -> [B, 2] (row, column) centres of relu(h); geometric centre where relu(h) == 0."""
    return centre_and_mass(h)[0]


class CenterMassFooling(Fooling):
    name = "center_mass"
    needs_original = True

    def __init__(self, interval=(0.1, 1.0)):
        super().__init__(interval)

    @staticmethod
    def _shift(h: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
        if h0 is None:
            raise ValueError("center-mass fooling needs theta0's maps h0")
        (c, live), (c0, live0) = centre_and_mass(h), centre_and_mass(h0)
        return torch.where((live & live0)[:, None], c - c0, torch.zeros_like(c))   # empty: no centre to move

    def penalty(self, h: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        return -self._shift(h, h0).abs().sum(1)                              # Heo eq. 5, maximised

    def test_loss(self, h: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        rows, cols = h.shape[-2:]
        diagonal = math.hypot(rows - 1, cols - 1)
        return self._shift(h, h0).norm(dim=1) / max(diagonal, 1e-12)
