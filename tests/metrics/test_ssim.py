"""Per-map SSIM against scikit-image's structural_similarity with matching settings (Gaussian window
sigma 1.5, population covariances, data range 1 after per-map min-max normalisation), on random and on
real (Grad-CAM) maps."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_maps import gradcam_pair  # noqa: E402

from interpfool.metrics import SSIM, ssim  # noqa: E402
from interpfool.metrics.normalise import minmax  # noqa: E402


def skimage_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = minmax(a).numpy(), minmax(b).numpy()
    return torch.tensor([structural_similarity(a[i], b[i], gaussian_weights=True, sigma=1.5,
                                               use_sample_covariance=False, data_range=1.0) for i in range(len(a))],
                        dtype=torch.float64)


@pytest.mark.parametrize("shape", [(4, 11, 11), (3, 28, 28), (2, 17, 32)])
def test_ssim_matches_skimage_on_random_maps(shape):
    a = torch.rand(shape)
    b = torch.relu(a + 0.5 * torch.randn(shape))          # correlated, with ties at 0
    assert torch.allclose(ssim(a, b), skimage_ssim(a, b), rtol=0, atol=1e-5)        # float32 windows


def test_ssim_matches_skimage_on_gradcam_maps():
    h, h0, _, _ = gradcam_pair()
    got = ssim(h, h0)
    assert torch.allclose(got, skimage_ssim(h, h0), rtol=0, atol=1e-5)
    assert (got > 0.2).all() and (got < 0.95).all()       # related but not equal maps


def test_ssim_is_one_for_equal_maps_and_ignores_scale():
    a = torch.rand(3, 16, 16)
    assert torch.allclose(ssim(a, a), torch.ones(3, dtype=torch.float64))
    b = torch.rand(3, 16, 16)
    assert torch.allclose(ssim(5 * a + 2, b), ssim(a, b))   # min-max normalised first
    assert (ssim(a, b) < 0.5).all()


def test_ssim_is_per_map_not_per_batch():
    """torchmetrics' default data range would come from the whole batch; here each map stands alone."""
    a, b = torch.rand(2, 12, 12), torch.rand(2, 12, 12)
    both = ssim(torch.stack([a[0], 100 * a[1]]), torch.stack([b[0], 100 * b[1]]))
    assert torch.allclose(both[0], ssim(a[:1], b[:1])[0])


def test_ssim_rejects_maps_smaller_than_the_window():
    with pytest.raises(ValueError, match="at least 11 x 11"):
        ssim(torch.rand(2, 7, 7), torch.rand(2, 7, 7))


def test_ssim_metric_is_the_mean_over_batches():
    a, b = torch.rand(5, 12, 12), torch.rand(5, 12, 12)
    m = SSIM()
    m.update(a[:2], b[:2])
    m.update(a[2:], b[2:])
    assert m.compute().item() == pytest.approx(float(np.mean(skimage_ssim(a, b).numpy())), abs=1e-5)
