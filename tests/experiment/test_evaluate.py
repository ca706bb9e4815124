"""evaluate_pair on a hand-built case: top-k tests whose theta0 map is empty are undefined, reported, and
counted as failures (not as successes)."""
import math
from functools import partial

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
