"""SSIM between two maps (Wang et al. 2004, eq. 13), as Dombrowski et al. 2019 and Anders et al. 2020
report it between manipulated and original explanations.

SSIM = mean over windows of (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2)),
Gaussian window sigma = 1.5 (11 x 11, truncated at 3.5 sigma), C1 = (0.01 L)^2, C2 = (0.03 L)^2, population
(co)variances, the mean over the windows that lie inside the map. Both maps are min-max normalised per map
first (``normalise.minmax``), so the data range L = 1.

The per-window index comes from torchmetrics' ``structural_similarity_index_measure`` (batched,
``return_full_image=True``), with two departures from its defaults: (1) its ``data_range=None`` takes
max - min over the whole batch, a value that depends on the other maps in the batch; here L = 1 is fixed;
(2) torchmetrics (1.9) averages the index over every position, including windows that reach into its
reflect padding of the border; here the mean is over the windows that lie inside the map (a 5-cell
border is cropped), as in Wang et al.'s reference code (``filter2(..., 'valid')``) and scikit-image.
The windows are filtered in float32: float64 convolutions are ~25x slower on CPU (measured: 22 ms
against 0.8 ms per 28 x 28 map, one thread); the result stays within 1e-5 of scikit-image's float64.
Equal to ``skimage.metrics.structural_similarity(
a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)`` (tests/metrics/test_ssim.py).
"""
from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from interpfool.metrics.mean import PerImageMean
from interpfool.metrics.normalise import minmax

SIGMA = 1.5
WINDOW = 11          # = 2 * int(3.5 * SIGMA + 0.5) + 1, the Gaussian's support in torchmetrics and skimage


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-map SSIM of [B, H, W] maps (each min-max normalised) -> [B] float64; needs H, W >= 11."""
    if a.shape != b.shape or a.dim() != 3:
        raise ValueError(f"ssim: maps of shapes {tuple(a.shape)} and {tuple(b.shape)}; allowed: equal [B, H, W] shapes")
    if min(a.shape[-2:]) < WINDOW:
        raise ValueError(f"ssim: maps of {a.shape[-2]} x {a.shape[-1]} cells; allowed: at least {WINDOW} x {WINDOW} "
                         f"(the Gaussian window, sigma {SIGMA}); resize the maps first")
    na, nb = minmax(a)[:, None].float(), minmax(b)[:, None].float()     # float32: see the module's docstring
    _, index = structural_similarity_index_measure(na, nb, gaussian_kernel=True,
                                                   sigma=SIGMA, data_range=1.0, reduction="none",
                                                   return_full_image=True)
    pad = WINDOW // 2                                  # windows centred here reach past the map's border
    return index[:, 0, pad:-pad, pad:-pad].double().flatten(1).mean(1)


class SSIM(PerImageMean):
    """Mean over images of the per-map SSIM (``ssim``)."""

    def score(self, a, b):
        values = ssim(a, b)
        return values, torch.ones_like(values, dtype=torch.bool)
