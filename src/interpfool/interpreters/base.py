"""The interpreter contract shared by every attribution method.

An interpreter is a pure function of (model, input, target): it never calls ``.backward()``,
never touches ``param.grad``, and takes gradients only with ``torch.autograd.grad`` w.r.t.
inputs or activations. With ``create_graph=True`` the returned map is a differentiable function
of the parameters, so a penalty on it has exact second-order gradients.

Models must be in eval mode for batched maps to equal per-sample maps (BatchNorm statistics and
dropout would otherwise couple or perturb samples); interpreters do not change the mode.
"""
from __future__ import annotations

import contextlib
import numbers
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
    logits: torch.Tensor | None          # None: x's own forward was skipped (``Interpreter.explains_input_only``)
    activations: dict[str, torch.Tensor] = field(default_factory=dict)


def resolve_target(target: Target, logits: torch.Tensor | None, labels: torch.Tensor | None = None,
                   batch: int | None = None) -> torch.Tensor:
    """Class index per sample, shape [B], from an int, a [B] tensor, ``"label"`` or ``"pred"``.

    Anything else (another string, a bool, a float, a tensor of the wrong shape, dtype or range)
    raises ``ValueError`` naming the value. ``logits=None`` (no forward of x; ``batch`` given): the upper end of
    the class range is checked where the scores are taken (``class_score``); ``"pred"`` needs the logits.
    """
    if logits is None:
        batch, classes, device = batch, None, None
    else:
        batch, classes, device = logits.shape[0], logits.shape[1], logits.device
    allowed = "allowed: int, [B] integer tensor, 'label', 'pred'"
    if isinstance(target, str):
        if target == "pred" and logits is not None:
            return logits.argmax(1)
        if target == "label":
            if labels is None:
                raise ValueError(f"target='label' needs labels=...; {allowed}")
            return _check_indices(torch.as_tensor(labels), batch, classes, "labels").to(device or labels.device)
        raise ValueError(f"unknown target {target!r}; {allowed}")
    if isinstance(target, bool) or not isinstance(target, (numbers.Integral, torch.Tensor)):
        raise ValueError(f"unknown target {target!r}; {allowed}")
    if isinstance(target, numbers.Integral):
        if target < 0 or (classes is not None and target >= classes):
            raise ValueError(f"target class {target} outside [0, {'classes - 1' if classes is None else classes - 1}]")
        return torch.full((batch,), int(target), dtype=torch.long, device=device)
    return _check_indices(target, batch, classes, "target").to(device or target.device)


def _check_indices(index: torch.Tensor, batch: int, classes: int | None, what: str) -> torch.Tensor:
    if index.is_floating_point() or index.is_complex() or index.dtype == torch.bool:
        raise ValueError(f"{what} {index!r} has dtype {index.dtype}; class indices must be integers")
    index = index.long().reshape(-1)
    if index.numel() == 1:
        index = index.expand(batch)
    if index.shape != (batch,):
        raise ValueError(f"{what} tensor of shape {tuple(index.shape)}; allowed: [{batch}] or a scalar")
    top = "classes - 1" if classes is None else classes - 1
    bad = (index < 0) if classes is None else (index < 0) | (index >= classes)
    if index.device.type != "cpu":       # checked on the device: no host sync in a training step
        torch._assert_async(~bad.any(), f"{what} class(es) outside [0, {top}]")
    elif bool(bad.any()):
        raise ValueError(f"{what} class(es) {index[bad].tolist()} outside [0, {top}]")
    return index


def class_score(logits: torch.Tensor, index: torch.Tensor, score: str = "logit") -> torch.Tensor:
    """Per-sample score S_c: the pre-softmax logit z_c or the post-softmax probability y_c
    (Lerma & Lucas 2023 show the two differ under manipulation). Shape [B].

    y = softmax(z - mean_i z_i): the same probabilities (softmax is shift-invariant, Lerma & Lucas eq. 2),
    and the backward of the centring projects dy_c/dz onto zero-sum vectors, which the exact Jacobian is.
    Without it the float rounding of sum_i y_i != 1 leaves a class-uniform gradient component, which a
    pre-softmax shift t(x) (``models.presoftmax_shift``) turns into a visible map on saturated images."""
    if index.device.type == "cpu" and index.numel() and int(index.max()) >= logits.shape[1]:
        raise ValueError(f"target class(es) {sorted(set(index[index >= logits.shape[1]].tolist()))} outside "
                         f"[0, {logits.shape[1] - 1}]")    # reached when x's own forward was skipped
    if score == "prob":
        logits = torch.softmax(logits - logits.mean(1, keepdim=True), dim=1)
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


def zero_map_share(h: torch.Tensor) -> torch.Tensor:
    """Share of maps in the batch that are exactly zero everywhere (DESIGN.md 4: a random model with
    the true label can give all-zero Grad-CAM maps and zero gradients, silently). A 0-dim float tensor on
    h's device (logging it reads it only when the logger flushes; ``float()`` it for a number)."""
    if not h.numel():
        return torch.zeros((), device=h.device)
    return (h.detach().flatten(1).abs().amax(1) == 0).float().mean()


AUTOCAST_DEVICES = ("cpu", "cuda", "xpu", "mps", "hpu")


def full_precision(x: torch.Tensor):
    """Autocast off on ``x``'s device while an explanation is computed. Under bf16 / fp16 autocast the maps
    would come out in low precision (fp16: no loss scaling for the inner ``autograd.grad``, maps underflow to
    zero, LRP's 1e-6 stabiliser is below fp16's resolution; bf16: FSR thresholds shift, ties in top-k and
    Spearman), and CUDA autocast mixes fp32 (softmax) with bf16 / fp16 (logits). The interpreter's forward
    (whose logits also give the CE loss) and its explanation therefore run in the parameters' dtype (fp32)."""
    kind = x.device.type
    if kind in AUTOCAST_DEVICES and torch.is_autocast_enabled(kind):
        return torch.autocast(device_type=kind, enabled=False)
    return contextlib.nullcontext()


class Interpreter:
    """Base class. Subclasses set ``name``, ``default_normalize`` and implement either ``explain_raw``
    or the pair ``attribution_raw`` (per-channel [B, C, H, W]) + ``reduce_channels`` ([B, H, W]).

    ``layer``: dotted module name whose *input* is explained (layer-level methods); defaults to
    ``net.target_layer``. ``score``: ``"logit"`` or ``"prob"``. ``normalize``: see ``normalize_map``.

    Gradients are taken w.r.t. the tensors of ``fwd``'s graph with ``retain_graph=True``, so one
    forward can be explained several times (e.g. for two classes) and its logits still back-propagate
    the CE loss afterwards.
    """

    name = "interpreter"
    default_normalize = "none"
    default_score = "logit"
    needs_input_grad = False   # input-level methods differentiate w.r.t. x
    # the map reads only fwd.x (its own forwards of perturbed copies of x), never fwd.logits / activations: a
    # standalone call with a given target (int, tensor, 'label') skips x's own forward (IG: 1/steps of the work)
    explains_input_only = False
    uses_layer = False         # layer-level methods capture net's `layer` input

    @property
    def deterministic(self) -> bool:
        """Whether the map of an input is a function of the input and the model alone (no fresh random draw per
        call), so a map computed once may be reused (``experiment.original_maps``)."""
        return True

    @property
    def samples(self) -> int:
        """Inputs the map is averaged over (SmoothGrad's n, IG's and RSI-Grad-CAM's path steps; 1 for a one-pass
        method): a map costs about this many gradients. Integration defenses divide their budget by it."""
        return 1

    def __init__(self, net: nn.Module, layer: str | None = None, score: str | None = None,
                 normalize: str | None = None):
        score = self.default_score if score is None else score
        if score not in SCORES:
            raise ValueError(f"unknown score {score!r}; allowed: {', '.join(SCORES)}")
        normalize = self.default_normalize if normalize is None else normalize
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"unknown normalize {normalize!r}; allowed: {', '.join(NORMALIZATIONS)}")
        # torch.compile's wrapper: aot_autograd refuses the double backward of create_graph=True maps, and the
        # wrapper names its modules `_orig_mod.<name>`; explain the original module (same parameters), eagerly
        net = getattr(net, "_orig_mod", net)
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
    def _graph_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` itself, or a leaf copy that requires grad for input-level methods (they
        differentiate w.r.t. x). Data, not parameters: no path to theta is cut. Layer-level methods
        on frozen models get a differentiable activation from ``capture_inputs`` instead."""
        if self.needs_input_grad and not x.requires_grad:
            return x.detach().requires_grad_(True)
        return x

    def forward(self, x: torch.Tensor) -> Forward:
        """One forward pass recording what ``explain`` needs; its logits serve the CE loss too."""
        x = self._graph_input(x)
        with full_precision(x):
            if self.uses_layer:
                from interpfool.models import capture_inputs
                with capture_inputs(self.net, [self.layer]) as store:
                    logits = self.net(x)
                return Forward(x, logits, dict(store))
            return Forward(x, self.net(x))

    # -- explanation ---------------------------------------------------------------------------
    def attribution_raw(self, fwd: Forward, index: torch.Tensor, create_graph: bool) -> torch.Tensor:
        """Per-channel [B, C, H, W] attribution before the channel reduction (for oracle checks)."""
        raise NotImplementedError(f"{self.name} has no per-channel attribution")

    def reduce_channels(self, attribution: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, H, W]: how the method turns its attribution into a map."""
        raise NotImplementedError(f"{self.name} has no channel reduction")

    def explain_raw(self, fwd: Forward, index: torch.Tensor, create_graph: bool) -> torch.Tensor:
        """Un-normalised [B, H, W] map for class indices ``index`` ([B])."""
        return self.reduce_channels(self.attribution_raw(fwd, index, create_graph))

    def explain(self, fwd: Forward, target: Target = "pred", labels: torch.Tensor | None = None,
                create_graph: bool = False) -> torch.Tensor:
        index = resolve_target(target, fwd.logits, labels, batch=fwd.x.shape[0])
        with full_precision(fwd.x):
            h = normalize_map(self.explain_raw(fwd, index, create_graph), self.normalize)
        return h if create_graph else h.detach()

    def __call__(self, x: torch.Tensor, target: Target = "pred", labels: torch.Tensor | None = None,
                 create_graph: bool = False) -> torch.Tensor:
        """[B, H, W] heatmap of ``x`` for ``target``; ``create_graph=True`` keeps it differentiable."""
        with torch.enable_grad():
            return self.explain(self._standalone_forward(x, target), target, labels, create_graph)

    def attribution(self, x: torch.Tensor, target: Target = "pred", labels: torch.Tensor | None = None,
                    create_graph: bool = False) -> torch.Tensor:
        """Per-channel [B, C, H, W] attribution (un-normalised); ``reduce_channels`` of it is the
        un-normalised map. Meant for comparisons with other libraries (Captum, pytorch-grad-cam)."""
        with torch.enable_grad():
            fwd = self._standalone_forward(x, target)
            index = resolve_target(target, fwd.logits, labels, batch=x.shape[0])
            with full_precision(x):
                attr = self.attribution_raw(fwd, index, create_graph)
        return attr if create_graph else attr.detach()

    def _standalone_forward(self, x: torch.Tensor, target: Target) -> Forward:
        """x's forward for a standalone call, skipped (logits None) when the map never reads it and the target is
        given (``explains_input_only``: IG, SmoothGrad; x's forward is 1/steps of IG's work)."""
        if self.explains_input_only and not (isinstance(target, str) and target == "pred"):
            return Forward(self._graph_input(x), None)
        return self.forward(x)

    def score_of(self, fwd: Forward, index: torch.Tensor) -> torch.Tensor:
        """Sum over the batch of the per-sample scores: its gradient is the per-sample gradient."""
        return class_score(fwd.logits, index, self.score).sum()

    def grad_of_score(self, fwd: Forward, index: torch.Tensor, wrt: torch.Tensor,
                      create_graph: bool) -> torch.Tensor:
        """d(sum_b S_b)/d(wrt) on ``fwd``'s graph, which is kept (``retain_graph=True``)."""
        (grad,) = torch.autograd.grad(self.score_of(fwd, index), wrt, create_graph=create_graph,
                                      retain_graph=True)
        return grad

    def __repr__(self) -> str:
        layer = f"layer={self.layer!r}, " if self.uses_layer else ""
        return f"{type(self).__name__}({layer}score={self.score!r}, normalize={self.normalize!r})"


def upsample_map(h: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of [B, H, W] maps to ``size`` — the explicit step from a layer's native
    resolution to the image (DESIGN.md 2.1); differentiable."""
    if tuple(h.shape[-2:]) == tuple(size):
        return h
    return torch.nn.functional.interpolate(h[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
