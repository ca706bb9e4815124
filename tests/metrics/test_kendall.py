"""Per-image Kendall tau-b against scipy.stats.kendalltau (ties handled as scipy does) on random and real
(Grad-CAM) maps."""
import sys
from pathlib import Path

import pytest
import torch
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_maps import gradcam_pair  # noqa: E402

from interpfool.metrics import KendallCorrelation, kendall  # noqa: E402


def scipy_kendall(a, b, variant="b"):
    return torch.tensor([kendalltau(a[i].flatten().double(), b[i].flatten().double(), variant=variant).statistic
                         for i in range(len(a))], dtype=torch.float64)


@pytest.mark.parametrize("shape", [(6, 7, 7), (2, 28, 28)])
def test_kendall_matches_scipy_tau_b_with_ties(shape):
    a = torch.relu(torch.randn(shape))                  # ~half the cells tie at 0
    b = torch.relu(a + 0.7 * torch.randn(shape))
    b[0] = torch.round(b[0] * 2) / 2                     # coarse values: many more ties
    got = kendall(a, b)
    assert torch.allclose(got, scipy_kendall(a, b), rtol=0, atol=1e-6)
    assert not torch.allclose(got, scipy_kendall(a, b, "c"), atol=1e-3)   # ties matter: tau-b, not tau-c


def test_kendall_matches_scipy_on_gradcam_maps():
    h, h0, _, _ = gradcam_pair()
    got = kendall(h, h0)
    assert torch.allclose(got, scipy_kendall(h, h0), rtol=0, atol=1e-6)
    coarse = torch.round(h * 4) / 4                     # a quantised map: large tie groups
    assert torch.allclose(kendall(coarse, h0), scipy_kendall(coarse, h0), rtol=0, atol=1e-6)
    assert ((got > 0.2) & (got < 0.9)).all()


def test_kendall_known_values_and_constant_maps():
    a = torch.arange(9.0).view(1, 3, 3)
    assert kendall(a, a ** 3).item() == pytest.approx(1.0)
    assert kendall(a, -a).item() == pytest.approx(-1.0)
    swapped = a.flatten().clone()
    swapped[[0, 1]] = swapped[[1, 0]]                   # one discordant pair of 36: (35 - 1) / 36
    assert kendall(a, swapped.view(1, 3, 3)).item() == pytest.approx(34 / 36)
    assert kendall(a, torch.zeros(1, 3, 3)).item() == 0.0        # no ranking: 0 (scipy: NaN)


def test_kendall_metric_is_the_mean_over_images():
    a, b = torch.randn(5, 4, 4), torch.randn(5, 4, 4)
    m = KendallCorrelation()
    m.update(a[:1], b[:1])                               # a batch of one map (torchmetrics squeezes it)
    m.update(a[1:], b[1:])
    assert torch.allclose(m.compute(), scipy_kendall(a, b).mean())
