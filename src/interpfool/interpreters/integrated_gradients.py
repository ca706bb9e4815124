"""Integrated Gradients (Sundararajan, Taly & Yan, ICML 2017).

IG_i(x) = (x_i - x'_i) * int_0^1 dS(x' + a (x - x'))/dx_i da          (eq. 1)
        ~ (x_i - x'_i) * sum_k w_k dS(x' + a_k (x - x'))/dx_i            (eq. 3: right Riemann sum,
                                                                         a_k = k/m, w_k = 1/m)

The path samples are stacked into the batch, ``chunk_size`` path points (each one a copy of the
whole batch, i.e. ``chunk_size * B`` images) per forward pass; no per-image loop. With ``create_graph=True`` each
chunk's graph is rebuilt in the backward (``paths.chunk_terms``): the memory kept for the backward and its peak
grow with ``chunk_size``, not with ``steps``. Completeness
(Prop. 1: sum_i IG_i = S(x) - S(x')) holds up to the quadrature error.
Attribution: per channel, signed; map = channel sum, signed; default normalisation: max |.|.
"""
from __future__ import annotations

from typing import Sequence

import torch

from interpfool.interpreters.base import Forward, Interpreter, class_score
from interpfool.interpreters.paths import (IMAGENET_MEAN, IMAGENET_STD, METHODS, BaselineSpec, as_graph_input,
                                           check_baseline, check_positive_int, chunk_terms, interpolate,
                                           make_baseline, quadrature)
from interpfool.interpreters.registry import register


@register("ig")
class IntegratedGradients(Interpreter):
    """``steps`` quadrature nodes of ``method`` (Captum's names: riemann_right (eq. 3), riemann_left,
    riemann_middle, riemann_trapezoid, gausslegendre); ``baseline`` zeros | black | blur (or a
    number / tensor); ``mean``/``std`` define ``black``; ``blur_sigma`` (pixels) defines ``blur``;
    ``chunk_size`` path points per forward pass (null: all at once)."""

    default_normalize = "absmax"
    explains_input_only = True

    def __init__(self, net, layer: str | None = None, score: str | None = None, normalize: str | None = None,
                 steps: int = 50, method: str = "riemann_right", baseline: BaselineSpec = "zeros",
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 blur_sigma: float = 5.0, chunk_size: int | None = None):
        super().__init__(net, layer=layer, score=score, normalize=normalize)
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
        check_positive_int("chunk_size", chunk_size, allow_none=True)
        check_baseline(baseline, mean, std, blur_sigma)
        quadrature(method, steps)  # validates steps for this method
        self.steps, self.method, self.baseline = steps, method, baseline
        self.mean, self.std, self.blur_sigma = tuple(mean), tuple(std), blur_sigma
        self.chunk_size = chunk_size

    @property
    def samples(self) -> int:
        return self.steps

    def baseline_for(self, x: torch.Tensor) -> torch.Tensor:
        return make_baseline(x, self.baseline, self.mean, self.std, self.blur_sigma)

    def attribution_raw(self, fwd: Forward, index: torch.Tensor, create_graph: bool) -> torch.Tensor:
        x = fwd.x
        base = self.baseline_for(x)
        alphas, weights = quadrature(self.method, self.steps, x.dtype, x.device)
        shape = (-1, *x.shape)

        def chunk_sum(part: slice, x: torch.Tensor, base: torch.Tensor, create_graph: bool) -> torch.Tensor:
            xs = as_graph_input(interpolate(base, x, alphas[part]))
            k = xs.shape[0] // x.shape[0]
            score = class_score(self.net(xs), index.repeat(k), self.score).sum()
            (grad,) = torch.autograd.grad(score, xs, create_graph=create_graph)
            # sum_k w_k dS/dx at x' + a_k (x - x')  (eq. 3 with the rule's nodes and weights)
            return (weights[part].view(-1, 1, 1, 1, 1) * grad.view(shape)).sum(0)

        integral = torch.zeros_like(x)
        for part_sum in chunk_terms(chunk_sum, self.steps, self.chunk_size, create_graph, x, base,
                                     params=tuple(self.net.parameters())):
            integral = integral + part_sum
        return (x - base) * integral  # eq. 1 / 3: (x - x') times the path-averaged gradient

    def reduce_channels(self, attribution: torch.Tensor) -> torch.Tensor:
        return attribution.sum(1)
