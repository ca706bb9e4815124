"""Similarity of a map to the unrandomised model's map, per image, as Adebayo et al. (2018, Sec. 3.1 and Fig. 2-4)
report it: the Spearman rank correlation of the absolute maps and of the raw (signed) maps, and the structural
similarity (SSIM, Wang et al. 2004).

Spearman: ``metrics.spearman`` at the maps' native resolution; NaN where the unrandomised map is constant (an
all-zero Grad-CAM map ranks nothing: no similarity to it is defined, and summaries skip it), 0 where only the
randomised map is constant (``metrics.spearman``'s convention: no agreement).
SSIM: torchmetrics' ``structural_similarity_index_measure`` (Gaussian 11 x 11 window, sigma 1.5, K1 0.01, K2 0.03),
the mean of the SSIM map over the whole image (borders reflect-padded; scikit-image's ``structural_similarity``
averages only the interior 5 pixels in, the same values there), on the absolute maps scaled to [0, 1] by their
per-image maximum (data_range 1; an all-zero map stays zero),
bilinearly resized to ``size`` (the input's size: an 11 x 11 window on a 16 x 16 Grad-CAM map would see the whole map).
"""
from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from interpfool.interpreters.base import upsample_map
from interpfool.metrics.spearman import spearman

METRICS = ("spearman_abs", "spearman_raw", "ssim")


def unit_abs(h: torch.Tensor) -> torch.Tensor:
    """|h| / max |h| per map ([B, H, W]); an all-zero map stays zero."""
    a = h.abs().double()
    return a / a.flatten(1).amax(1).clamp_min(torch.finfo(torch.float64).tiny)[:, None, None]


def ssim(a: torch.Tensor, b: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Per-image SSIM [B] of the absolute maps a, b ([B, H, W]) scaled to [0, 1], resized to ``size``."""
    a, b = unit_abs(a), unit_abs(b)
    if size is not None:
        a, b = upsample_map(a, size), upsample_map(b, size)
    return structural_similarity_index_measure(b[:, None], a[:, None], data_range=1.0, reduction="none").double()


def map_similarity(reference: torch.Tensor, h: torch.Tensor, size: tuple[int, int] | None = None
                   ) -> dict[str, torch.Tensor]:
    """Per-image similarities [B] of maps ``h`` to ``reference`` (both [B, H, W]): ``METRICS``."""
    if reference.shape != h.shape:
        raise ValueError(f"map_similarity: maps of shapes {tuple(reference.shape)} and {tuple(h.shape)}; "
                         f"allowed: equal shapes")
    reference, h = reference.detach(), h.detach()
    return {"spearman_abs": _ranked(reference.abs(), h.abs()), "spearman_raw": _ranked(reference, h),
            "ssim": ssim(reference, h, size)}


def _ranked(reference: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Spearman rho [B]; NaN where the reference map is constant (e.g. an all-zero Grad-CAM map: it ranks nothing,
    so no similarity to it is defined; means skip it). A constant ``h`` against a ranked reference: 0, as
    ``metrics.spearman`` defines it (no agreement)."""
    flat = reference.flatten(1)
    ranked = flat.amax(1) > flat.amin(1)
    rho = spearman(reference, h)
    return torch.where(ranked.to(rho.device), rho, torch.full_like(rho, float("nan")))
