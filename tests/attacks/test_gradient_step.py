"""The notes' max-normalised gradient step a' = a + eps * g / max|g| against the hand formula."""
import torch
import torch.nn.functional as F

from conftest import MEAN, STD
from interpfool.attacks import fgsm, gradient_step


def test_gradient_step_is_eps_times_the_max_normalised_pixel_gradient(trained):
    net, x, y = trained
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    p = (x * std + mean).requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(net((p - mean) / std), y, reduction="sum"), p)
    expected = p.detach() + 0.1 * g / g.flatten(1).abs().amax(1).view(-1, 1, 1, 1)
    adv = gradient_step(net, x, y, 0.1, mean=MEAN, std=STD, clamp=None)
    step = adv * std + mean - p.detach()
    assert torch.allclose(adv * std + mean, expected, atol=1e-6)
    assert torch.allclose(step.flatten(1).abs().amax(1), torch.full((len(x),), 0.1), atol=1e-6)   # L-inf = eps


def test_gradient_step_raises_the_loss_less_than_fgsm_at_the_same_eps(trained):
    """Same L-inf budget: FGSM moves every pixel by eps, the normalised step only the largest-gradient one."""
    net, x, y = trained
    with torch.no_grad():
        clean = F.cross_entropy(net(x), y)
        step = F.cross_entropy(net(gradient_step(net, x, y, 0.1, mean=MEAN, std=STD)), y)
        sign = F.cross_entropy(net(fgsm(net, x, y, 0.1, mean=MEAN, std=STD)), y)
    assert clean < step < sign
