"""The contract of a fooling objective (Heo, Joo & Moon 2019, Sec. 3.2 and 4.2).

A fooling has a training penalty (differentiable in the fooled map h) and a per-image test loss
t_i whose membership in the interval R decides fooling success (FSR, Heo eq. 6). Both are pure
functions of [B, H, W] maps and return [B] tensors.
"""
from __future__ import annotations

import torch


class Fooling:
    """Base class. ``needs_original`` foolings receive theta0's maps ``h0``."""

    name = "fooling"
    needs_original = False
    # Swap foolings (active) name the classes whose maps they compare: maps then come stacked per
    # class, [B, len(classes), H, W], computed on collage images; test losses are [B, len(classes)].
    classes: tuple[int, ...] = ()

    def __init__(self, interval: tuple[float, float] = (0.0, 1.0)):
        low, high = float(interval[0]), float(interval[1])
        if low > high:
            raise ValueError(f"fooling.interval=[{low}, {high}] has low > high; allowed: low <= high")
        self.interval = (low, high)

    def penalty(self, h: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sample training penalty [B] (minimised, weighted by lambda)."""
        raise NotImplementedError

    def test_loss(self, h: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        """Per-image test loss t_i [B] (Heo Sec. 4.2); defaults to the penalty."""
        return self.penalty(h, h0)

    def success(self, t: torch.Tensor) -> torch.Tensor:
        """1{t_i in R} (Heo eq. 6), as a bool tensor of t's shape; an undefined (NaN) t_i is no success."""
        return (t >= self.interval[0]) & (t <= self.interval[1])
