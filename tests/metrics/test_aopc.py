"""AOPC on a toy linear model where every perturbation step is computable by hand."""
import pytest
import torch
from torch import nn

from interpfool.metrics import AOPC, perturbation_order, perturbation_scores
from interpfool.metrics.aopc import aopc_per_image, cell_relevance, seeded_noise


class Linear(nn.Module):
    """logit_0 = sum(w * x), logit_1 = -logit_0: a cell's contribution is its weight sum."""

    def __init__(self, w):
        super().__init__()
        self.w = w

    def forward(self, x):
        z = (x * self.w).flatten(1).sum(1)
        return torch.stack([z, -z], 1)


def _toy():
    # 4x4 one-channel image of ones; 2x2 cells with weight sums 4 (top-left), 3, 2, 1 (bottom-right)
    w = torch.tensor([[4, 0, 3, 0], [0, 0, 0, 0], [2, 0, 1, 0], [0, 0, 0, 0]], dtype=torch.float32)[None, None]
    return Linear(w), torch.ones(1, 1, 4, 4), w[:, 0]


def test_aopc_morf_lerf_and_order_on_a_linear_model():
    net, x, relevance_map = _toy()
    relevance = cell_relevance(relevance_map, (4, 4), cell=2)
    assert relevance.flatten().tolist() == [1.0, 0.75, 0.5, 0.25]
    noise = torch.zeros_like(x)                  # noise 0: a perturbed cell contributes nothing
    target = torch.tensor([0])
    results = {}
    for kind in ("morf", "lerf"):
        order = perturbation_order(relevance, kind)
        scores = perturbation_scores(net, x, target, order, noise, cell=2, steps=4)
        metric = AOPC(steps=4)
        metric.update(scores)
        results[kind] = (scores, metric.compute())
    morf_scores, morf_curve = results["morf"]
    assert morf_scores.tolist() == [[10.0, 6.0, 3.0, 1.0, 0.0]]
    # AOPC(L) = 1/(L+1) sum_{k<=L} drop_k with drops 0, 4, 7, 9, 10 (MoRF) and 0, 1, 3, 6, 10 (LeRF)
    assert morf_curve.tolist() == pytest.approx([0.0, 2.0, 11 / 3, 5.0, 6.0])
    assert results["lerf"][1][-1].item() == pytest.approx(4.0)


def test_aopc_averages_images_and_uses_the_noise():
    net, x, _ = _toy()
    x = x.repeat(2, 1, 1, 1)
    order = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]])
    noise = torch.full_like(x, 0.5)              # half of each perturbed cell's weight remains
    scores = perturbation_scores(net, x, torch.tensor([0, 0]), order, noise, cell=2, steps=2, chunk=3)
    assert scores.tolist() == [[10.0, 8.0, 6.5], [10.0, 9.5, 8.5]]
    metric = AOPC(steps=2)
    metric.update(scores)
    assert metric.compute()[-1].item() == pytest.approx(((0 + 2 + 3.5) + (0 + 0.5 + 1.5)) / 3 / 2)
    per_image = aopc_per_image(scores)           # eq. 12 per image: drops (0, 2, 3.5) and (0, 0.5, 1.5)
    assert per_image.dtype == torch.float64
    assert per_image.tolist() == pytest.approx([5.5 / 3, 2.0 / 3])
    assert per_image.mean().item() == pytest.approx(metric.compute()[-1].item())


def test_seeded_noise_and_random_order_depend_on_the_image_index_only():
    idx = torch.tensor([4, 9])
    a = seeded_noise((3, 8, 8), idx, seed=1, std=0.3)
    b = seeded_noise((3, 8, 8), torch.tensor([9]), seed=1, std=0.3)
    assert torch.equal(a[1], b[0]) and not torch.equal(a[0], a[1])
    assert 0.2 < a.std() < 0.4
    r1 = perturbation_order(None, "random", idx, seed=1, cells=16)
    r2 = perturbation_order(None, "random", torch.tensor([9, 4]), seed=1, cells=16)
    assert torch.equal(r1, r2.flip(0)) and sorted(r1[0].tolist()) == list(range(16))


def test_ties_are_broken_by_the_seeded_random_order():
    idx = torch.tensor([4, 9])
    flat = torch.zeros(2, 4, 4)                  # all-zero maps: MoRF and LeRF = the random order
    random = perturbation_order(None, "random", idx, seed=1, cells=16)
    assert torch.equal(perturbation_order(flat, "morf", idx, seed=1), random)
    assert torch.equal(perturbation_order(flat, "lerf", idx, seed=1), random)
    relevance = torch.zeros(2, 4, 4)
    relevance[:, 3, 3], relevance[:, 0, 1] = 2.0, 1.0   # two ranked cells, then ties in random order
    morf = perturbation_order(relevance, "morf", idx, seed=1)
    assert morf[:, :2].tolist() == [[15, 1], [15, 1]]
    assert morf[:, 2:].tolist() == [[c for c in r if c not in (15, 1)] for r in random.tolist()]
    assert perturbation_order(relevance, "lerf", idx, seed=1)[:, -2:].tolist() == [[1, 15], [1, 15]]
    assert perturbation_order(relevance, "morf")[0, :4].tolist() == [15, 1, 0, 2]   # no indices: raster ties


def test_aopc_bad_arguments():
    net, x, _ = _toy()
    with pytest.raises(ValueError, match="aopc.cell=3"):
        perturbation_scores(net, x, torch.tensor([0]), torch.zeros(1, 4, dtype=torch.long), x, cell=3)
    with pytest.raises(ValueError, match="aopc.steps=5"):
        perturbation_scores(net, x, torch.tensor([0]), torch.arange(4)[None], x, cell=2, steps=5)
    with pytest.raises(ValueError, match="order 'best'"):
        perturbation_order(torch.zeros(1, 2, 2), "best")
    with pytest.raises(ValueError, match=r"scores \[B, 3\]"):
        AOPC(steps=2).update(torch.zeros(1, 4))
