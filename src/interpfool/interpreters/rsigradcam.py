"""RSI-Grad-CAM: Riemann-Stieltjes Integrated Grad-CAM (Lucas, Lerma et al. 2022,
arXiv:2205.10900; reference code github.com/mlerma54/RSIGradCAM).

Along the straight input path x(a) = x' + a (x - x'), a in [0, 1], the layer activation A(a)
and the layer gradient g(a) = dS/dA at x(a) are sampled at a_k = k/m, k = 0..m, and the
Riemann-Stieltjes integral int g dA is approximated by the trapezoid sum

    I^k_ij = sum_{j=0}^{m-1} (g_j + g_{j+1})^k_ij / 2 * (A_{j+1} - A_j)^k_ij,

so that sum_kij I^k_ij -> S(x) - S(x') as m grows (chain rule: dS/da = <g, dA/da>). Then

    w_k = mean_ij I^k_ij,   map = ReLU(sum_k w_k A^k)   with A the activation at the real input.

The point a = 1 is the forward pass of x itself (``fwd``), so the map uses the very activations
(and graph) that the CE loss sees; a_0 .. a_{m-1} are stacked into the batch, ``chunk_size``
path points (copies of the whole batch) per forward pass, each chunk after the first with the point before it
(one more forward of B images per chunk). With ``create_graph=True`` each chunk's graph is
rebuilt in the backward (``paths.chunk_terms``): the memory kept for the backward grows with ``chunk_size``, not
with ``steps``.
Differences to the reference notebook (2023-09 version), all immaterial after max normalisation or configurable:
it averages over channels instead of summing (a constant factor); it applies ReLU to the layer
gradients before integrating (here ``positive_grads=True``; default off, as in the paper's
formula); its default target layer is the output of VGG19 ``features.36`` (here: the model's
target layer input, DESIGN.md 2.1). Defaults otherwise follow the reference code: 50 steps,
black baseline, post-softmax score.
"""
from __future__ import annotations

from typing import Sequence

import torch

from interpfool.interpreters.base import Forward, class_score
from interpfool.interpreters.gradcam import _CamBase
from interpfool.interpreters.paths import (IMAGENET_MEAN, IMAGENET_STD, BaselineSpec, as_graph_input, check_baseline,
                                           check_positive_int, chunk_terms, interpolate,
                                           make_baseline)
from interpfool.interpreters.registry import register


@register("rsigradcam")
class RSIGradCAM(_CamBase):
    """``steps`` = m intervals (m + 1 path points); ``baseline`` zeros | black | blur (or a number /
    tensor; ``mean``/``std`` define black, ``blur_sigma`` blur); ``score`` defaults to ``prob``;
    ``chunk_size`` path points per forward pass (null: all at once); ``positive_grads`` integrates
    ReLU(g) as the reference notebook does."""

    default_score = "prob"   # reference code: softmax added to the model

    def __init__(self, net, layer: str | None = None, score: str | None = None, normalize: str | None = None,
                 steps: int = 50, baseline: BaselineSpec = "black", mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, blur_sigma: float = 5.0, chunk_size: int | None = None,
                 positive_grads: bool = False):
        super().__init__(net, layer=layer, score=score, normalize=normalize)
        check_positive_int("steps", steps)
        check_positive_int("chunk_size", chunk_size, allow_none=True)
        check_baseline(baseline, mean, std, blur_sigma)
        if not isinstance(positive_grads, bool):
            raise ValueError(f"positive_grads={positive_grads!r}; allowed: true | false")
        self.steps, self.baseline = steps, baseline
        self.mean, self.std, self.blur_sigma = tuple(mean), tuple(std), blur_sigma
        self.chunk_size, self.positive_grads = chunk_size, positive_grads

    @property
    def samples(self) -> int:
        return self.steps

    def baseline_for(self, x: torch.Tensor) -> torch.Tensor:
        return make_baseline(x, self.baseline, self.mean, self.std, self.blur_sigma)

    def _grad(self, grad: torch.Tensor) -> torch.Tensor:
        return torch.relu(grad) if self.positive_grads else grad

    def integrated_layer_gradient(self, fwd: Forward, index: torch.Tensor, create_graph: bool) -> torch.Tensor:
        """I = the Riemann-Stieltjes trapezoid sum of int g dA along the path, shape of A."""
        from interpfool.models import capture_inputs

        x, act = fwd.x, fwd.activations[self.layer]
        base = self.baseline_for(x)
        alphas = torch.arange(self.steps, dtype=x.dtype, device=x.device) / self.steps  # a_0 .. a_{m-1}

        def chunk_sum(part: slice, x: torch.Tensor, base: torch.Tensor, create_graph: bool):
            # from the point before the chunk (recomputed here, not carried over), so the pair that straddles
            # two chunks is in the later one and no chunk's tensors are kept for the next
            points = alphas[max(part.start - 1, 0):part.stop]
            xs = as_graph_input(interpolate(base, x, points))
            k = points.shape[0]
            with capture_inputs(self.net, [self.layer]) as store:
                logits = self.net(xs)
            acts = store[self.layer]
            score = class_score(logits, index.repeat(k), self.score).sum()
            grads = torch.autograd.grad(score, acts, create_graph=create_graph)[0]
            acts, grads = acts.view(k, *act.shape), self._grad(grads).view(k, *act.shape)
            # trapezoid Riemann-Stieltjes terms (g_j + g_{j+1}) / 2 * (A_{j+1} - A_j)
            return ((grads[1:] + grads[:-1]) / 2 * (acts[1:] - acts[:-1])).sum(0), acts[-1], grads[-1]

        integral = torch.zeros_like(act)
        for part_sum, prev_a, prev_g in chunk_terms(chunk_sum, self.steps, self.chunk_size, create_graph, x, base,
                                                    params=tuple(self.net.parameters())):
            integral = integral + part_sum
        g_end = self._grad(self.grad_of_score(fwd, index, act, create_graph))   # a_m = 1: the real input
        return integral + (prev_g + g_end) / 2 * (act - prev_a)

    def explain_raw(self, fwd: Forward, index: torch.Tensor, create_graph: bool) -> torch.Tensor:
        act = fwd.activations[self.layer]
        weights = self.integrated_layer_gradient(fwd, index, create_graph).mean(dim=(2, 3))   # w_k
        return torch.relu(torch.einsum("bk,bkhw->bhw", weights, act))

    def attribution_raw(self, fwd: Forward, index: torch.Tensor, create_graph: bool) -> torch.Tensor:
        act = fwd.activations[self.layer]
        return self.integrated_layer_gradient(fwd, index, create_graph).mean(dim=(2, 3))[:, :, None, None] * act
