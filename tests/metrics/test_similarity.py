"""MapSimilarity: the comparison grid, the resize, and that each of its numbers is the metric's own on
the resized maps (the centre-of-mass shift on the native maps, in input pixels)."""
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_maps import gradcam_pair  # noqa: E402

from interpfool.metrics import (MapSimilarity, com_shift, kendall, mse, pearson, spearman, ssim,  # noqa: E402
                                topk_intersection)
from interpfool.metrics.similarity import KEYS, comparison_size, resize_maps  # noqa: E402


def test_comparison_size_caps_and_floors():
    assert comparison_size((28, 28)) == (28, 28)
    assert comparison_size((32, 32)) == (32, 32)
    assert comparison_size((64, 64)) == (32, 32)
    assert comparison_size((224, 224)) == (32, 32)
    assert comparison_size((8, 40)) == (11, 32)            # SSIM's window is 11 x 11
    assert comparison_size((224, 224), max_side=56) == (56, 56)


def test_resize_keeps_maps_at_size_and_preserves_constants():
    h = torch.rand(2, 7, 7)
    assert torch.equal(resize_maps(h, (7, 7)), h.double())
    assert resize_maps(h, (28, 28)).shape == (2, 28, 28)
    shrunk = resize_maps(torch.full((1, 64, 64), 3.0), (32, 32))
    assert torch.allclose(shrunk, torch.full((1, 32, 32), 3.0, dtype=torch.float64))


def test_similarity_numbers_are_the_metrics_on_the_resized_maps():
    h, h0, _, _ = gradcam_pair()                            # 16 x 16 maps of 64 x 64 inputs -> 32 x 32
    sim = MapSimilarity()
    sim.update(h[:4], h0[:4], (64, 64))
    sim.update(h[4:], h0[4:], (64, 64))
    got = sim.compute()
    assert tuple(got) == KEYS
    a, a0 = resize_maps(h, (32, 32)), resize_maps(h0, (32, 32))
    for key, fn in (("ssim", ssim), ("pearson", pearson), ("spearman", spearman), ("kendall", kendall), ("mse", mse),
                    ("topk_intersection", topk_intersection)):
        assert got[key] == pytest.approx(float(fn(a, a0).mean()), abs=1e-12), key
    assert got["com_shift_px"] == pytest.approx(float(com_shift(h, h0, (4.0, 4.0))[0].mean()), abs=1e-12)
    assert 0 < got["com_shift_px"] < math.hypot(63, 63)
    assert sim.undefined_share()["com_shift_px"] == 0.0


def test_equal_maps_are_perfectly_similar():
    h = torch.relu(torch.randn(3, 7, 7)) + 0.01
    sim = MapSimilarity()
    sim.update(h, h.clone(), (28, 28))
    got = sim.compute()
    for key in ("ssim", "pearson", "spearman", "kendall", "topk_intersection"):
        assert got[key] == pytest.approx(1.0), key
    assert got["mse"] == 0.0 and got["com_shift_px"] == 0.0
