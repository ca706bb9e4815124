"""Localisation of heatmaps against ground-truth object masks.

* mass inside: share of positive heatmap mass inside the mask, sum(relu(h) m) / sum(relu(h)),
  with h bilinearly upsampled to the mask's resolution; maps with no positive mass are left out
  (and counted) rather than scored as 0 or 1.
* pointing game (Zhang et al. 2018): the map's maximum falls inside the mask.
"""
from __future__ import annotations

import torch
from torchmetrics import Metric

from interpfool.interpreters.base import upsample_map


def mass_inside(h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image share of positive mass inside ``mask`` [B] and whether it is defined [B]."""
    pos = torch.relu(upsample_map(h, tuple(mask.shape[-2:]))).flatten(1)
    total = pos.sum(1)
    inside = (pos * mask.flatten(1).to(pos.dtype)).sum(1)
    defined = total > 0
    return torch.where(defined, inside / total.clamp_min(torch.finfo(pos.dtype).tiny), torch.zeros_like(total)), defined


def pointing_hits(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image: the arg-max cell of the upsampled map lies inside ``mask`` [B] bool."""
    up = upsample_map(h, tuple(mask.shape[-2:])).flatten(1)
    return mask.flatten(1).gather(1, up.argmax(1, keepdim=True)).squeeze(1).bool()


class Localisation(Metric):
    """Mean share of positive heatmap mass inside the object mask, over images where it is defined."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("share_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("defined", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, h: torch.Tensor, mask: torch.Tensor) -> None:
        share, defined = mass_inside(h, mask)
        self.share_sum += share[defined].double().sum()
        self.defined += defined.sum()
        self.total += defined.numel()

    def compute(self) -> torch.Tensor:
        return (self.share_sum / self.defined.clamp_min(1)).float()


class PointingGame(Metric):
    """Share of images whose heatmap maximum lies inside the object mask."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("hits", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, h: torch.Tensor, mask: torch.Tensor) -> None:
        self.hits += pointing_hits(h, mask).sum()
        self.total += h.shape[0]

    def compute(self) -> torch.Tensor:
        return self.hits.float() / self.total.clamp_min(1)
