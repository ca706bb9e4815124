"""Centre-of-mass shift (Ghorbani, Abid & Zou 2019; Heo et al. 2019, eq. 5): the Euclidean distance
between the intensity-weighted centres of relu(h) and relu(h0) (``fooling.penalties.center_mass``),
in pixels of the input: a map of H x W cells over an input of H' x W' pixels has cells of H'/H x W'/W
pixels, so a shift of (dr, dc) cells is sqrt((dr H'/H)^2 + (dc W'/W)^2) pixels.

A map with no positive mass has no centre: such images are left out of the mean and counted
(``PerImageMean.undefined_share``), as ``Localisation`` does (the center-mass fooling's test loss calls
them "not moved" instead, which is what its FSR needs).
"""
from __future__ import annotations

import torch

from interpfool.fooling.penalties.center_mass import centre_and_mass
from interpfool.metrics.mean import PerImageMean


def com_shift(h: torch.Tensor, h0: torch.Tensor, pixels_per_cell: tuple[float, float] = (1.0, 1.0)
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, H, W] maps -> (shift [B] float64 in pixels, defined [B] bool: both maps have positive mass)."""
    if h.shape != h0.shape:
        raise ValueError(f"com_shift: maps of shapes {tuple(h.shape)} and {tuple(h0.shape)}; allowed: equal shapes")
    (c, live), (c0, live0) = centre_and_mass(h.detach().double()), centre_and_mass(h0.detach().double())
    scale = torch.tensor(pixels_per_cell, dtype=torch.float64, device=h.device)
    return ((c - c0) * scale).norm(dim=1), live & live0


class CentreOfMassShift(PerImageMean):
    """Mean over images (with positive mass in both maps) of ``com_shift`` in pixels.
    ``pixels_per_cell``: (rows, columns) of input pixels per map cell."""

    def __init__(self, pixels_per_cell: tuple[float, float] = (1.0, 1.0), **kwargs):
        super().__init__(**kwargs)
        self.pixels_per_cell = tuple(float(p) for p in pixels_per_cell)

    def score(self, h, h0):
        return com_shift(h, h0, self.pixels_per_cell)
