"""Explanation-time defenses: each equals its definition computed by hand, picks the class on the unchanged
model, refuses bad specs with one line, and leaves the model untouched."""
import copy

import pytest
import torch

from interpfool import interpreters, models
from interpfool.defenses import (NoiseAveraged, OtherLayer, OtherScore, PathAveraged, SoftplusMaps, defend,
                                 earlier_layer, parse, within_budget)
from interpfool.models.softplus import softplus_copy
from interpfool.experiment.build import interp_factory
from interpfool.interpreters.base import normalize_map


def _net(name="small_vgg", classes=5):
    torch.manual_seed(0)
    return models.build(name, num_classes=classes).eval()


def _x(b=3):
    return torch.randn(b, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_earlier_layer_is_the_previous_block_of_each_small_model():
    assert earlier_layer(_net("small_vgg"), "features.11") == "features.8"
    assert earlier_layer(_net("small_resnet"), "layer3.1") == "layer3.0"
    net = _net("small_densenet")
    last = net.target_layer
    assert earlier_layer(net, last) == last[:-1] + str(int(last[-1]) - 1)
    with pytest.raises(ValueError, match="has no earlier Conv2d"):
        earlier_layer(_net("small_vgg"), "features.0")


def test_noise_average_is_the_mean_of_the_methods_raw_maps_over_the_seeded_noise():
    net, x = _net(), _x()
    make = interp_factory("gradcam")
    d = NoiseAveraged(net, make, n=4, sigma=0.2, seed=7)
    got = d(x, "pred")
    cam = interpreters.build("gradcam", net)
    cls = net(x).argmax(1)
    gen = torch.Generator().manual_seed(7)
    std = 0.2 * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    raw = []
    for _ in range(4):
        xn = x + torch.randn(x.shape, generator=gen) * std[:, None, None, None]
        with torch.enable_grad():
            raw.append(cam.explain_raw(cam.forward(xn), cls, False))
    want = normalize_map(torch.stack(raw).mean(0), "max")
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_integration_budget_counts_the_methods_own_samples():
    net = _net()
    assert [interpreters.build(n, net, **kw).samples for n, kw in
            [("gradcam", {}), ("smoothgrad", {"n": 4}), ("ig", {"steps": 6}), ("rsigradcam", {"steps": 3})]] == [1, 4, 6, 3]
    assert within_budget("noise", 1, 16) == "noise:16"        # a one-pass method: 16 maps, the defense's default
    assert within_budget("path", 4, 16) == "path:4"           # 4 maps of a 4-step IG: 16 gradients
    assert within_budget("noise", 32, 16) == "noise:1"        # never fewer than one map
    assert within_budget("noise:8", 4, 16) == "noise:8"       # an explicit count is kept
    assert within_budget("softplus:3", 4, 16) == "softplus:3" and within_budget("noise", 4, None) == "noise"
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match=f"eval.integration_budget={bad!r}; allowed: an integer >= 1 or null"):
            within_budget("noise", 1, bad)


def test_one_sample_without_noise_and_a_one_step_path_give_the_undefended_map():
    net, x = _net(), _x()
    cam = interpreters.build("gradcam", net)
    plain = cam(x, "pred")
    torch.testing.assert_close(NoiseAveraged(net, interp_factory("gradcam"), n=1, sigma=0.0)(x, "pred"), plain)
    torch.testing.assert_close(PathAveraged(net, interp_factory("gradcam"), steps=1)(x, "pred"), plain)


def test_path_average_of_simplegrad_is_the_riemann_sum_of_the_gradient_magnitude():
    net, x = _net(), _x(2)
    got = PathAveraged(net, interp_factory("simpleg"), steps=5)(x, 1)
    grads = []
    for k in range(1, 6):
        xk = (x * k / 5).requires_grad_(True)
        (g,) = torch.autograd.grad(net(xk)[:, 1].sum(), xk)
        grads.append(g.abs().sum(1))       # SimpleGrad here: sum_c |dS/dx_c| (interpreters/gradient.py)
    want = torch.stack(grads).mean(0)
    want = want / want.flatten(1).amax(1)[:, None, None]
    simple = interpreters.build("simpleg", net)
    assert simple.normalize == "max"
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_layer_defense_is_the_same_method_at_the_earlier_cut():
    net, x = _net(), _x()
    got = OtherLayer(net, interp_factory("gradcam"))(x, "pred")
    want = interpreters.build("gradcam", net, layer="features.8")(x, "pred")
    torch.testing.assert_close(got, want)
    assert got.shape == (3, 8, 8)        # features.8 and features.11 both see H/4 x W/4 (no pool between)
    assert not torch.allclose(got, interpreters.build("gradcam", net)(x, "pred"))
    with pytest.raises(ValueError, match="explains the input, not a layer"):
        OtherLayer(net, interp_factory("simpleg"))


def test_score_defense_explains_the_probability_of_a_logit_method_and_back():
    net, x = _net(), _x()
    got = OtherScore(net, interp_factory("gradcam"))(x, "pred")
    want = interpreters.build("gradcam", net, score="prob")(x, "pred")
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, interpreters.build("gradcam", net)(x, "pred"))


def test_the_class_is_picked_by_the_unchanged_model_not_by_the_defended_input():
    net, x = _net(), _x(4)
    d = PathAveraged(net, interp_factory("gradcam"), steps=3)
    fwd = d.forward(x)
    torch.testing.assert_close(fwd.logits, net(x))


def test_defenses_refuse_bad_specs_and_graphs_with_one_line():
    for spec, match in (("bogus", "allowed: softplus"), ("noise:1.5", "n='1.5'; allowed: int"),
                        ("softplus:abc", "beta='abc'; allowed: float")):
        with pytest.raises(ValueError, match=match) as err:
            parse(spec)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="n=0; allowed"):
        NoiseAveraged(_net(), interp_factory("gradcam"), n=0)
    d = NoiseAveraged(_net(), interp_factory("gradcam"), n=1)
    with pytest.raises(ValueError, match="create_graph=True"):
        d(_x(), "pred", create_graph=True)


@pytest.mark.parametrize("spec", ["noise:2", "path:2", "layer", "score", "softplus:3"])
def test_no_defense_changes_a_parameter_or_its_grad(spec):
    net = _net()
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    before = copy.deepcopy(net.state_dict())
    defend(interp_factory("gradcam"), spec)(net=net)(_x(), "pred")
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in net.parameters())


def test_softplus_defense_is_the_method_on_the_smooth_copy_and_tends_to_the_relu_map():
    net, x = _net(), _x()
    got = SoftplusMaps(net, interp_factory("gradcam"), beta=3.0)(x, "pred")
    cls = net(x).argmax(1)                       # the class of the unchanged model
    want = interpreters.build("gradcam", softplus_copy(net, 3.0))(x, cls)
    torch.testing.assert_close(got, want)
    relu = interpreters.build("gradcam", net)(x, "pred")
    errors = [float((SoftplusMaps(net, interp_factory("gradcam"), beta=b)(x, "pred") - relu).abs().mean())
              for b in (3.0, 30.0, 1e4)]
    assert errors[0] > 1e-2 and errors[2] < errors[1] < errors[0] and errors[2] < errors[0] / 20
