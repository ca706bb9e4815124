"""The sanity checks' map similarities against independent routes: scipy's spearmanr on the absolute and the raw
maps, SSIM by hand with scipy's Gaussian filter, and scikit-image's structural_similarity (Gaussian window, sigma 1.5,
population covariance, data_range 1) on the interior, where the two border conventions do not enter."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from interpfool.sanity import map_similarity
from interpfool.sanity.similarity import unit_abs


def test_spearman_abs_and_raw_match_scipy():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(4, 8, 8, generator=gen)
    b = a + 0.8 * torch.randn(4, 8, 8, generator=gen)
    s = map_similarity(a, b)
    for i in range(4):
        assert s["spearman_raw"][i].item() == pytest.approx(spearmanr(a[i].flatten(), b[i].flatten())[0], abs=1e-12)
        assert s["spearman_abs"][i].item() == pytest.approx(
            spearmanr(a[i].abs().flatten(), b[i].abs().flatten())[0], abs=1e-12)
    assert not torch.allclose(s["spearman_raw"], s["spearman_abs"])     # signed maps: the two differ


def _ssim_reference(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """SSIM by hand (Wang et al. 2004, eq. 13) with scipy's Gaussian filter (sigma 1.5, 11 taps, borders mirrored
    as torch's reflect padding): the mean over the whole map, and the map."""
    from scipy.ndimage import gaussian_filter

    def f(z):
        return gaussian_filter(z, sigma=1.5, truncate=3.5, mode="mirror")
    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = (2 * mx * my + c1) * (2 * sxy + c2) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    return float(s.mean()), s


def test_ssim_matches_a_hand_formula_and_scikit_image_in_the_interior():
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(3, 32, 32, generator=gen)
    b = (a + 0.3 * torch.rand(3, 32, 32, generator=gen)) * torch.linspace(0.2, 1, 32)
    ours = map_similarity(a, b)["ssim"]
    for i in range(3):
        x, y = unit_abs(a)[i].numpy(), unit_abs(b)[i].numpy()
        mean, full = _ssim_reference(x, y)
        assert ours[i].item() == pytest.approx(mean, abs=1e-9)
        # scikit-image: the same SSIM map away from the borders (it averages the interior only, 5 pixels in)
        _, sk = structural_similarity(x, y, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, full=True)
        np.testing.assert_allclose(full[5:-5, 5:-5], sk[5:-5, 5:-5], atol=1e-9)


def test_identical_maps_score_one_and_unrelated_ones_do_not():
    gen = torch.Generator().manual_seed(2)
    a = torch.rand(2, 16, 16, generator=gen)
    same = map_similarity(a, a.clone(), size=(32, 32))
    assert all(torch.allclose(v, torch.ones(2, dtype=v.dtype)) for v in same.values())
    other = map_similarity(a, torch.rand(2, 16, 16, generator=gen), size=(32, 32))
    assert all((v < 0.5).all() for v in other.values())


def test_shapes_must_match():
    with pytest.raises(ValueError, match="equal shapes"):
        map_similarity(torch.rand(1, 4, 4), torch.rand(1, 5, 5))
