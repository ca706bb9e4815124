"""The randomisation test on a trained tiny model: every similarity is 1 at step 0; Grad-CAM's and SimpleGrad's
maps decorrelate once the layers are randomised (they pass the sanity check), while an edge detector of the input
keeps similarity 1 at every step (it fails it) — so the test can tell the two apart."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from interpfool import interpreters, models
from interpfool.data import SyntheticDataModule
from interpfool.sanity import EdgeDetector, randomisation_test

INTERPS = {"gradcam": lambda net: interpreters.build("gradcam", net),
           "simpleg": lambda net: interpreters.build("simpleg", net),
           "smoothgrad": lambda net: interpreters.build("smoothgrad", net, n=2),   # seed null: global RNG
           "edge": EdgeDetector}


@pytest.fixture(scope="module")
def trained():
    """small_vgg (width 4) trained for 150 Adam steps on 32 x 32 synthetic shapes; 8 held-out images."""
    torch.manual_seed(0)
    dm = SyntheticDataModule(image_size=32, num_classes=4, train_size=256, val_size=8, test_size=8, seed=0)
    train, val = dm.dataset("train"), dm.dataset("val")
    x = torch.stack([train[i][0] for i in range(len(train))])
    y = torch.as_tensor([int(train[i][1]) for i in range(len(train))])
    net = models.build("small_vgg", num_classes=4, width=4)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):
        idx = torch.randint(0, len(x), (32,), generator=gen)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    xv = torch.stack([val[i][0] for i in range(len(val))])
    yv = torch.as_tensor([int(val[i][1]) for i in range(len(val))])
    return net, xv, yv


@pytest.mark.parametrize("mode", ["cascading", "independent"])
def test_model_explainers_pass_and_the_edge_detector_fails(trained, mode):
    net, x, y = trained
    before = copy.deepcopy(net.state_dict())
    out = randomisation_test(net, INTERPS, x, y, mode=mode, seed=0, keep_maps=2)
    assert out["steps"][0] == "original" and len(out["steps"]) == 7
    sim = out["similarity"]
    for name in INTERPS:
        for metric, values in sim[name].items():
            assert values.shape == (7, 8)
            defined = ~values[0].isnan()       # NaN: an all-zero unrandomised map (Grad-CAM), no ranking
            assert defined.sum() >= 6, (name, metric)
            torch.testing.assert_close(values[0][defined], torch.ones(int(defined.sum()), dtype=torch.float64),
                                       rtol=0, atol=1e-6)
    for metric in ("spearman_abs", "spearman_raw", "ssim"):   # the input-only control: 1 everywhere
        torch.testing.assert_close(sim["edge"][metric], torch.ones(7, 8, dtype=torch.float64), rtol=0, atol=1e-6)
    if mode == "cascading":   # every layer random: the model-dependent maps no longer resemble the trained ones
        for name in ("gradcam", "simpleg", "smoothgrad"):
            assert sim[name]["spearman_abs"][-1].nanmean() < 0.5, (name, sim[name]["spearman_abs"][-1].nanmean())
            assert sim[name]["ssim"][-1].mean() < 0.5, (name, sim[name]["ssim"][-1].mean())
    else:                     # the logit layer alone randomised already changes the class direction Grad-CAM uses
        assert sim["gradcam"]["spearman_abs"][1].nanmean() < 0.9
    assert out["maps"]["gradcam"].shape == (7, 2, 8, 8) and out["maps"]["simpleg"].shape == (7, 2, 32, 32)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_pred_target_is_the_unrandomised_prediction(trained):
    net, x, _ = trained
    with torch.no_grad():
        pred = net(x).argmax(1)
    a = randomisation_test(net, {"gradcam": INTERPS["gradcam"]}, x, "pred", keep_maps=8)
    b = randomisation_test(net, {"gradcam": INTERPS["gradcam"]}, x, pred, keep_maps=8)
    assert torch.equal(a["maps"]["gradcam"], b["maps"]["gradcam"])
    with pytest.raises(ValueError, match="allowed"):
        randomisation_test(net, {}, x, "label")
