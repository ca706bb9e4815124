"""Top-k intersection (Ghorbani et al. 2019) against sets computed by hand."""
import pytest
import torch

from interpfool.metrics import TopKIntersection, topk_intersection


def by_hand(h, h0, k):
    out = []
    for a, b in zip(h.flatten(1).tolist(), h0.flatten(1).tolist()):
        top = lambda v: set(sorted(range(len(v)), key=lambda i: (-v[i], i))[:k])   # ties: lower index
        out.append(len(top(a) & top(b)) / k)
    return torch.tensor(out, dtype=torch.float64)


def test_topk_intersection_known_example():
    h0 = torch.tensor([[[9.0, 8.0, 7.0], [1.0, 2.0, 3.0], [0.0, 0.0, 6.0]]])   # top 3: cells 0, 1, 2
    h = torch.tensor([[[9.0, 0.0, 7.0], [8.0, 2.0, 3.0], [0.0, 0.0, 1.0]]])    # top 3: cells 0, 3, 2
    assert topk_intersection(h, h0, fraction=3 / 9).item() == pytest.approx(2 / 3)
    assert topk_intersection(h0, h0, fraction=3 / 9).item() == 1.0
    assert topk_intersection(-h0, h0, fraction=3 / 9).item() == 0.0


@pytest.mark.parametrize("fraction", [0.1, 0.25, 1.0])
def test_topk_intersection_matches_hand_sets_with_ties(fraction):
    h0 = torch.relu(torch.randn(6, 8, 8))
    h = torch.round(torch.relu(h0 + torch.randn(6, 8, 8)) * 2) / 2           # many ties
    k = max(1, round(fraction * 64))
    assert torch.equal(topk_intersection(h, h0, fraction), by_hand(h, h0, k))


def test_topk_intersection_rejects_bad_fraction_and_shapes():
    with pytest.raises(ValueError, match="fraction=0"):
        topk_intersection(torch.rand(1, 3, 3), torch.rand(1, 3, 3), 0)
    with pytest.raises(ValueError, match="equal shapes"):
        topk_intersection(torch.rand(1, 3, 3), torch.rand(1, 9))


def test_topk_metric_is_the_mean_over_images():
    h, h0 = torch.rand(5, 10, 10), torch.rand(5, 10, 10)
    m = TopKIntersection(0.2)
    m.update(h[:2], h0[:2])
    m.update(h[2:], h0[2:])
    assert m.compute().item() == pytest.approx(by_hand(h, h0, 20).mean().item())
