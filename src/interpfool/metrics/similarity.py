"""All map-similarity metrics of theta*'s maps against theta0's, at one comparison resolution.

Resolution: the maps come at their native resolution (Grad-CAM 7 x 7 on a 28 x 28 small VGG input,
gradients at the input's); they are compared after a bilinear resize to the input's size capped at
``MAX_SIDE`` = 32 cells per side (downsampling with antialiasing) and raised to at least SSIM's 11 x 11
window. Reasons: SSIM needs >= 11 x 11; maps of different interpreters get numbers on the same grid;
Kendall's tau costs O(n^2) in the n cells (``kendall``: 0.8 s per 64 maps at 32 x 32 on one CPU thread,
7 s at 64 x 64). So 28 x 28 (Fashion-MNIST) and 32 x 32 (CIFAR-10) maps are compared at their input's
resolution; 64 x 64 (synthetic) and 224 x 224 (ImageNet) inputs at 32 x 32. The centre-of-mass shift
does not depend on this: it is taken on the native maps and converted to input pixels.

Cost (measured, one CPU thread, small VGG, 512 random images, ``evaluate_pair`` with one interpreter):
28 x 28 inputs, Grad-CAM 4.8 -> 10.3 ms per image, SimpleGrad 6.5 -> 14.8; 64 x 64 inputs, Grad-CAM
27 -> 35 ms, SimpleGrad 48 -> 61. Kendall's tau is most of it (6-10 ms per map at 28 x 28 / 32 x 32),
SSIM 0.8 ms (float32 windows), the rest < 1 ms. ``evaluate_pair(similarity=False)`` leaves it out
(the transfer matrix and the noise-robustness curves do).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from interpfool.metrics.com_shift import CentreOfMassShift
from interpfool.metrics.kendall import KendallCorrelation
from interpfool.metrics.mse import MapMSE
from interpfool.metrics.pearson import PearsonCorrelation
from interpfool.metrics.spearman import SpearmanCorrelation
from interpfool.metrics.ssim import SSIM, WINDOW
from interpfool.metrics.topk_intersection import TopKIntersection

MAX_SIDE = 32
KEYS = ("ssim", "pearson", "spearman", "kendall", "mse", "topk_intersection", "com_shift_px")


def comparison_size(input_size: tuple[int, int], max_side: int = MAX_SIDE) -> tuple[int, int]:
    """The grid the maps are compared on: the input's size, each side clipped to [WINDOW, max_side]."""
    return tuple(min(max(int(s), WINDOW), max(int(max_side), WINDOW)) for s in input_size)


def resize_maps(h: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of [B, H, W] maps to ``size`` (antialiased when shrinking), float64."""
    if tuple(h.shape[-2:]) == tuple(size):
        return h.detach().double()
    shrink = size[0] < h.shape[-2] or size[1] < h.shape[-1]
    return F.interpolate(h.detach().double()[:, None], size=size, mode="bilinear", align_corners=False,
                         antialias=shrink)[:, 0]


class MapSimilarity:
    """The seven similarity metrics (``KEYS``) of maps h (theta*) against h0 (theta0) for one interpreter.
    Each is a ``PerImageMean`` (sum states), so the set reduces exactly under DDP like FSR."""

    def __init__(self, topk_fraction: float = 0.1, max_side: int = MAX_SIDE, **metric_kwargs):
        self.max_side = max_side
        self.metrics = {"ssim": SSIM(**metric_kwargs), "pearson": PearsonCorrelation(**metric_kwargs),
                        "spearman": SpearmanCorrelation(**metric_kwargs),
                        "kendall": KendallCorrelation(**metric_kwargs),
                        "mse": MapMSE(**metric_kwargs),
                        "topk_intersection": TopKIntersection(topk_fraction, **metric_kwargs),
                        "com_shift_px": CentreOfMassShift(**metric_kwargs)}

    def to(self, device) -> "MapSimilarity":
        self.metrics = {k: m.to(device) for k, m in self.metrics.items()}
        return self

    def update(self, h: torch.Tensor, h0: torch.Tensor, input_size: tuple[int, int]) -> None:
        """[B, H, W] maps of theta* and theta0 at native resolution; ``input_size``: the images' (H', W')."""
        size = comparison_size(input_size, self.max_side)
        a, a0 = resize_maps(h, size), resize_maps(h0, size)
        for key, metric in self.metrics.items():
            if key != "com_shift_px":
                metric.update(a, a0)
        com = self.metrics["com_shift_px"]
        com.pixels_per_cell = (input_size[0] / h.shape[-2], input_size[1] / h.shape[-1])
        com.update(h, h0)

    def compute(self) -> dict[str, float]:
        return {k: float(m.compute()) for k, m in self.metrics.items()}

    def undefined_share(self) -> dict[str, float]:
        """Share of images each metric left out (only the centre-of-mass shift leaves any out)."""
        return {k: m.undefined_share for k, m in self.metrics.items()}
