"""The interpreter contract shared by every attribution method.

An interpreter is a pure function of (model, input, target): it never calls ``.backward()``,
never touches ``param.grad``, and takes gradients only with ``torch.autograd.grad`` w.r.t.
inputs or activations. With ``create_graph=True`` the returned map is a differentiable function
of the parameters, so a penalty on it has exact second-order gradients.

Models must be in eval mode for batched maps to equal per-sample maps (BatchNorm statistics and
dropout would otherwise couple or perturb samples); interpreters do not change the mode.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

import torch
from torch import nn

Target = Union[int, torch.Tensor, Literal["label", "pred"]]
SCORES = ("logit", "prob")
NORMALIZATIONS = ("none", "max", "minmax", "absmax")


@dataclass
class Forward:
    """One forward pass: the input it saw, the logits, and the captured layer inputs."""

    x: torch.Tensor
    logits: torch.Tensor
    activations: dict[str, torch.Tensor] = field(default_factory=dict)


def resolve_target(target: Target, logits: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Class index per sample, shape [B], from an int, a [B] tensor, ``"label"`` or ``"pred"``."""
    batch = logits.shape[0]
    if isinstance(target, str):
        if target == "pred":
            return logits.argmax(1)
        if target == "label":
            if labels is None:
                raise ValueError("target='label' needs labels=...; allowed targets: int, [B] tensor, 'label', 'pred'")
            return labels.to(logits.device).long()
        raise ValueError(f"unknown target {target!r}; allowed: int, [B] tensor, 'label', 'pred'")
    if isinstance(target, int):
        if not 0 <= target < logits.shape[1]:
            raise ValueError(f"target class {target} outside [0, {logits.shape[1] - 1}]")
        return torch.full((batch,), target, dtype=torch.long, device=logits.device)
    if isinstance(target, torch.Tensor):
        target = target.to(logits.device).long().reshape(-1)
        if target.numel() == 1:
            target = target.expand(batch)
        if target.shape != (batch,):
            raise ValueError(f"target tensor of shape {tuple(target.shape)}; allowed: [{batch}] or a scalar")
        return target
    raise ValueError(f"unknown target {target!r}; allowed: int, [B] tensor, 'label', 'pred'")


def class_score(logits: torch.Tensor, index: torch.Tensor, score: str = "logit") -> torch.Tensor:
    """Per-sample score S_c: the pre-softmax logit z_c or the post-softmax probability y_c
    (Lerma & Lucas 2023 show the two differ under manipulation). Shape [B]."""
    if score == "prob":
        logits = torch.softmax(logits, dim=1)
    elif score != "logit":
        raise ValueError(f"unknown score {score!r}; allowed: {', '.join(SCORES)}")
    return logits.gather(1, index[:, None]).squeeze(1)


def normalize_map(h: torch.Tensor, how: str) -> torch.Tensor:
    """Per-sample normalisation of [B, H, W] maps; all-zero maps stay zero.

    ``max``: h / max h (Grad-CAM, authors' code); ``minmax``: (h - min) / (max - min) (LRP_T,
    authors' code); ``absmax``: h / max |h| (signed maps); ``none``: unchanged.
    """
    if how == "none":
        return h
    tiny = torch.finfo(h.dtype).tiny
    flat = h.flatten(1)
    if how == "max":
        return h / flat.amax(1).clamp_min(tiny)[:, None, None]
    if how == "absmax":
        return h / flat.abs().amax(1).clamp_min(tiny)[:, None, None]
    if how == "minmax":
        low = flat.amin(1)[:, None, None]
        return (h - low) / (flat.amax(1)[:, None, None] - low).clamp_min(tiny)
    raise ValueError(f"unknown normalize {how!r}; allowed: {', '.join(NORMALIZATIONS)}")


def zero_map_share(h: torch.Tensor) -> float:
    """Share of maps in the batch that are exactly zero everywhere (DESIGN.md 4: a random model with
    the true label can give all-zero Grad-CAM maps and zero gradients, silently)."""
    return float((h.flatten(1).abs().amax(1) == 0).float().mean()) if h.numel() else 0.0


class Interpreter:
    """Base class. Subclasses set ``name``, ``default_normalize`` and implement ``explain_raw``.

    ``layer``: dotted module name whose *input* is explained (layer-level methods); defaults to
    ``net.target_layer``. ``score``: ``"logit"`` or ``"prob"``. ``normalize``: see ``normalize_map``.
    """

    name = "interpreter"
    default_normalize = "none"
    needs_input_grad = False   # input-level methods differentiate w.r.t. x
    uses_layer = False         # layer-level methods capture net's `layer` input

    def __init__(self, net: nn.Module, layer: str | None = None, score: str = "logit",
                 normalize: str | None = None):
        if score not in SCORES:
            raise ValueError(f"unknown score {score!r}; allowed: {', '.join(SCORES)}")
        normalize = self.default_normalize if normalize is None else normalize
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"unknown normalize {normalize!r}; allowed: {', '.join(NORMALIZATIONS)}")
        self.net = net
        self.layer = layer or getattr(net, "target_layer", None)
        if self.uses_layer:
            if self.layer is None:
                raise ValueError(f"{self.name} needs layer=... (the model names no target_layer)")
            from interpfool.models import resolve_module
            resolve_module(net, self.layer)
        self.score = score
        self.normalize = normalize

    # -- forward -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> Forward:
        """One forward pass recording what ``explain`` needs; its logits serve the CE loss too."""
        if self.needs_input_grad and not x.requires_grad:
            x = x.detach().requires_grad_(True)  # data, not parameters: no path to theta is cut
        if self.uses_layer:
            from interpfool.models import capture_inputs
            with capture_inputs(self.net, [self.layer]) as store:
                logits = self.net(x)
            return Forward(x, logits, dict(store))
        return Forward(x, self.net(x))

    # -- explanation ---------------------------------------------------------------------------
    def explain_raw(self, fwd: Forward, index: torch.Tensor, create_graph: bool) -> torch.Tensor:
        """Un-normalised [B, H, W] map for class indices ``index`` ([B])."""
        raise NotImplementedError

    def explain(self, fwd: Forward, target: Target = "pred", labels: torch.Tensor | None = None,
                create_graph: bool = False) -> torch.Tensor:
        index = resolve_target(target, fwd.logits, labels)
        h = normalize_map(self.explain_raw(fwd, index, create_graph), self.normalize)
        return h if create_graph else h.detach()

    def __call__(self, x: torch.Tensor, target: Target = "pred", labels: torch.Tensor | None = None,
                 create_graph: bool = False) -> torch.Tensor:
        """[B, H, W] heatmap of ``x`` for ``target``; ``create_graph=True`` keeps it differentiable."""
        with torch.enable_grad():
            return self.explain(self.forward(x), target, labels, create_graph)

    def score_of(self, fwd: Forward, index: torch.Tensor) -> torch.Tensor:
        """Sum over the batch of the per-sample scores: its gradient is the per-sample gradient."""
        return class_score(fwd.logits, index, self.score).sum()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(layer={self.layer!r}, score={self.score!r}, normalize={self.normalize!r})"


def upsample_map(h: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of [B, H, W] maps to ``size`` — the explicit step from a layer's native
    resolution to the image (DESIGN.md 2.1); differentiable."""
    if tuple(h.shape[-2:]) == tuple(size):
        return h
    return torch.nn.functional.interpolate(h[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
