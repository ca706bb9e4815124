"""What every input attack shares: pixel units, argument checks, the loss gradient w.r.t. the pixels.

Attacks take the model's input ``x`` (normalised as the data module does: x = (pixel - mean) / std) and measure
``eps`` and step sizes in **pixel units** (for [0, 1] images, 8/255 is 8 grey levels). ``mean`` / ``std``: None
(the input is the pixels), a number, or one value per channel; ``clamp``: the valid pixel range (low, high), or
None for none. Gradients are taken with ``torch.autograd.grad`` w.r.t. the pixel tensor only: no parameter and
no parameter's ``.grad`` is touched. The model's mode is the caller's: put it in eval mode first (dropout and
BatchNorm batch statistics would otherwise make the attack random and couple the images of a batch).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from interpfool.interpreters.base import resolve_target

Stat = Union[None, float, Sequence[float], torch.Tensor]


def _number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_eps(eps, name: str = "eps") -> float:
    """A finite real >= 0 (pixel units), else a one-line ValueError naming the argument."""
    if not _number(eps) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"{name}={eps!r}; allowed: a finite number >= 0 (pixel units, e.g. 8/255)")
    return float(eps)


def check_step(alpha, name: str = "alpha") -> float:
    """A finite real > 0 (pixel units)."""
    if not _number(alpha) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"{name}={alpha!r}; allowed: a finite number > 0 (pixel units, e.g. 2/255)")
    return float(alpha)


def check_steps(steps, name: str = "steps") -> int:
    """An integer >= 1."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"{name}={steps!r}; allowed: an integer >= 1")
    return int(steps)


def check_clamp(clamp) -> tuple[float, float] | None:
    """None, or (low, high) with finite low < high."""
    if clamp is None:
        return None
    ok = isinstance(clamp, (tuple, list)) and len(clamp) == 2 and all(_number(v) and math.isfinite(v) for v in clamp)
    if not ok or not clamp[0] < clamp[1]:
        raise ValueError(f"clamp={clamp!r}; allowed: None or (low, high) with finite low < high, e.g. (0, 1)")
    return float(clamp[0]), float(clamp[1])


def _stat(value: Stat, name: str, x: torch.Tensor) -> torch.Tensor | None:
    if value is None:
        return None
    t = torch.as_tensor(value, dtype=x.dtype, device=x.device).flatten()
    if t.numel() not in (1, x.shape[1]) or not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}={value!r}; allowed: None, a number or one finite value per channel ({x.shape[1]})")
    if name == "std" and bool((t <= 0).any()):
        raise ValueError(f"std={value!r}; allowed: values > 0")
    return t.view(1, -1, *([1] * (x.dim() - 2))) if t.numel() > 1 else t.view(())


@dataclass
class PixelSpace:
    """pixel = x * std + mean (the data module's normalisation), valid pixels in ``clamp``."""

    mean: torch.Tensor | None
    std: torch.Tensor | None
    clamp: tuple[float, float] | None

    @classmethod
    def of(cls, x: torch.Tensor, mean: Stat = None, std: Stat = None, clamp=(0.0, 1.0)) -> "PixelSpace":
        if x.dim() < 2 or not x.is_floating_point():
            raise ValueError(f"x of shape {tuple(x.shape)} and dtype {x.dtype}; allowed: a float [B, C, ...] batch")
        return cls(_stat(mean, "mean", x), _stat(std, "std", x), check_clamp(clamp))

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        p = x if self.std is None else x * self.std
        return p if self.mean is None else p + self.mean

    def to_input(self, p: torch.Tensor) -> torch.Tensor:
        x = p if self.mean is None else p - self.mean
        return x if self.std is None else x / self.std

    def valid(self, p: torch.Tensor) -> torch.Tensor:
        """Clip to the valid pixel range (Kurakin et al. 2017, Sec. 2.2: Clip)."""
        return p if self.clamp is None else p.clamp(*self.clamp)

    def project(self, p: torch.Tensor, p0: torch.Tensor, eps: float) -> torch.Tensor:
        """Onto {p : |p - p0|_inf <= eps} intersected with the valid range (Madry et al. 2018, Sec. 2.1, Pi_{x+S};
        Kurakin et al. 2017, Sec. 2.2, Clip_{X,eps})."""
        return self.valid(torch.minimum(torch.maximum(p, p0 - eps), p0 + eps))


def resolve_goal(net: nn.Module, x: torch.Tensor, y, targeted) -> tuple[torch.Tensor, bool]:
    """The class whose CE the attack ascends (untargeted: ``y``, or the clean prediction when ``y`` is None) or
    descends (``targeted``: an int class or a [B] tensor). Returns ([B] classes, is_targeted)."""
    with torch.no_grad():
        logits = net(x)
    if targeted is not None:
        try:
            return resolve_target(targeted, logits), True
        except ValueError as err:
            raise ValueError(f"targeted={targeted!r}: {err}") from None
    if y is None:
        return logits.argmax(1), False
    try:
        return resolve_target(torch.as_tensor(y, device=x.device), logits), False
    except ValueError as err:
        raise ValueError(f"y: {err}") from None


def loss_gradient(net: nn.Module, space: PixelSpace, p: torch.Tensor, goal: torch.Tensor,
                  targeted: bool) -> torch.Tensor:
    """g = d J / d pixels with J = CE(f(x), y) (untargeted: ascended) or J = -CE(f(x), t) (targeted: ascending J
    descends the target's CE, Kurakin et al. 2017, Sec. 2.3). Summed over the batch, so each image gets its own
    gradient; only the pixels are differentiated (``autograd.grad``: parameters' ``.grad`` untouched)."""
    leaf = p.detach().requires_grad_(True)      # the attack's own variable: data, not a parameter
    with torch.enable_grad():
        ce = F.cross_entropy(net(space.to_input(leaf)), goal, reduction="sum")
        (grad,) = torch.autograd.grad(-ce if targeted else ce, leaf)
    return grad


def single_step(net: nn.Module, x: torch.Tensor, y, eps: float, direction, *, mean: Stat = None, std: Stat = None,
                clamp=(0.0, 1.0), targeted=None) -> torch.Tensor:
    """p' = clip(p + eps * direction(g)), g = grad_p J (``loss_gradient``), back in the model's input space; the clean
    batch itself for eps 0. The one-step attacks (``fgsm``, ``gradient_step``) differ only in ``direction``."""
    eps = check_eps(eps)
    space = PixelSpace.of(x, mean, std, clamp)
    goal, is_targeted = resolve_goal(net, x, y, targeted)
    if eps == 0:                                    # no perturbation: the clean batch itself
        return x.detach().clone()
    p = space.to_pixels(x)
    g = loss_gradient(net, space, p, goal, is_targeted)
    return space.to_input(space.valid(p + eps * direction(g))).detach()
