"""Per-image Spearman rank correlation against scipy.stats.spearmanr (ties included)."""
import pytest
import torch
from scipy.stats import spearmanr

from interpfool.metrics import SpearmanCorrelation, spearman


@pytest.mark.parametrize("shape", [(6, 7, 7), (3, 64, 64)])
def test_spearman_matches_scipy_with_ties(shape):
    a = torch.relu(torch.randn(shape))           # ReLU: about half the cells tie at 0
    b = torch.relu(a + 0.7 * torch.randn(shape))
    b[0] = torch.round(b[0] * 2) / 2             # coarse values: more ties
    got = spearman(a, b)
    expected = torch.tensor([spearmanr(a[i].flatten(), b[i].flatten()).statistic for i in range(shape[0])],
                            dtype=torch.float64)
    assert torch.allclose(got, expected, atol=1e-12)


def test_spearman_known_values_and_constant_maps():
    a = torch.arange(9.0).view(1, 3, 3)
    assert spearman(a, a ** 3).item() == pytest.approx(1.0)     # monotone: 1
    assert spearman(a, -a).item() == pytest.approx(-1.0)
    assert spearman(a, torch.zeros(1, 3, 3)).item() == 0.0      # no ranking: 0 (scipy: NaN)
    with pytest.raises(ValueError, match="equal shapes"):
        spearman(a, torch.zeros(1, 9))


def test_spearman_metric_is_the_mean_over_images():
    a, b = torch.randn(5, 4, 4), torch.randn(5, 4, 4)
    metric = SpearmanCorrelation()
    metric.update(a[:2], b[:2])
    metric.update(a[2:], b[2:])
    assert torch.allclose(metric.compute(), spearman(a, b).mean())


@pytest.mark.parametrize("shape", [(6, 7, 7), (3, 28, 28)])
def test_spearman_equals_torchmetrics_spearman_corrcoef(shape):
    """The hand-written batched rho (kept: float64, one sort per batch) equals torchmetrics' to its eps
    (torchmetrics adds 1e-6 to the denominator and ranks in the input's dtype)."""
    from torchmetrics.functional.regression import spearman_corrcoef
    a = torch.relu(torch.randn(shape))
    b = torch.relu(a + torch.randn(shape))
    expected = spearman_corrcoef(a.flatten(1).T, b.flatten(1).T).double()      # float32: it fails on float64
    assert torch.allclose(spearman(a, b), expected, rtol=0, atol=1e-6)
