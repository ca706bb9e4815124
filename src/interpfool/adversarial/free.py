"""Free adversarial training (Shafahi et al. 2019, "Adversarial Training for Free!", Alg. 1).

Every minibatch is replayed m times (``ReplayLoader``); a perturbation delta, one per batch slot, persists across
replays and minibatches. Each replay trains on x + delta and the *same* backward gives both the parameters'
gradient and delta's gradient g_adv (Alg. 1, lines 6-7), after which

    delta <- clip_[-eps, eps](delta + eps * sign(g_adv))          (Alg. 1, lines 9-10)

All in pixel space ([0, 1] images; the model's input is (pixel - mean) / std with the data module's statistics) and
the perturbed image is clipped to [0, 1] (as the authors' ImageNet code does, ``in1.clamp_(0, 1.0)``). The step is
``eps`` by default (Alg. 1); ``step`` sets another.

Use: ``x_adv = adversary.perturb(x)`` in the training step (delta enters the graph as a leaf), the loss's one
backward (Lightning's), then ``adversary.ascend()`` in ``on_after_backward`` reads that leaf's gradient. No second
backward: plain DDP stays valid (DESIGN.md 4); delta is this rank's own (not all-reduced), as in Shafahi's code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from interpfool.adversarial.robust_accuracy import pgd_correct
from interpfool.attacks.pixels import PixelSpace

KINDS = ("none", "free")


class FreeAdversary:
    """The persistent perturbation of free adversarial training (module docstring)."""

    def __init__(self, eps: float, replays: int = 4, step: float | None = None,
                 mean: float | Sequence[float] = 0.0, std: float | Sequence[float] = 1.0):
        if not (isinstance(eps, (int, float)) and eps >= 0):
            raise ValueError(f"adversarial.eps={eps!r}; allowed: a number >= 0 (pixel units)")
        if step is not None and not (isinstance(step, (int, float)) and step >= 0):
            raise ValueError(f"adversarial.step={step!r}; allowed: a number >= 0 or null (= eps)")
        if isinstance(replays, bool) or not isinstance(replays, int) or replays < 1:
            raise ValueError(f"adversarial.replays={replays!r}; allowed: an integer >= 1")
        self.eps, self.replays = float(eps), int(replays)
        self.step = float(eps if step is None else step)
        self.mean, self.std = mean, std
        self.delta: torch.Tensor | None = None        # [slots, C, H, W], pixel units, no graph
        self._leaf: torch.Tensor | None = None        # this step's delta[:B] in the graph

    def _slots(self, x: torch.Tensor) -> torch.Tensor:
        """delta for a batch like ``x``: zeros at first, grown (new slots zero) when a larger batch comes."""
        d = self.delta
        if d is None or d.shape[1:] != x.shape[1:] or d.device != x.device or d.dtype != x.dtype:
            d = None
        if d is None or d.shape[0] < x.shape[0]:
            grown = torch.zeros((x.shape[0], *x.shape[1:]), dtype=x.dtype, device=x.device)
            if d is not None:
                grown[:d.shape[0]] = d
            self.delta = d = grown
        return d

    def perturb(self, x: torch.Tensor) -> torch.Tensor:
        """The model input of clip_[0,1](pixel(x) + delta): normalised like ``x``, differentiable w.r.t. delta."""
        leaf = self._slots(x)[:x.shape[0]].clone().requires_grad_(True)
        self._leaf = leaf
        space = PixelSpace.of(x, self.mean, self.std)          # Shafahi et al. 2019, Alg. 1: x + delta, in [0, 1]
        return space.to_input(space.valid(space.to_pixels(x) + leaf))

    def ascend(self) -> bool:
        """After the step's backward: delta <- clip(delta + step * sign(grad delta)) (Alg. 1); False when this
        step had no perturbation or its backward did not reach delta."""
        leaf, self._leaf = self._leaf, None
        if leaf is None or leaf.grad is None:
            return False
        with torch.no_grad():
            self.delta[:leaf.shape[0]] = (leaf + self.step * leaf.grad.sign()).clamp(-self.eps, self.eps)
        return True

    def state_dict(self) -> dict:
        return {"delta": None if self.delta is None else self.delta.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.delta = state.get("delta")


@dataclass
class PGDSpec:
    """The validation attack: L-inf PGD (Madry et al. 2018) of radius ``eps`` and step ``alpha``, ``steps`` steps,
    on the first ``batches`` validation batches (None: all)."""

    eps: float
    alpha: float
    steps: int
    batches: int | None = None
    mean: Any = 0.0
    std: Any = 1.0

    def correct(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """[B] bool, PGD from a random start drawn from a generator seeded with ``seed`` (the same every
        validation, so the curve moves only with the weights)."""
        gen = torch.Generator().manual_seed(seed)
        return pgd_correct(net, x, y, self.eps, self.alpha, self.steps, self.mean, self.std, generator=gen)

    def wants(self, batch_idx: int) -> bool:
        return self.batches is None or batch_idx < self.batches


def pixel_stats(data: Any) -> tuple[Any, Any]:
    """(mean, std) with which ``data`` normalises its images (scalars or per-channel lists)."""
    mean, std = getattr(data, "mean", None), getattr(data, "std", None)
    if mean is None or std is None:
        raise ValueError(f"adversarial training needs the data's normalisation (mean / std); {type(data).__name__} "
                         f"has none (allowed: data=synthetic, data=fashion_mnist)")
    return mean, std


def from_config(node: Any, data: Any) -> tuple[FreeAdversary | None, PGDSpec | None]:
    """(adversary, validation attack) of an ``adversarial`` config node (``conf/adversarial/``), or (None, None)
    for ``kind: none`` / a missing node."""
    if node is None or node.get("kind", "none") == "none":
        return None, None
    if node.kind not in KINDS:
        raise ValueError(f"adversarial.kind={node.kind!r}; allowed: {', '.join(KINDS)}")
    mean, std = pixel_stats(data)
    eps = float(node.eps)
    adversary = FreeAdversary(eps, int(node.replays), node.get("step"), mean, std)
    pgd_eps = float(eps if node.get("pgd_eps") is None else node.pgd_eps)
    steps = int(node.get("pgd_steps", 10))
    alpha = float(2.5 * pgd_eps / steps if node.get("pgd_alpha") is None else node.pgd_alpha)   # Madry Sec. 4
    return adversary, PGDSpec(pgd_eps, alpha, steps, node.get("pgd_batches"), mean, std)
