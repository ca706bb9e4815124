"""softplus_copy: every ReLU (modules and the functional head of the DenseNets) becomes softplus-beta, checked
against a hand re-statement of the forward; the original model is untouched."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from interpfool.models import build
from interpfool.models.softplus import softplus_copy


def _sp(t, beta):
    return torch.log1p(torch.exp(beta * t)) / beta          # softplus by its definition (Dombrowski eq.)


def test_small_densenet_head_and_layers_are_softplus(monkeypatch):
    net = build("small_densenet", num_classes=4, width=8, growth=4, layers=2).eval()
    x = torch.randn(2, 3, 16, 16)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    smooth = softplus_copy(net, 3.0)
    assert not any(isinstance(m, nn.ReLU) for m in smooth.modules())
    assert any(isinstance(m, nn.ReLU) for m in net.modules())                        # the original keeps its ReLUs
    assert smooth.target_layer == net.target_layer and smooth.state_dict().keys() == net.state_dict().keys()
    # hand route: the copy's modules (now Softplus) and a softplus head written out, no TorchFunctionMode
    with torch.no_grad():
        expected = smooth.classifier(torch.flatten(smooth.avgpool(_sp(smooth.features(x), 3.0)), 1))
        assert torch.allclose(smooth(x), expected, atol=1e-5)
        assert not torch.allclose(smooth(x), net(x), atol=1e-3)
        assert torch.allclose(softplus_copy(net, 1e4)(x), net(x), atol=1e-3)        # beta -> inf: ReLU
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("name", ["small_vgg", "small_resnet"])
def test_module_relus_are_replaced_and_parameters_are_copies(name):
    net = build(name, num_classes=3, width=4).eval()
    smooth = softplus_copy(net, 2.0)
    assert sum(isinstance(m, nn.ReLU) for m in net.modules()) == sum(isinstance(m, nn.Softplus) and m.beta == 2.0
                                                                      for m in smooth.modules()) > 0
    next(smooth.parameters()).data.add_(1.0)
    assert not torch.equal(next(smooth.parameters()), next(net.parameters()))
    assert not smooth.training


def test_functional_relu_calls_are_softplus_and_input_hessian_is_no_longer_zero():
    """Dombrowski et al. 2019: a ReLU network's input Hessian is zero a.e.; the softplus copy's is not."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(5, 7), nn.Linear(7, 2)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)) + F.relu(self.a(x), inplace=True) + self.a(x).relu())

    torch.manual_seed(0)
    net = Net()
    x = torch.randn(3, 5)
    smooth = softplus_copy(net, 4.0)
    with torch.no_grad():
        assert torch.allclose(smooth(x), net.b(3 * _sp(net.a(x), 4.0)), atol=1e-5)

    def hessian_norm(model):
        xx = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(xx)[:, 0].sum(), xx, create_graph=True)
        (h,) = torch.autograd.grad(g.square().sum(), xx, allow_unused=True)
        return 0.0 if h is None else float(h.abs().sum())

    assert hessian_norm(net) == 0.0 and hessian_norm(smooth) > 1e-3


def test_bad_beta_is_one_line():
    with pytest.raises(ValueError, match=r"beta=0; allowed"):
        softplus_copy(nn.ReLU(), 0)
