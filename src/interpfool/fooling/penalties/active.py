"""Active fooling (Heo et al. 2019, Sec. 3.2.2): swap the explanations of two classes c1 and c2.

Maps come stacked per class, [B, 2, H, W] (index 0: class c1, index 1: class c2), computed on
collage images that hold both classes. With h = maps of theta and h0 = maps of theta0:

    penalty = 0.5 * (MSE(h_c1, h0_c2) + MSE(h_c2, h0_c1))            per image, over the 2-D maps

(the authors' released code compares column sums of the maps by mistake; this is the 2-D version,
DESIGN.md 2.2). Test loss per image and class (Heo Sec. 4.2), with rho the Spearman rank correlation:

    t(c1) = rho(h_c1, h0_c2) - rho(h_c1, h0_c1),   t(c2) = rho(h_c2, h0_c1) - rho(h_c2, h0_c2)

returned as [B, 2]; success is t in R = [0.5, 2] for each class separately (FSR(c1), FSR(c2)).
"""
from __future__ import annotations

import torch

from interpfool.fooling.penalties.base import Fooling
from interpfool.metrics.spearman import spearman


class ActiveFooling(Fooling):
    """``c1``, ``c2``: the two classes whose explanations are swapped (two different class indices)."""

    name = "active"
    needs_original = True

    def __init__(self, c1: int = 0, c2: int = 1, interval=(0.5, 2.0)):
        super().__init__(interval)
        for key, c in (("c1", c1), ("c2", c2)):
            if isinstance(c, bool) or not isinstance(c, int) or c < 0:
                raise ValueError(f"fooling.{key}={c!r}; allowed: a class index >= 0")
        if c1 == c2:
            raise ValueError(f"fooling.c1 == fooling.c2 == {c1}; allowed: two different classes")
        self.classes = (c1, c2)

    @staticmethod
    def _check(h: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
        if h0 is None:
            raise ValueError("active fooling needs theta0's maps h0")
        if h.dim() != 4 or h.shape[1] != 2 or h0.shape != h.shape:
            raise ValueError(f"active fooling takes maps [B, 2, H, W] for (c1, c2); got {tuple(h.shape)} "
                             f"and {tuple(h0.shape)}")
        return h0

    def penalty(self, h: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        h0 = self._check(h, h0)
        swapped = h0.flip(1)                                   # (h0_c2, h0_c1)
        return (h - swapped).square().flatten(2).mean(2).mean(1)   # 0.5 * (MSE_c1 + MSE_c2)

    def test_loss(self, h: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        h0 = self._check(h, h0)
        t = [spearman(h[:, i], h0[:, 1 - i]) - spearman(h[:, i], h0[:, i]) for i in (0, 1)]
        return torch.stack(t, 1).to(h.dtype)
