"""Parameter randomisation (Adebayo et al. 2018): the original is untouched, cascading step k differs from it in
exactly the top k layers, independent step k in exactly that one layer, seeded and without consuming the RNG."""
from __future__ import annotations

import copy

import pytest
import torch

from interpfool import models
from interpfool.sanity import cascading, independent, parameter_layers


def _net(name="small_vgg"):
    torch.manual_seed(0)
    kwargs = {"small_vgg": {"width": 4}, "small_resnet": {"width": 4}, "small_densenet": {"width": 8}}[name]
    net = models.build(name, num_classes=5, **kwargs).eval()
    with torch.no_grad():     # "trained" BatchNorm statistics, so a reset to the identity is visible
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 2)
    return net


def _differs(a: torch.nn.Module, b: torch.nn.Module, layer: list[str]) -> list[bool]:
    """Per module of ``layer``: whether any of its own tensors differs between a and b."""
    ma, mb = dict(a.named_modules()), dict(b.named_modules())
    out = []
    for name in layer:
        sa, sb = ma[name].state_dict(), mb[name].state_dict()
        out.append(any(not torch.equal(sa[k], sb[k]) for k in sa if k != "num_batches_tracked"))
    return out


def test_layers_of_small_vgg_group_batchnorm_with_its_conv():
    layers = parameter_layers(_net())
    assert layers == [["features.0", "features.1"], ["features.4", "features.5"], ["features.8", "features.9"],
                      ["features.11", "features.12"], ["classifier.0"], ["classifier.3"]]


@pytest.mark.parametrize("name", ["small_vgg", "small_resnet", "small_densenet"])
def test_cascading_differs_from_the_original_in_exactly_the_top_k_layers(name):
    net = _net(name)
    before = copy.deepcopy(net.state_dict())
    rng = torch.get_rng_state()
    layers = parameter_layers(net)
    steps = [(label, copy.deepcopy(m)) for label, m in cascading(net, seed=3)]
    assert len(steps) == len(layers) + 1 and steps[0][0] == "original"
    for k, (label, model) in enumerate(steps):
        top = set(range(len(layers) - k, len(layers)))
        for i, layer in enumerate(layers):
            changed = _differs(net, model, layer)
            assert all(changed) if i in top else not any(changed), (k, layer, changed)
        if k:
            assert label == layers[len(layers) - k][0]
    # the original is untouched, and no RNG draw was consumed
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)


def test_independent_changes_one_layer_with_the_cascading_weights_and_is_seeded():
    net = _net()
    before = copy.deepcopy(net.state_dict())
    layers = parameter_layers(net)
    casc = [copy.deepcopy(m) for _, m in cascading(net, seed=1)]
    ind = [m for _, m in independent(net, seed=1)]
    again = [m for _, m in independent(net, seed=1)]
    other = [m for _, m in independent(net, seed=2)]
    for k in range(1, len(ind)):
        index = len(layers) - k
        for i, layer in enumerate(layers):
            assert all(_differs(net, ind[k], layer)) if i == index else not any(_differs(net, ind[k], layer))
        modules = dict(ind[k].named_modules())
        cmods = dict(casc[k].named_modules())
        for name in layers[index]:           # the same random weights as the cascading step of that layer
            assert all(torch.equal(v, cmods[name].state_dict()[key]) for key, v in modules[name].state_dict().items())
        assert all(torch.equal(v, again[k].state_dict()[key]) for key, v in ind[k].state_dict().items())
        assert not all(torch.equal(v, other[k].state_dict()[key]) for key, v in ind[k].state_dict().items())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_randomised_conv_has_the_scale_of_a_fresh_layer():
    net = _net()
    with torch.no_grad():
        net.classifier[3].weight.mul_(100)
    *_, (_, last) = list(independent(net, seed=0))     # the first layer (features.0) randomised
    top = [m for label, m in independent(net, seed=0) if label == "classifier.3"][0]
    fresh = torch.nn.Linear(top.classifier[3].in_features, 5)
    assert top.classifier[3].weight.abs().max() <= fresh.weight.abs().max() * 1.5
    assert torch.equal(top.features[1].running_var, net.features[1].running_var)
    assert torch.equal(last.features[1].running_var, torch.ones_like(last.features[1].running_var))
