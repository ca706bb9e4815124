"""Kendall rank correlation tau-b between two maps, per image (Ghorbani, Abid & Zou 2019 compare
explanations with rank correlations): tau_b = (C - D) / sqrt((n0 - n1)(n0 - n2)), C / D concordant /
discordant cell pairs, n0 = n(n-1)/2, n1 / n2 the pairs tied in a / in b (Kendall 1945; scipy's default).

Computed by torchmetrics' ``kendall_rank_corrcoef(variant="b")`` with the B maps as its B outputs
([HW, B] columns). It counts pairs in O(n^2) time (a Python loop over the n cells, vectorised over the
pair partners and the batch): measured on 1 CPU thread, 64 maps in 0.03 s at 7 x 7, 0.3 s at 28 x 28,
0.8 s at 32 x 32, 7 s at 64 x 64 — so the evaluation compares maps at <= 32 x 32 (experiment/evaluate.py).
(A batched pairwise sign-product formula, sum sgn(a_i - a_j) sgn(b_i - b_j) / sqrt(...), was 2-9x slower.)
Its result is float32 whatever the input (a square root of integer pair counts): within 1e-7 of scipy.
A constant map has no ranking: tau = 0 here (torchmetrics / scipy: NaN), the convention of ``spearman``.
"""
from __future__ import annotations

import functools

import torch
from torchmetrics.functional.regression import kendall_rank_corrcoef

from interpfool.metrics.mean import PerImageMean
from interpfool.metrics.pearson import columnwise


def kendall(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image Kendall tau-b of maps [B, ...] and [B, ...] (same shape) -> [B] float64; 0 for constant maps."""
    return columnwise(functools.partial(kendall_rank_corrcoef, variant="b"), a, b, "kendall")


class KendallCorrelation(PerImageMean):
    """Mean over images of the per-image Kendall tau-b (``kendall``)."""

    def score(self, a, b):
        values = kendall(a, b)
        return values, torch.ones_like(values, dtype=torch.bool)
