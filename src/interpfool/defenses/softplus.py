"""Softplus defense (Dombrowski et al. 2019, Sec. 4, Theorem 2): compute the map on a copy of the model whose
ReLUs are replaced by softplus_beta(x) = log(1 + exp(beta x)) / beta, a smooth network whose maps are less
sensitive to the parameters and inputs; beta -> infinity gives the ReLU network back. Zennit's
``BetaSmooth`` canonizer does the same for its attributions. The class is still picked by the unchanged model.
"""
from __future__ import annotations

import torch

from interpfool.defenses.wrapped import DefendedInterpreter, InterpreterFactory
from interpfool.models.softplus import softplus_copy


class SoftplusMaps(DefendedInterpreter):
    defense = "softplus"

    def __init__(self, net, factory: InterpreterFactory, beta: float = 3.0):
        super().__init__(net, factory)
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0:
            raise ValueError(f"defense softplus: beta={beta!r}; allowed: a number > 0")
        self.beta = float(beta)
        self.smooth = factory(net=softplus_copy(net, self.beta))   # the same method on the smooth copy
        self.name = f"{self.inner.name}+softplus{self.beta:g}"

    def defended_raw(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return self.inner_raw(self.smooth, x, index)
