"""Explanation attacks on the input: change the map, keep the output (the input-side counterpart of Heo et al.'s
model manipulation).

Loss, after Dombrowski et al. (2019, "Explanations can be manipulated and geometry is to blame", Sec. 3, the
manipulation loss L = ||h(x') - h^t||^2 + gamma ||g(x') - g(x)||^2, g the network's output):

    L(x') = D(h(x')) + gamma * mean_c (o_c(x') - o_c(x))^2,

D the map objective: MSE to a target map h^t (Dombrowski), or a fooling penalty of
``interpfool.fooling.penalties`` — Location (Heo et al. 2019, eq. 3), Top-k (Heo eq. 4; Ghorbani, Abid & Zou
2019, "Interpretation of neural networks is fragile", the top-k attack), Center-mass (Heo eq. 5; Ghorbani et al.
2019, the center attack) — against the clean map h(x); o = logits or softmax probabilities.

L is minimised by signed steps projected to the L-inf ball of radius eps around the clean pixels and the valid
pixel range (Ghorbani et al. 2019, Algorithm 1: iterative feature-importance attack; the update of Kurakin et al.
2017 / Madry et al. 2018). As in Ghorbani's Algorithm 1, ``select="best"`` returns for each image the iterate
with the lowest D among those whose prediction (of ``net``, not of the smoothed copy) is the clean one: the
clean image qualifies, so the prediction is kept on every image; ``select="last"`` returns the last iterate.

``softplus_beta``: take the attack's gradients through ``models.softplus_copy(net, beta)`` (Dombrowski et al.
2019, Sec. 4: a ReLU network's input Hessian is zero almost everywhere, so the gradient of a gradient map w.r.t.
the input misses its curvature); D for the selection, and the maps the attack is judged by, are ``net``'s own.
"""
from __future__ import annotations

import copy
from typing import Callable, Union

import torch
from torch import nn

from interpfool.attacks.pixels import PixelSpace, Stat, check_eps, check_step, check_steps
from interpfool.fooling.penalties import CenterMassFooling, LocationFooling, TopKFooling
from interpfool.fooling.penalties.base import Fooling
from interpfool.interpreters.base import Interpreter, resolve_target
from interpfool.models.softplus import check_beta, softplus_copy

OBJECTIVES = {"location": LocationFooling, "topk": TopKFooling, "center_mass": CenterMassFooling}
KEEPS = ("logits", "probs")
SELECTS = ("best", "last")
InterpLike = Union[Interpreter, Callable[..., Interpreter]]


def _objective(objective, target_map) -> Fooling | None:
    """The map objective: a ``Fooling`` (or its name) or, with ``target_map``, None (MSE to the target)."""
    if (objective is None) == (target_map is None):
        raise ValueError("objective / target_map: both or neither given; allowed: exactly one (objective=location | "
                         "topk | center_mass | a Fooling, or target_map=a [H, W] / [B, H, W] tensor)")
    if target_map is not None:
        if not isinstance(target_map, torch.Tensor) or target_map.dim() not in (2, 3):
            raise ValueError(f"target_map of type {type(target_map).__name__}; allowed: a [H, W] or [B, H, W] tensor")
        return None
    if isinstance(objective, str):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective={objective!r}; allowed: {', '.join(OBJECTIVES)} or a Fooling instance")
        return OBJECTIVES[objective]()
    if not isinstance(objective, Fooling) or objective.classes:
        raise ValueError(f"objective={objective!r}; allowed: {', '.join(OBJECTIVES)} or a passive Fooling instance "
                         f"(swap foolings compare two classes' maps of a collage)")
    return objective


def on_model(interp: InterpLike, net: nn.Module) -> Interpreter:
    """``interp`` explaining ``net``: a factory (``interp(net=net)``, e.g. a Hydra ``_partial_`` node or a class),
    or an ``Interpreter`` instance re-pointed at ``net`` (a shallow copy: same settings, other model)."""
    if isinstance(interp, Interpreter):
        if interp.net is net:
            return interp
        if hasattr(interp, "adapter"):     # LRP: rules are per ReLU-network layer type, planned at construction
            raise ValueError(f"softplus_beta with {interp.name}: LRP's rules are defined for the ReLU network; "
                             f"allowed: softplus_beta=None, or a gradient-based interpreter")
        moved = copy.copy(interp)
        moved.net = net
        return moved
    if callable(interp):
        return interp(net=net)
    raise ValueError(f"interp={interp!r}; allowed: an Interpreter or a factory interp(net=...) -> Interpreter")


def map_term(objective: Fooling | None, h: torch.Tensor, h0: torch.Tensor, target_map: torch.Tensor | None
             ) -> torch.Tensor:
    """D per image [B]: the fooling's training penalty (against the clean map h0), or MSE to ``target_map``."""
    if objective is None:
        if target_map.shape[-2:] != h.shape[-2:]:
            raise ValueError(f"target_map of shape {tuple(target_map.shape)}; allowed: maps of this interpreter's "
                             f"size {tuple(h.shape[-2:])} ([H, W] or [B, H, W])")
        return (h - target_map.to(h)).square().flatten(1).mean(1)         # Dombrowski et al. 2019, Sec. 3
    return objective.penalty(h, h0 if objective.needs_original else None)


def explanation_attack(net: nn.Module, interp: InterpLike, x: torch.Tensor, target_map: torch.Tensor | None = None, *,
                       objective: Fooling | str | None = None, eps: float, steps: int, alpha: float | None = None,
                       gamma: float = 1.0, keep: str = "probs", target="pred", labels: torch.Tensor | None = None,
                       softplus_beta: float | None = None, select: str = "best", random_start: bool = False,
                       generator: torch.Generator | None = None, mean: Stat = None, std: Stat = None,
                       clamp=(0.0, 1.0)) -> torch.Tensor:
    """Perturb ``x`` within ``eps`` (L-inf, pixel units) so that ``interp``'s map of class ``target`` (``"pred"``:
    the clean prediction; ``"label"`` with ``labels``; an int or [B] tensor) minimises the objective while the
    output stays (module docstring). ``alpha``: step size in pixels (default 2.5 eps / steps, Madry et al. 2018);
    ``gamma``: weight of the output term; ``keep``: ``probs`` (softmax, default) | ``logits``; ``random_start``:
    start uniformly in the ball (``generator``). Returns the adversarial batch in the model's input space. ``net`` must be in eval
    mode (the caller's job); no parameter and no ``.grad`` of one is changed (gradients w.r.t. the pixels only)."""
    eps, steps = check_eps(eps), check_steps(steps)
    alpha = 2.5 * eps / steps if alpha is None else alpha
    if eps > 0:
        alpha = check_step(alpha)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma >= 0 or gamma == float("inf"):
        raise ValueError(f"gamma={gamma!r}; allowed: a finite number >= 0")
    if keep not in KEEPS:
        raise ValueError(f"keep={keep!r}; allowed: {', '.join(KEEPS)}")
    if select not in SELECTS:
        raise ValueError(f"select={select!r}; allowed: {', '.join(SELECTS)}")
    fooling = _objective(objective, target_map)
    space = PixelSpace.of(x, mean, std, clamp)
    real = on_model(interp, net)
    attack_net = net if softplus_beta is None else softplus_copy(net, check_beta(softplus_beta))
    attacker = real if attack_net is net else on_model(interp, attack_net)

    def output(logits: torch.Tensor) -> torch.Tensor:
        return logits if keep == "logits" else logits.softmax(1)

    with torch.enable_grad():
        fwd0 = real.forward(x.detach())
        index = resolve_target(target, fwd0.logits, labels)            # one class per image, fixed throughout
        h0 = real.explain(fwd0, index)                                 # the clean map (detached)
    pred0 = fwd0.logits.detach().argmax(1)
    if eps == 0:
        return x.detach().clone()
    with torch.no_grad():
        out0 = output(attack_net(x))
    p0 = space.to_pixels(x).detach()
    p = p0
    if random_start:
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        noise = torch.rand(p0.shape, generator=gen, dtype=p0.dtype, device=gen.device).to(p0.device)
        p = space.project(p0 + eps * (2 * noise - 1), p0, eps)
    best_p, best_d = p0.clone(), map_term(fooling, h0, h0, target_map).detach()   # the clean image: kept
    for step in range(steps + 1):
        leaf = p.detach().requires_grad_(True)      # the attack's variable: data, not a parameter
        with torch.enable_grad():
            fwd = attacker.forward(space.to_input(leaf))
            h = attacker.explain(fwd, index, create_graph=step < steps)
            d = map_term(fooling, h, h0, target_map)
            if attack_net is net:                    # the record is net's own map and prediction at this iterate
                d_real, pred = d.detach(), fwd.logits.detach().argmax(1)
            else:
                fwd_real = real.forward(space.to_input(leaf.detach()))
                d_real = map_term(fooling, real.explain(fwd_real, index), h0, target_map).detach()
                pred = fwd_real.logits.detach().argmax(1)
            better = (pred == pred0) & (d_real < best_d)
            best_d = torch.where(better, d_real, best_d)
            best_p = torch.where(better.view(-1, *([1] * (p.dim() - 1))), leaf.detach(), best_p)
            if step == steps:
                break
            # Dombrowski et al. 2019, Sec. 3: map objective + gamma * output term, summed over the batch
            loss = (d + gamma * (output(fwd.logits) - out0).square().mean(1)).sum()
            (grad,) = torch.autograd.grad(loss, leaf, allow_unused=True) if loss.requires_grad else (None,)
        if grad is None:
            grad = torch.zeros_like(leaf)
        p = space.project(leaf.detach() - alpha * grad.sign(), p0, eps)   # descend L; Ghorbani et al. Alg. 1
    chosen = best_p if select == "best" else p
    return space.to_input(chosen).detach()
