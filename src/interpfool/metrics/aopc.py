"""AOPC, the area over the perturbation curve (Samek et al. 2016, eq. 12), as used in Heo et al.
2019, Sec. 5 / Figure 4a.

The image is cut into a grid of ``cell`` x ``cell`` pixel cells. Cells are ranked by the mean of the
heatmap over them (the map bilinearly upsampled to the image): MoRF = most relevant first, LeRF =
least relevant first, or a random order. Step k replaces the first k cells of the order with noise
N(0, noise_std) drawn in the normalised input space (DESIGN.md 2.3: noise_std = 0.3). The score is
the logit of the explained class. With x^(0) the clean image and L the number of steps,

    AOPC(L) = 1/(L+1) * sum_{k=0}^{L} (f(x^(0)) - f(x^(k)))      (the k = 0 term, 0, is included)

averaged over images. Noise and random orders are seeded per image *index* (``seed``, index), so a
result does not depend on batching or on how images are split over DDP ranks; the same noise serves
every order and both models, so their curves are paired.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric

from interpfool.interpreters.base import upsample_map

ORDERS = ("morf", "lerf", "random")


def _image_generator(seed: int, index: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + index * 7_919 + stream) % (2 ** 63 - 1))


def seeded_noise(shape: tuple[int, ...], indices: torch.Tensor, seed: int = 0, std: float = 0.3) -> torch.Tensor:
    """[B, *shape] Gaussian noise, row b drawn from a generator seeded by (seed, indices[b])."""
    return torch.stack([torch.randn(shape, generator=_image_generator(seed, int(i), 0)) for i in indices]) * std


def cell_grid(image_size: tuple[int, int], cell: int) -> tuple[int, int]:
    rows, cols = image_size
    if not isinstance(cell, int) or cell < 1 or rows % cell or cols % cell:
        raise ValueError(f"aopc.cell={cell!r}; allowed: a divisor of the image size {rows}x{cols}")
    return rows // cell, cols // cell


def cell_relevance(h: torch.Tensor, image_size: tuple[int, int], cell: int) -> torch.Tensor:
    """[B, h, w] maps -> [B, rows, cols] mean relevance per cell of the image grid."""
    grid = cell_grid(image_size, cell)
    return F.adaptive_avg_pool2d(upsample_map(h.float(), image_size)[:, None], grid)[:, 0]


def perturbation_order(relevance: torch.Tensor | None, kind: str, indices: torch.Tensor | None = None,
                       seed: int = 0, cells: int | None = None) -> torch.Tensor:
    """[B, n_cells] cell indices in perturbation order.

    ``random``: a permutation seeded by (``seed``, image index) for each of ``indices`` (``cells`` cells).
    ``morf`` / ``lerf``: ``relevance`` [B, rows, cols] sorted descending / ascending. Ties (e.g. the
    zero cells of a ReLU map; an all-zero map is all ties) are broken by that same seeded random order
    when ``indices`` are given, so an uninformative map gives the random order rather than a raster
    scan from the top-left corner; without ``indices`` by raster order.
    """
    if kind not in ORDERS:
        raise ValueError(f"aopc order {kind!r}; allowed: {', '.join(ORDERS)}")
    if kind != "random" and relevance is None:
        raise ValueError(f"a {kind} order needs the cell relevance")
    cells = relevance[0].numel() if relevance is not None else cells
    if kind == "random" or indices is not None:
        if indices is None or cells is None:
            raise ValueError("a random order needs the image indices and the number of cells")
        shuffle = torch.stack([torch.randperm(cells, generator=_image_generator(seed, int(i), 1)) for i in indices])
        if kind == "random":
            return shuffle
        shuffle = shuffle.to(relevance.device)
        ranked = relevance.flatten(1).gather(1, shuffle).argsort(dim=1, descending=kind == "morf", stable=True)
        return shuffle.gather(1, ranked)
    return relevance.flatten(1).argsort(dim=1, descending=kind == "morf", stable=True)


@torch.no_grad()
def perturbation_scores(net: nn.Module, x: torch.Tensor, target: torch.Tensor, order: torch.Tensor,
                        noise: torch.Tensor, cell: int, steps: int = 100, chunk: int = 1024) -> torch.Tensor:
    """[B, steps + 1] logits f_c(x^(k)) of class ``target`` ([B]) for k = 0..steps, cells replaced by
    ``noise`` ([B, C, H, W]) in ``order`` ([B, n_cells]). ``chunk``: images per forward pass."""
    batch, _, height, width = x.shape
    rows, cols = cell_grid((height, width), cell)
    if not 1 <= steps <= rows * cols:
        raise ValueError(f"aopc.steps={steps}; allowed: 1..{rows * cols} (cells in the {rows}x{cols} grid)")
    # rank[b, cell] = position of the cell in the order; step k perturbs the cells with rank < k.
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    rank = rank.view(batch, 1, rows, cols).repeat_interleave(cell, 2).repeat_interleave(cell, 3).to(x.device)
    noise = noise.to(x.device, x.dtype)
    scores = []
    ks = torch.arange(steps + 1, device=x.device)
    per_pass = max(1, chunk // batch)
    for start in range(0, steps + 1, per_pass):
        k = ks[start:start + per_pass]                                            # [K]
        hide = rank[None] < k[:, None, None, None, None]                          # [K, B, 1, H, W]
        xk = torch.where(hide, noise[None], x[None]).flatten(0, 1)                # [K*B, C, H, W]
        logits = net(xk).view(len(k), batch, -1)
        scores.append(logits.gather(2, target.view(1, batch, 1).expand(len(k), batch, 1))[..., 0].T)
    return torch.cat(scores, 1)


def aopc_per_image(scores: torch.Tensor) -> torch.Tensor:
    """[B] float64 AOPC(L) of each image at L = steps (Samek et al. 2016, eq. 12, before the mean over images) from
    ``perturbation_scores``' [B, steps + 1]; the mean over images is ``AOPC``'s last entry. Per image, two
    orders' values are paired (same image, same noise), for a paired test between them."""
    return (scores[:, :1] - scores).double().mean(1)


class AOPC(Metric):
    """Accumulates f(x^(0)) - f(x^(k)) per step over images. ``compute()`` returns the curve
    AOPC(L) for L = 0..steps ([steps + 1], float64); its last entry is the AOPC at L = steps.
    Sum states (float64): exact under DDP."""

    full_state_update = False

    def __init__(self, steps: int = 100, **kwargs):
        super().__init__(**kwargs)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"aopc.steps={steps!r}; allowed: an integer >= 1")
        self.steps = steps
        self.add_state("drop_sum", default=torch.zeros(steps + 1, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, scores: torch.Tensor) -> None:
        """``scores``: [B, steps + 1] from ``perturbation_scores``."""
        if scores.dim() != 2 or scores.shape[1] != self.steps + 1:
            raise ValueError(f"AOPC.update takes scores [B, {self.steps + 1}]; got {tuple(scores.shape)}")
        self.drop_sum += (scores[:, :1] - scores).double().sum(0)
        self.total += scores.shape[0]

    def compute(self) -> torch.Tensor:
        mean_drop = self.drop_sum / self.total.clamp_min(1)
        return mean_drop.cumsum(0) / torch.arange(1, self.steps + 2, dtype=torch.float64, device=mean_drop.device)
