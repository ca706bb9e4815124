"""Integration defenses: average the defended method's map over inputs around x, so that a map that the
manipulation made sharp at x alone is outvoted by its neighbours.

* ``NoiseAveraged`` (SmoothGrad's integration, Smilkov et al. 2017, eq. 3, applied to any method M):
  M_n(x) = 1/n sum_k M(x + N(0, sigma_b^2)), sigma_b = sigma * (max x_b - min x_b).
* ``PathAveraged`` (the integral of Integrated Gradients, Sundararajan et al. 2017, eq. 1, as a Riemann sum
  over the straight path, applied to any method M): M_p(x) = 1/m sum_{k=1..m} M(x' + k/m (x - x')),
  baseline x' = 0 in the model's input space (the mean image under the usual normalisation).

Raw maps are averaged, then normalised as M normalises (SmoothGrad averages raw gradients too).
"""
from __future__ import annotations

import torch

from interpfool.defenses.wrapped import DefendedInterpreter, InterpreterFactory


class NoiseAveraged(DefendedInterpreter):
    defense = "noise"

    def __init__(self, net, factory: InterpreterFactory, n: int = 16, sigma: float = 0.15, seed: int = 0):
        super().__init__(net, factory)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"defense noise: n={n!r}; allowed: an integer >= 1")
        if not sigma >= 0:
            raise ValueError(f"defense noise: sigma={sigma!r}; allowed: a number >= 0")
        self.n, self.sigma, self.seed = n, float(sigma), int(seed)

    def defended_raw(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        std = (self.sigma * (flat.amax(1) - flat.amin(1))).view(-1, *([1] * (x.dim() - 1)))
        gen = torch.Generator(device=x.device).manual_seed(self.seed)   # the same noise for theta0 and theta*
        total = 0
        for _ in range(self.n):
            noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype) * std
            total = total + self.inner_raw(self.inner, x + noise, index)
        return total / self.n


class PathAveraged(DefendedInterpreter):
    defense = "path"

    def __init__(self, net, factory: InterpreterFactory, steps: int = 16):
        super().__init__(net, factory)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"defense path: steps={steps!r}; allowed: an integer >= 1")
        self.steps = steps

    def defended_raw(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        total = 0
        for k in range(1, self.steps + 1):
            total = total + self.inner_raw(self.inner, x * (k / self.steps), index)   # baseline 0
        return total / self.steps
