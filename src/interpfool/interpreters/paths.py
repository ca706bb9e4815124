"""Helpers shared by the sampling / path methods (SmoothGrad, Integrated Gradients, RSI-Grad-CAM):
baselines, quadrature rules on [0, 1], and the chunking of samples stacked into the batch.

Samples are stacked *copy-major*: a chunk of k copies of a batch of B images is one tensor of
k * B images, copy j of image b at row j * B + b (so ``index.repeat(k)`` are their targets).
"""
from __future__ import annotations

import functools

import math
from typing import Any, Callable, Iterator, Sequence, Union

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BASELINES = ("zeros", "black", "blur")
# Captum's names (captum.attr._utils.approximation_methods).
METHODS = ("riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid", "gausslegendre")

BaselineSpec = Union[str, float, torch.Tensor]


def check_positive_int(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r}; allowed: an integer >= 1" + (" or null" if allow_none else ""))


def check_baseline(baseline: BaselineSpec, mean: Sequence[float], std: Sequence[float], blur_sigma: float) -> None:
    if isinstance(baseline, str):
        if baseline not in BASELINES:
            raise ValueError(f"unknown baseline {baseline!r}; allowed: {', '.join(BASELINES)}, a number or a tensor")
    elif not isinstance(baseline, (int, float, torch.Tensor)) or isinstance(baseline, bool):
        raise ValueError(f"unknown baseline {baseline!r}; allowed: {', '.join(BASELINES)}, a number or a tensor")
    if len(mean) != len(std) or any(s <= 0 for s in std):
        raise ValueError(f"mean={list(mean)} / std={list(std)}: need one mean and one positive std per channel")
    if blur_sigma <= 0:
        raise ValueError(f"blur_sigma={blur_sigma!r}; allowed: > 0 (pixels)")


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [B, C, H, W] images, reflect padding, radius ceil(3 sigma)
    (capped by the image size)."""
    radius = min(math.ceil(3 * sigma), x.shape[-1] - 1, x.shape[-2] - 1)
    if radius < 1:
        return x.clone()
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    out = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def make_baseline(x: torch.Tensor, baseline: BaselineSpec, mean: Sequence[float] = IMAGENET_MEAN,
                  std: Sequence[float] = IMAGENET_STD, blur_sigma: float = 5.0) -> torch.Tensor:
    """The reference input x' for x ([B, C, H, W]).

    ``zeros``: 0 in the (normalised) input space. ``black``: the image that is black in pixel
    space, i.e. (0 - mean) / std per channel in normalised space. ``blur``: x blurred with a
    Gaussian of ``blur_sigma`` pixels (Sturmfels et al. 2020). A number or a tensor broadcastable
    to x is used as it is.
    """
    if isinstance(baseline, torch.Tensor):
        return baseline.to(device=x.device, dtype=x.dtype).expand_as(x)
    if not isinstance(baseline, str):
        return torch.full_like(x, float(baseline))
    if baseline == "zeros":
        return torch.zeros_like(x)
    if baseline == "black":
        if x.shape[1] != len(mean):
            raise ValueError(f"baseline='black' with {len(mean)} mean/std values for {x.shape[1]}-channel "
                             f"input; set mean=... and std=... (one per channel)")
        return _black(tuple(map(float, mean)), tuple(map(float, std)), x.dtype, x.device).expand_as(x)
    if baseline == "blur":
        return gaussian_blur(x, blur_sigma)
    raise ValueError(f"unknown baseline {baseline!r}; allowed: {', '.join(BASELINES)}, a number or a tensor")


@functools.lru_cache(maxsize=64)
def _black(mean: tuple[float, ...], std: tuple[float, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The black image's [1, C, 1, 1] value on ``device``, copied there once (not once per map)."""
    m = torch.as_tensor(mean, dtype=dtype).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=dtype).view(1, -1, 1, 1)
    return (-m / s).to(device)


def quadrature(method: str, steps: int, dtype: torch.dtype = torch.float64,
               device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``_quadrature`` on ``device``: computed on the host and copied to the device once per
    (method, steps, dtype, device), not once per map. The returned tensors are shared: do not modify them."""
    return _quadrature(method, steps, dtype, None if device is None else torch.device(device))


@functools.lru_cache(maxsize=64)
def _quadrature(method: str, steps: int, dtype: torch.dtype = torch.float64,
                device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes alpha_k in [0, 1] and weights w_k with sum_k w_k f(alpha_k) ~ int_0^1 f (Sundararajan
    et al. 2017, eq. 3 is the right Riemann sum). Names as Captum's.

    ``riemann_trapezoid`` is the composite trapezoid rule on ``steps`` equally spaced nodes
    0, 1/(n-1), ..., 1 (weights 1/(n-1), halved at both ends, summing to 1). Captum uses the same
    nodes with weights 1/n (halved at the ends), which sum to (n-1)/n: its trapezoid attributions
    are ours times (n-1)/n.
    """
    check_positive_int("steps", steps)
    n = steps
    k = torch.arange(n, dtype=torch.float64)
    if method == "riemann_right":
        alphas, weights = (k + 1) / n, torch.full((n,), 1.0 / n, dtype=torch.float64)
    elif method == "riemann_left":
        alphas, weights = k / n, torch.full((n,), 1.0 / n, dtype=torch.float64)
    elif method == "riemann_middle":
        alphas, weights = (k + 0.5) / n, torch.full((n,), 1.0 / n, dtype=torch.float64)
    elif method == "riemann_trapezoid":
        if n < 2:
            raise ValueError("method='riemann_trapezoid' needs steps >= 2")
        alphas = k / (n - 1)
        weights = torch.full((n,), 1.0 / (n - 1), dtype=torch.float64)
        weights[0] = weights[-1] = 0.5 / (n - 1)
    elif method == "gausslegendre":
        import numpy as np  # constants only, not on the differentiable path
        nodes, w = np.polynomial.legendre.leggauss(n)
        alphas, weights = torch.from_numpy(0.5 * (nodes + 1)), torch.from_numpy(0.5 * w)
    else:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    return alphas.to(dtype=dtype, device=device), weights.to(dtype=dtype, device=device)


def chunks(total: int, size: int | None) -> Iterator[slice]:
    """Consecutive slices of range(total), ``size`` items each (all at once when ``size`` is None)."""
    size = total if size is None else size
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


def recomputes(total: int, size: int | None, create_graph: bool) -> bool:
    """Whether ``chunk_terms`` recomputes its chunks in the backward: a graph is kept and there is more than one
    chunk."""
    return create_graph and size is not None and size < total and torch.is_grad_enabled()


def chunk_terms(term: Callable[..., Any], total: int, size: int | None, create_graph: bool,
                *tensors: torch.Tensor, params: Sequence[torch.Tensor] = ()) -> Iterator[Any]:
    """``term(part, *tensors, create_graph=...)`` for each chunk ``part`` of range(total) (``chunks``), in order.

    With ``create_graph`` (the map will be differentiated) and more than one chunk, each chunk is a
    ``_RecomputedChunk``: its forward runs ``term`` with ``create_graph=False`` (the first-order gradient only, no
    graph kept) and keeps nothing but ``tensors`` (the input-sized batch and baseline); its backward runs ``term``
    again with ``create_graph=True`` and differentiates that graph w.r.t. ``tensors`` and ``params`` (the
    double backward), one chunk at a time. So what a map holds for the backward, and the peak through the
    backward, grow with ``size``, not with ``total``. Cost: the chunk's forward and first-order gradient run twice.

    ``term`` may read other tensors from its closure only if no gradient is wanted through them: gradients reach
    ``tensors`` and ``params`` (the model's parameters that require grad) alone. Random draws inside ``term`` are
    replayed in the backward (the CPU's and the tensors' devices' RNG states are restored), and a model in train
    mode would update BatchNorm statistics twice. The recomputed backward is not itself differentiable (no third
    order). Why not ``torch.utils.checkpoint``: a first-order gradient taken inside a checkpointed chunk runs on a
    recomputation that keeps every tensor the gradient does not unpack (a convolution's input, for a gradient
    w.r.t. the chunk's input) until the backward; on ResNet50 that made chunking cost more memory than none
    (tests/interpreters/test_chunk_memory.py). Without ``create_graph`` no chunk's graph outlives its own
    gradient: plain calls."""
    if not recomputes(total, size, create_graph):
        for part in chunks(total, size):
            yield term(part, *tensors, create_graph=create_graph)
        return
    params = tuple(p for p in params if p.requires_grad)
    for part in chunks(total, size):
        out = _RecomputedChunk.apply(term, part, len(tensors), *tensors, *params)
        yield out[0] if len(out) == 1 else out


def _devices(tensors: Sequence[torch.Tensor]) -> list[int]:
    return sorted({t.device.index or 0 for t in tensors if t.device.type == "cuda"})


class _RecomputedChunk(torch.autograd.Function):
    """One chunk's term: values now, graph rebuilt in the backward (``chunk_terms``). Outputs: the term's tensors."""

    @staticmethod
    def forward(ctx, term, part, n_tensors, *inputs):
        tensors, params = inputs[:n_tensors], inputs[n_tensors:]
        ctx.term, ctx.part, ctx.n_tensors, ctx.params = term, part, n_tensors, params
        ctx.devices = _devices(tensors)
        ctx.cpu_rng = torch.get_rng_state()
        ctx.cuda_rng = [torch.cuda.get_rng_state(d) for d in ctx.devices]
        ctx.save_for_backward(*tensors)
        with torch.enable_grad():   # values only: the graph through tensors and params is rebuilt in backward
            out = term(part, *(t.detach() for t in tensors), create_graph=False)
        out = out if isinstance(out, tuple) else (out,)
        # a view (e.g. the last path point's activations) would keep its whole chunk's storage alive: copy it out
        return tuple(o.detach().clone() if o.untyped_storage().nbytes() > o.numel() * o.element_size() else o.detach()
                     for o in out)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grad_outs):
        tensors = ctx.saved_tensors
        wants = ctx.needs_input_grad[3:]
        leaves = [t.detach().requires_grad_(w) for t, w in zip(tensors, wants)]
        with torch.random.fork_rng(devices=ctx.devices), torch.enable_grad():
            torch.set_rng_state(ctx.cpu_rng)
            for d, state in zip(ctx.devices, ctx.cuda_rng):
                torch.cuda.set_rng_state(state, d)
            out = ctx.term(ctx.part, *leaves, create_graph=True)
        out = out if isinstance(out, tuple) else (out,)
        pairs = [(o, g) for o, g in zip(out, grad_outs) if o.requires_grad and g is not None]
        targets = [t for t, w in zip([*leaves, *ctx.params], wants) if w]
        grads = iter(torch.autograd.grad([o for o, _ in pairs], targets, [g for _, g in pairs], allow_unused=True)
                     if pairs and targets else [None] * len(targets))
        return (None, None, None, *(next(grads) if w else None for w in wants))


def interpolate(baseline: torch.Tensor, x: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """[k * B, C, H, W] stack of x' + alpha_j (x - x'), copy-major (Sundararajan et al. eq. 1 path)."""
    a = alphas.view(-1, *([1] * x.dim()))
    return (baseline.unsqueeze(0) + a * (x - baseline).unsqueeze(0)).flatten(0, 1)


def as_graph_input(xs: torch.Tensor) -> torch.Tensor:
    """Stacked samples are data: make them a leaf that requires grad unless they already do."""
    return xs if xs.requires_grad else xs.requires_grad_(True)
