"""Seeded Gaussian noise on parameters, relative to each tensor's spread."""
import pytest
import torch
from torch import nn

from interpfool.metrics import perturb_parameters


def _net():
    net = nn.Sequential(nn.Linear(200, 300), nn.BatchNorm1d(300))
    with torch.no_grad():
        net[0].weight.mul_(10)
    net[1].running_mean.fill_(2.0)
    return net


def test_relative_noise_scales_with_each_tensor_and_leaves_buffers():
    net = _net()
    noisy = perturb_parameters(net, 0.1, torch.Generator().manual_seed(0))
    delta = noisy[0].weight - net[0].weight
    assert delta.std().item() == pytest.approx(0.1 * net[0].weight.std(unbiased=False).item(), rel=0.02)
    assert torch.equal(noisy[1].running_mean, net[1].running_mean)
    same = perturb_parameters(net, 0.1, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(noisy.parameters(), same.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), perturb_parameters(net, 0.0, torch.Generator()).parameters()))


def test_absolute_noise_and_bad_scale():
    net = _net()
    noisy = perturb_parameters(net, 0.05, torch.Generator().manual_seed(1), scale="absolute")
    assert (noisy[0].weight - net[0].weight).std().item() == pytest.approx(0.05, rel=0.02)
    with pytest.raises(ValueError, match="robustness.scale='per-layer'"):
        perturb_parameters(net, 0.1, torch.Generator(), scale="per-layer")
