"""The contract of an explanation-time defense: an interpreter that explains the model's own decision
(the class is resolved on the unchanged model's logits) with a changed way of computing the map.

A defense is applied to a checkpoint as it is, with no retraining (Heo et al. 2019, Sec. 5 ask whether a
fooled map can be undone at explanation time; Dombrowski et al. 2019, Sec. 4 smooth the network for it).
``DefendedInterpreter.forward`` runs the model once (no graph: the maps are evaluated, not trained through),
``explain_raw`` returns the un-normalised [B, H, W] map of the defended method, normalised as the inner
method normalises. Gradients are taken by the inner interpreter (``torch.autograd.grad`` only).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from interpfool.interpreters.base import Forward, Interpreter

InterpreterFactory = Callable[..., Interpreter]


class DefendedInterpreter(Interpreter):
    """Wraps the interpreter that ``factory(net=...)`` builds (the method being defended); subclasses
    implement ``defended_raw`` and may build the method again with other settings (``factory(net=, layer=)``)."""

    defense = "defense"

    def __init__(self, net: nn.Module, factory: InterpreterFactory):
        inner = factory(net=net)
        super().__init__(net, score=inner.score, normalize=inner.normalize)
        self.factory, self.inner = factory, inner
        self.name = f"{inner.name}+{self.defense}"

    @property
    def deterministic(self) -> bool:
        return self.inner.deterministic

    def forward(self, x: torch.Tensor) -> Forward:
        """The undefended model's logits: they pick the class ('pred') exactly as without the defense."""
        with torch.no_grad():
            return Forward(x.detach(), self.net(x))

    def defended_raw(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def explain_raw(self, fwd: Forward, index: torch.Tensor, create_graph: bool) -> torch.Tensor:
        if create_graph:
            raise ValueError(f"{self.name}: a defense is applied at explanation time; create_graph=True "
                             f"(fooling through a defended map) is not supported")
        return self.defended_raw(fwd.x, index)

    def inner_raw(self, interp: Interpreter, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Un-normalised map of ``interp`` on ``x`` for the classes ``index`` (one forward of interp's net)."""
        with torch.enable_grad():
            return interp.explain_raw(interp.forward(x), index, False).detach()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"
