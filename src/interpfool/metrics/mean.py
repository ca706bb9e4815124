"""Mean over images of a per-image score, as a torchmetrics Metric with sum states (exact under DDP).

A subclass names its per-image function ``score(a, b) -> (values [B], defined [B] bool)``; images whose
score is undefined are left out of the mean and counted (``undefined`` state), as in ``Localisation``.
"""
from __future__ import annotations

import torch
from torchmetrics import Metric


class PerImageMean(Metric):
    """Mean of ``score(a, b)`` over the images where it is defined. States: float64 sum, two counts."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("value_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("defined", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def score(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def update(self, a: torch.Tensor, b: torch.Tensor) -> None:
        values, defined = self.score(a, b)
        self.value_sum += values.double()[defined].sum()
        self.defined += defined.sum()
        self.total += defined.numel()

    def compute(self) -> torch.Tensor:
        """The mean over defined images (NaN when none was defined: no number to report)."""
        if self.defined == 0:
            return torch.tensor(float("nan"), dtype=torch.float64, device=self.value_sum.device)
        return self.value_sum / self.defined

    @property
    def undefined_share(self) -> float:
        """Share of the images left out, over all ranks where ``compute`` would sync (sync_on_compute)."""
        with self.sync_context(should_sync=self._to_sync):
            return float((self.total - self.defined).double() / self.total.clamp_min(1))
