"""Fooling Success Rate (Heo et al. 2019, eq. 6): FSR = (1/|V|) sum_i 1{t_i in R}."""
from __future__ import annotations

import torch
from torchmetrics import Metric


class FoolingSuccessRate(Metric):
    """Accumulates success indicators; ``compute`` gives the rate in [0, 1]. Sum states: exact under DDP."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("hits", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, success: torch.Tensor) -> None:
        self.hits += success.long().sum()
        self.total += success.numel()

    def compute(self) -> torch.Tensor:
        return self.hits.float() / self.total.clamp_min(1)
