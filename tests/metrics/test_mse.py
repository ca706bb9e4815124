"""MSE of min-max normalised maps against a numpy hand computation."""
import numpy as np
import pytest
import torch

from interpfool.metrics import MapMSE, mse


def numpy_mse(a, b):
    def norm(m):
        m = m.reshape(len(m), -1).astype(np.float64)
        lo, hi = m.min(1, keepdims=True), m.max(1, keepdims=True)
        return np.where(hi > lo, (m - lo) / np.where(hi > lo, hi - lo, 1), 0.0)
    return ((norm(a.numpy()) - norm(b.numpy())) ** 2).mean(1)


def test_mse_matches_numpy_and_known_values():
    a, b = torch.randn(4, 6, 5), torch.relu(torch.randn(4, 6, 5))
    assert np.allclose(mse(a, b).numpy(), numpy_mse(a, b), rtol=0, atol=1e-15)
    x = torch.tensor([[[0.0, 1.0], [2.0, 4.0]]])            # normalised: 0, .25, .5, 1
    y = torch.tensor([[[4.0, 3.0], [2.0, 0.0]]])            # normalised: 1, .75, .5, 0
    assert mse(x, y).item() == pytest.approx((1 + 0.25 + 0 + 1) / 4)
    assert mse(x, 10 * x + 3).item() == 0.0                  # scale-free
    assert mse(torch.zeros(1, 2, 2), x).item() == pytest.approx((0 + 0.0625 + 0.25 + 1) / 4)   # constant -> 0s


def test_mse_metric_is_the_mean_over_images():
    a, b = torch.randn(5, 3, 3), torch.randn(5, 3, 3)
    m = MapMSE()
    m.update(a[:2], b[:2])
    m.update(a[2:], b[2:])
    assert m.compute().item() == pytest.approx(numpy_mse(a, b).mean(), abs=1e-15)
