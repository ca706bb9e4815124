"""Output fidelity of theta* to theta0 on the same images: accuracy alone hides prediction flips (two
models with equal accuracy can disagree on many images).

* top-1 agreement: the share of images with argmax p* = argmax p0;
* KL(p0 || p*) = sum_c p0_c (log p0_c - log p*_c), p = softmax of the logits, averaged over images
  (torchmetrics' ``kl_divergence`` on log-probabilities from ``log_softmax`` in float64, per image).
"""
from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.functional import kl_divergence


def output_fidelity(logits0: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [B, C] of theta0 and theta* -> (agree [B] bool, KL(p0 || p*) [B] float64)."""
    if logits0.shape != logits.shape or logits0.dim() != 2:
        raise ValueError(f"output_fidelity: logits of shapes {tuple(logits0.shape)} and {tuple(logits.shape)}; "
                         "allowed: equal [B, C] shapes")
    l0, l1 = logits0.detach().double(), logits.detach().double()
    kl = kl_divergence(l0.log_softmax(1), l1.log_softmax(1), log_prob=True, reduction="none")
    return l0.argmax(1) == l1.argmax(1), kl


class OutputFidelity(Metric):
    """Top-1 agreement and mean KL(p0 || p*) of theta* to theta0. Sum states: exact under DDP.
    ``compute`` -> {"top1_agreement": ..., "kl_p0_pstar": ...}."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("agree", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("kl_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits0: torch.Tensor, logits: torch.Tensor) -> None:
        agree, kl = output_fidelity(logits0, logits)
        self.agree += agree.sum()
        self.kl_sum += kl.sum()
        self.total += agree.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        n = self.total.clamp_min(1)
        return {"top1_agreement": self.agree.double() / n, "kl_p0_pstar": self.kl_sum / n}
