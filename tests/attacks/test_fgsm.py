"""FGSM (Goodfellow et al. 2015) against the hand formula x' = clip(x + eps * sign(grad_x CE)) in pixel space."""
import torch
import torch.nn.functional as F

from conftest import MEAN, STD
from interpfool.attacks import fgsm


class PixelNet(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, q):
        return self.net((q - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1))


def _grad(net, x, y):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(net(x), y, reduction="sum"), x)
    return g


def test_fgsm_is_x_plus_eps_sign_grad_exactly_when_the_input_is_the_pixels(trained):
    net, x, y = trained
    p = (x * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)).clamp(0, 1)
    pixel_net = PixelNet(net)                     # a model that takes the pixels themselves
    eps = 8 / 255
    expected = (p + eps * _grad(pixel_net, p, y).sign()).clamp(0, 1)
    assert torch.equal(fgsm(pixel_net, p, y, eps), expected)
    assert torch.equal(fgsm(pixel_net, p, y, eps, clamp=None), p + eps * _grad(pixel_net, p, y).sign())


def test_fgsm_with_normalised_inputs_steps_eps_in_pixels(trained):
    net, x, y = trained
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    eps = 0.05
    adv = fgsm(net, x, y, eps, mean=MEAN, std=STD, clamp=None)
    p, p_adv = x * std + mean, adv * std + mean
    g = _grad(net, x, y)                          # d/dx = std * d/dpixel: the same signs
    nonzero = g.abs() > 1e-12
    assert torch.allclose(p_adv - p, eps * g.sign(), atol=1e-6) and nonzero.float().mean() > 0.9
    assert ((p_adv - p)[nonzero].abs() - eps).abs().max() < 1e-6


def test_fgsm_clips_to_the_pixel_range_and_eps_zero_is_the_clean_batch(trained):
    net, x, y = trained
    adv = fgsm(net, x, y, 0.5, mean=MEAN, std=STD, clamp=(0.1, 0.9))
    p_adv = adv * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
    assert p_adv.min() >= 0.1 - 1e-6 and p_adv.max() <= 0.9 + 1e-6
    assert torch.equal(fgsm(net, x, y, 0.0, mean=MEAN, std=STD), x)


def test_targeted_fgsm_descends_the_targets_cross_entropy(trained):
    net, x, y = trained
    target = (y + 1) % 3
    adv = fgsm(net, x, y, 0.1, mean=MEAN, std=STD, targeted=target)
    with torch.no_grad():
        before = F.cross_entropy(net(x), target, reduction="none")
        after = F.cross_entropy(net(adv), target, reduction="none")
    assert (after < before).float().mean() > 0.95
    # an int target is the same as a [B] tensor of it
    assert torch.equal(fgsm(net, x, y, 0.1, mean=MEAN, std=STD, targeted=2),
                       fgsm(net, x, y, 0.1, mean=MEAN, std=STD, targeted=torch.full_like(y, 2)))
