"""Per-image Pearson r against scipy.stats.pearsonr on random and real (Grad-CAM) maps."""
import sys
import warnings
from pathlib import Path

import pytest
import torch
from scipy.stats import pearsonr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_maps import gradcam_pair  # noqa: E402

from interpfool.metrics import PearsonCorrelation, pearson  # noqa: E402


def scipy_pearson(a, b):
    return torch.tensor([pearsonr(a[i].flatten().double(), b[i].flatten().double()).statistic for i in range(len(a))],
                        dtype=torch.float64)


@pytest.mark.parametrize("shape", [(5, 7, 7), (3, 28, 28), (1, 9)])
def test_pearson_matches_scipy_on_random_maps(shape):
    a = torch.relu(torch.randn(shape))
    b = torch.relu(a + torch.randn(shape))
    assert torch.allclose(pearson(a, b), scipy_pearson(a, b), rtol=0, atol=1e-12)


def test_pearson_matches_scipy_on_gradcam_maps():
    h, h0, _, _ = gradcam_pair()
    got = pearson(h, h0)
    assert torch.allclose(got, scipy_pearson(h, h0), rtol=0, atol=1e-12)
    assert ((got > 0.3) & (got < 0.95)).all()


def test_pearson_known_values_and_constant_maps_without_warning():
    a = torch.arange(12.0).view(2, 2, 3)
    assert torch.allclose(pearson(a, 3 * a - 1), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(pearson(a, -a), -torch.ones(2, dtype=torch.float64))
    b = a.clone()
    b[1] = 0.0                                        # no variance: 0 (scipy: NaN), and no torchmetrics warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = pearson(a, b)
    assert got.tolist() == [1.0, 0.0]
    assert pearson(torch.zeros(2, 3, 3), torch.zeros(2, 3, 3)).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="equal shapes"):
        pearson(a, torch.zeros(2, 6))


def test_pearson_is_invariant_to_tiny_scales():
    """Raw gradient maps can be ~1e-6; torchmetrics rescales before its variance check."""
    a, b = torch.rand(3, 8, 8), torch.rand(3, 8, 8)
    assert torch.allclose(pearson(1e-7 * a, 1e-7 * b), pearson(a, b), atol=1e-10)


def test_pearson_metric_is_the_mean_over_images():
    a, b = torch.randn(5, 4, 4), torch.randn(5, 4, 4)
    m = PearsonCorrelation()
    m.update(a[:3], b[:3])
    m.update(a[3:], b[3:])
    assert torch.allclose(m.compute(), scipy_pearson(a, b).mean())
