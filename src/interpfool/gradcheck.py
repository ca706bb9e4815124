"""Finite-difference check of (second-order) parameter gradients.

Used by the tests to prove that a penalty on a heatmap built with ``create_graph=True`` has
exact gradients w.r.t. the model parameters: the analytic directional derivative <dL/dtheta, v>
is compared with the central difference (L(theta + eps v) - L(theta - eps v)) / (2 eps) along a
random direction v, one parameter tensor at a time. Run it in float64.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


@torch.no_grad()
def _shift(param: torch.Tensor, direction: torch.Tensor, step: float) -> None:
    param.add_(direction, alpha=step)


def directional_fd_check(loss_fn: Callable[[], torch.Tensor], net: nn.Module, names: list[str],
                         eps: float = 1e-6, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """For each parameter ``name``: (analytic, finite-difference, relative error).

    ``loss_fn()`` recomputes the scalar loss from the current parameters (heatmaps included).
    """
    params = dict(net.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(f"unknown parameters {missing}; some of: {list(params)[:6]}")
    gen = torch.Generator().manual_seed(seed)
    grads = torch.autograd.grad(loss_fn(), [params[n] for n in names], allow_unused=True)
    out = {}
    for name, grad in zip(names, grads):
        p = params[name]
        v = torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device)
        analytic = float((grad * v).sum()) if grad is not None else 0.0
        _shift(p, v, eps)
        plus = float(loss_fn().detach())
        _shift(p, v, -2 * eps)
        minus = float(loss_fn().detach())
        _shift(p, v, eps)
        numeric = (plus - minus) / (2 * eps)
        rel = abs(analytic - numeric) / max(abs(analytic), abs(numeric), 1e-12)
        out[name] = (analytic, numeric, rel)
    return out
