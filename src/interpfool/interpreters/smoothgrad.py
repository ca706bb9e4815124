"""SmoothGrad (Smilkov et al. 2017, Sec. 3): the mean of SimpleGrad over n noisy copies,

M(x) = 1/n sum_k |dS/dx|(x + N(0, sigma_b^2)),   sigma_b = sigma * (max x_b - min x_b),

i.e. the noise level is relative to each sample's input range (Smilkov et al. recommend
10-20%). Attribution: mean |gradient| per channel (what Captum's NoiseTunnel(Saliency) returns);
map = its channel sum = the mean SimpleGrad map. Default normalisation: per-sample max.

The noisy copies are stacked into the batch, ``chunk_size`` copies of the whole batch per forward
pass (no per-image loop); with ``create_graph=True`` each chunk's graph is rebuilt in the backward (``paths.chunk_terms``), so
the memory the map keeps and its backward's peak grow with ``chunk_size``, not with ``n``. Noise: one draw of ``x.shape`` per copy,
in copy order, so the result does not depend on ``chunk_size``. The noise is a constant of the map: its gradient
w.r.t. parameters is exact.

``rng="portable"`` (default): the noise of copy k is the counter-based stream ``portable_noise.normal`` of the
seed, the same bits on the CPU and on CUDA (to float64 rounding of the Box-Muller transform), so a seeded map,
and a seeded run's FSR, compare across devices. With ``seed`` null the stream's seed is drawn once per call
from the global (CPU) RNG: fresh noise each call, reproducible under a seeded run. ``rng="torch"``: torch's
generator of the input's device (``torch.Generator`` seeded with ``seed``, or the global one), which differs
between the CPU and CUDA.
"""
from __future__ import annotations

import torch

from interpfool.interpreters import portable_noise
from interpfool.interpreters.base import Forward, Interpreter, class_score
from interpfool.interpreters.paths import as_graph_input, check_positive_int, chunk_terms
from interpfool.interpreters.registry import register

RNGS = ("portable", "torch")
PIECE = 1 << 22   # elements per portable draw


@register("smoothgrad")
class SmoothGrad(Interpreter):
    """``n`` noisy copies, noise std ``sigma`` x (max - min) per sample, ``seed`` (null: drawn from the global RNG
    each call), ``chunk_size`` copies per forward pass (null: all at once), ``rng`` portable | torch."""

    default_normalize = "max"
    explains_input_only = True

    def __init__(self, net, layer: str | None = None, score: str | None = None, normalize: str | None = None,
                 n: int = 50, sigma: float = 0.15, seed: int | None = None, chunk_size: int | None = None,
                 rng: str = "portable"):
        super().__init__(net, layer=layer, score=score, normalize=normalize)
        check_positive_int("n", n)
        check_positive_int("chunk_size", chunk_size, allow_none=True)
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or sigma < 0:
            raise ValueError(f"sigma={sigma!r}; allowed: a number >= 0 (fraction of the input range)")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed={seed!r}; allowed: an integer or null")
        if rng not in RNGS:
            raise ValueError(f"rng={rng!r}; allowed: {', '.join(RNGS)}")
        self.n, self.sigma, self.seed, self.chunk_size, self.rng = n, float(sigma), seed, chunk_size, rng

    @property
    def deterministic(self) -> bool:
        """Only with a ``seed``: without one, each call draws fresh noise from the global RNG."""
        return self.seed is not None

    @property
    def samples(self) -> int:
        return self.n

    def noise_std(self, x: torch.Tensor) -> torch.Tensor:
        """sigma * (max - min) of each sample, shaped to broadcast over x. A constant (no graph)."""
        with torch.no_grad():
            flat = x.flatten(1)
            return (self.sigma * (flat.amax(1) - flat.amin(1))).view(-1, *([1] * (x.dim() - 1)))

    def _generator(self, x: torch.Tensor) -> torch.Generator | None:
        return None if self.seed is None else torch.Generator(device=x.device).manual_seed(self.seed)

    @staticmethod
    def _draw(x: torch.Tensor, std: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        return torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device) * std

    def _stream_seed(self) -> int:
        """The portable stream's seed of one call: ``seed``, or a fresh one from the global (CPU) RNG."""
        return portable_noise.draw_seed() if self.seed is None else self.seed

    def _portable(self, x: torch.Tensor, std: torch.Tensor, seed: int, first: int, k: int) -> torch.Tensor:
        """Copies ``first .. first + k - 1`` of the portable stream, copy-major [k * B, ...], times ``std``."""
        per = max(1, PIECE // x.numel())       # copies per draw: bounds the int64 / float64 temporaries
        draws = [portable_noise.normal((min(per, first + k - j), *x.shape), seed, offset=j * x.numel(),
                                       dtype=x.dtype, device=x.device) for j in range(first, first + k, per)]
        return (torch.cat(draws) * std).flatten(0, 1)

    def _noise_source(self, x: torch.Tensor):
        """One call's noise: ``draw(first, k)`` = copies ``first .. first + k - 1``, copy-major [k * B, ...]. The same
        copies every time they are asked for: a chunk recomputed in the backward reads the same noise (portable: the
        stream's seed is fixed for the call; torch rng: the generator is put back to the chunk's start state)."""
        std = self.noise_std(x)
        if self.rng == "portable":
            seed = self._stream_seed()
            return lambda first, k: self._portable(x, std, seed, first, k)
        gen, starts = self._generator(x), {}

        def draw(first: int, k: int) -> torch.Tensor:
            if gen is not None:
                if first in starts:
                    gen.set_state(starts[first])
                else:
                    starts[first] = gen.get_state()
            return torch.cat([self._draw(x, std, gen) for _ in range(k)])
        return draw

    def noise(self, x: torch.Tensor) -> torch.Tensor:
        """The [n, B, C, H, W] noise that ``explain`` adds to x (reproducible when ``seed`` is set)."""
        return self._noise_source(x)(0, self.n).view(self.n, *x.shape)

    def attribution_raw(self, fwd: Forward, index: torch.Tensor, create_graph: bool) -> torch.Tensor:
        x = fwd.x
        draw = self._noise_source(x)

        def chunk_sum(part: slice, x: torch.Tensor, create_graph: bool) -> torch.Tensor:
            k = part.stop - part.start
            xs = as_graph_input(x.repeat(k, *([1] * (x.dim() - 1))) + draw(part.start, k))
            score = class_score(self.net(xs), index.repeat(k), self.score).sum()
            (grad,) = torch.autograd.grad(score, xs, create_graph=create_graph)
            return grad.abs().view(k, *x.shape).sum(0)      # Smilkov Sec. 3: sum of SimpleGrad maps

        total = torch.zeros_like(x)
        for part_sum in chunk_terms(chunk_sum, self.n, self.chunk_size, create_graph, x,
                                     params=tuple(self.net.parameters())):
            total = total + part_sum
        return total / self.n

    def reduce_channels(self, attribution: torch.Tensor) -> torch.Tensor:
        return attribution.sum(1)
