"""Score defense: explain the post-softmax probability instead of the pre-softmax logit (or the other way
round). Lerma & Lucas (2023, eq. 2-4) show a class-uniform logit shift t(x) moves every logit map and no
probability map; a map fooled through one score need not be fooled through the other.
"""
from __future__ import annotations

import torch

from interpfool.defenses.wrapped import DefendedInterpreter, InterpreterFactory
from interpfool.interpreters.base import SCORES


class OtherScore(DefendedInterpreter):
    defense = "score"

    def __init__(self, net, factory: InterpreterFactory, score: str | None = None):
        super().__init__(net, factory)
        score = score or ("prob" if self.inner.score == "logit" else "logit")
        if score not in SCORES:
            raise ValueError(f"defense score: score={score!r}; allowed: {', '.join(SCORES)}")
        self.swapped = factory(net=net, score=score)
        self.name = f"{self.inner.name}+score={score}"

    def defended_raw(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return self.inner_raw(self.swapped, x, index)
