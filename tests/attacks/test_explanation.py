"""Explanation attacks (Dombrowski et al. 2019; Ghorbani et al. 2019) move the map while the prediction stays."""
import pytest
import torch

from conftest import MEAN, STD
from interpfool import interpreters
from interpfool.attacks import explanation_attack, random_noise
from interpfool.fooling.penalties import CenterMassFooling, LocationFooling

KW = dict(mean=MEAN, std=STD)


def _kept(net, x, adv):
    with torch.no_grad():
        return float((net(adv).argmax(1) == net(x).argmax(1)).float().mean())


@pytest.fixture(scope="module")
def batch(trained):
    net, x, y = trained
    return net, x[:48], y[:48]


@pytest.mark.parametrize("select", ["best", "last"])
def test_location_attack_moves_grad_cam_to_the_frame_and_keeps_the_prediction(batch, select):
    net, x, _ = batch
    cam = interpreters.build("gradcam", net)
    fool = LocationFooling()
    adv = explanation_attack(net, cam, x, objective=fool, eps=0.2, steps=30, select=select, **KW)
    before = fool.test_loss(cam(x, "pred"))
    after = fool.test_loss(cam(adv, "pred"))
    control = fool.test_loss(cam(random_noise(x, 0.2, **KW), "pred"))
    assert _kept(net, x, adv) >= 0.9
    assert after.mean() < 0.6 * before.mean() and control.mean() > 0.9 * before.mean()
    assert fool.success(after).float().mean() > 0.3 and fool.success(before).float().mean() == 0


def test_center_mass_attack_through_softplus_moves_the_centre_more_than_through_relu(batch):
    """Dombrowski et al. 2019: the ReLU network's gradient misses the map's curvature; softplus-beta's has it."""
    net, x, _ = batch
    cam = interpreters.build("gradcam", net)
    fool = CenterMassFooling()
    h0 = cam(x, "pred")
    shift = {}
    for beta in (None, 10.0):
        adv = explanation_attack(net, cam, x, objective="center_mass", eps=0.2, steps=30, softplus_beta=beta, **KW)
        assert _kept(net, x, adv) >= 0.9
        shift[beta] = fool.test_loss(cam(adv, "pred"), h0).mean()
    assert shift[10.0] > 1.5 * shift[None] and shift[10.0] > 0.1


def test_target_map_attack_moves_simplegrad_towards_the_target(batch):
    net, x, _ = batch
    grad = interpreters.build("simpleg", net, normalize="max")
    h0 = grad(x, "pred")
    target = torch.zeros_like(h0[0])
    target[:, :6] = 1.0                                    # the left half of the image
    adv = explanation_attack(net, grad, x, target, eps=0.1, steps=20, softplus_beta=5.0, **KW)
    h = grad(adv, "pred")
    mse0 = (h0 - target).square().flatten(1).mean(1)
    mse = (h - target).square().flatten(1).mean(1)
    assert _kept(net, x, adv) >= 0.9 and (mse < mse0).float().mean() > 0.9


def test_factory_interpreters_and_eps_zero(batch):
    net, x, _ = batch
    factory = lambda net: interpreters.build("gradcam", net)            # noqa: E731
    a = explanation_attack(net, factory, x, objective="location", eps=0.1, steps=3, **KW)
    b = explanation_attack(net, interpreters.build("gradcam", net), x, objective="location", eps=0.1, steps=3, **KW)
    assert torch.equal(a, b)
    assert torch.equal(explanation_attack(net, factory, x, objective="topk", eps=0.0, steps=3, **KW), x)
