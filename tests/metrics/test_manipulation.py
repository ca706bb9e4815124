"""Evidence metrics of the audit against hand formulas and scipy; a Lerma & Lucas shift changes no
probability and drives the class-uniform share of the logit variance towards 1."""
import pytest
import torch

from interpfool import models
from interpfool.metrics.manipulation import uniform_logit_share


def test_uniform_share_is_the_variance_decomposition_by_hand():
    z = torch.randn(50, 7, generator=torch.Generator().manual_seed(0)).double()
    zn = z.numpy()
    m = zn.mean(1)
    want = m.var() / (m.var() + ((zn - m[:, None]) ** 2).mean(1).mean())
    assert uniform_logit_share(z) == pytest.approx(want, rel=1e-12)
    # a class-uniform component moves the share, a class-specific one does not add to its numerator
    t = torch.randn(50, 1, generator=torch.Generator().manual_seed(1)).double() * 100
    assert uniform_logit_share(z + t) > 0.99
    assert uniform_logit_share(z - z.mean(1, keepdim=True)) == pytest.approx(0.0, abs=1e-30)


def test_a_lerma_shift_keeps_the_probabilities_and_shows_in_the_share():
    torch.manual_seed(0)
    net = models.build("small_vgg", num_classes=5).eval()
    x = torch.rand(16, 3, 32, 32)
    shifted = models.presoftmax_shift(net, k=10.0)
    with torch.no_grad():
        z, zs = net(x).double(), shifted(x)
    torch.testing.assert_close(torch.softmax(zs, 1), torch.softmax(z, 1), rtol=1e-6, atol=1e-7)
    assert uniform_logit_share(zs) > uniform_logit_share(z) + 0.3
