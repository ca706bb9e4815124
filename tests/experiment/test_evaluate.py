"""evaluate_pair on a hand-built case: top-k tests whose theta0 map is empty are undefined, reported, and
counted as failures (not as successes)."""
import math
from functools import partial

import pytest
import torch

from interpfool.experiment.evaluate import evaluate_pair
from interpfool.fooling import TopKFooling
from interpfool.interpreters.registry import build
from interpfool.models.small_vgg import SmallVGG


def test_topk_images_with_an_empty_theta0_map_are_undefined_and_not_successes():
    torch.manual_seed(3)                               # 4 of the 6 Grad-CAM maps are empty
    net = SmallVGG(num_classes=3, width=4, hidden=8).eval()
    x, y = torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    # Grad-CAM of theta0 = theta*: the maps that are all zero are the undefined tests
    report = evaluate_pair(net, net, [(x, y)], {"gradcam": partial(build, "gradcam")},
                           TopKFooling(interval=(0.0, 0.1)))
    rows = [r for r in report["per_image_test_loss"] if r[2] == "theta0"]
    undefined = [math.isnan(r[4]) for r in rows]
    empty = report["zero_map_share"]["gradcam"]["theta0"]
    assert 0 < empty < 1
    assert report["undefined_test_share"]["gradcam"]["theta0"] == sum(undefined) / 6 == empty
    assert not any(r[5] for r in rows)                 # theta0 never passes its own top-k test
    assert report["fsr"]["gradcam"]["theta0"] == 0.0
    assert math.isfinite(report["test_loss_mean"]["gradcam"]["theta0"])


def test_similarity_and_fidelity_entries_are_the_metrics_of_the_two_models_maps_and_outputs():
    from interpfool.metrics import MapSimilarity, output_fidelity, perturb_parameters
    torch.manual_seed(3)
    net0 = SmallVGG(num_classes=3, width=4, hidden=8).eval()
    net = perturb_parameters(net0, 0.5, torch.Generator().manual_seed(1)).eval()
    x, y = torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    interps = {"gradcam": partial(build, "gradcam")}
    report = evaluate_pair(net0, net, [(x[:4], y[:4]), (x[4:], y[4:])], interps, TopKFooling())
    expected = MapSimilarity()
    for part in (slice(0, 4), slice(4, 6)):   # the same batches: a conv's float32 result may depend on the batch size
        expected.update(build("gradcam", net)(x[part], y[part]), build("gradcam", net0)(x[part], y[part]), (16, 16))
    assert report["similarity"]["gradcam"] == pytest.approx(expected.compute(), abs=1e-12)
    assert report["similarity_undefined_share"]["gradcam"] == expected.undefined_share()["com_shift_px"]
    agree, kl = output_fidelity(net0(x), net(x))
    assert report["fidelity"]["top1_agreement"] == float(agree.double().mean())
    assert math.isclose(report["fidelity"]["kl_p0_pstar"], float(kl.mean()), rel_tol=1e-9)
    assert 0 < report["fidelity"]["kl_p0_pstar"] and report["similarity"]["gradcam"]["ssim"] < 1

    same = evaluate_pair(net0, net0, [(x, y)], interps, TopKFooling())      # theta* = theta0
    assert same["fidelity"] == {"top1_agreement": 1.0, "kl_p0_pstar": 0.0}
    assert same["similarity"]["gradcam"]["ssim"] == 1.0 and same["similarity"]["gradcam"]["mse"] == 0.0
    assert same["similarity"]["gradcam"]["com_shift_px"] == 0.0
    assert "similarity" not in evaluate_pair(net0, net, [(x, y)], interps, TopKFooling(), similarity=False)
