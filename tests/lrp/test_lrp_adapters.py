"""Model adapters: the explicit forward is the model's (same logits, same parameters), batched maps
equal per-sample maps, and unsupported models / layers / modes fail with a clear message."""
import pytest
import torch
from torch import nn
from torchvision.models import densenet as tv_densenet
from torchvision.models import resnet as tv_resnet

from interpfool import interpreters, models
from interpfool.lrp import build_adapter
from interpfool.lrp.testing import narrow_resnet, randomize_batchnorm, tiny_net

KINDS = ["small_vgg", "resnet_basic", "resnet_bottleneck", "densenet", "small_resnet", "small_densenet"]



def _x(batch=3, side=32, seed=0):
    return torch.randn(batch, 3, side, side, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", KINDS)
def test_adapter_logits_are_the_models(kind):
    net = tiny_net(kind)
    x = _x()
    trace = build_adapter(net).forward(x)
    assert torch.equal(trace.logits, net(x))


def test_plain_torchvision_densenet_with_functional_pool_and_inplace_relu():
    net = tv_densenet.DenseNet(growth_rate=4, block_config=(2, 2), num_init_features=8, bn_size=2, num_classes=5)
    net = randomize_batchnorm(net).double().eval()   # in-place ReLUs left on: the adapter never acts in place
    x = _x()
    adapter = build_adapter(net)
    assert torch.equal(adapter.forward(x).logits, net(x))
    heat = interpreters.build("lrpT", net, layer="features.denseblock2.denselayer2")(x, "pred")
    assert heat.shape == (3, 4, 4)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["lrp", "lrpT"])
def test_batched_equals_per_sample(kind, name):
    net = tiny_net(kind)
    x = _x(side=64 if kind.startswith("resnet") else 32)
    interp = interpreters.build(name, net)
    index = net(x).argmax(1)   # random nets: the predicted class gives non-zero maps (DESIGN.md 4)
    batched = interp(x, index)
    single = torch.cat([interp(x[i:i + 1], index[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-10, atol=1e-12)
    assert batched.abs().amax((1, 2)).min() > 0   # not trivially zero


@pytest.mark.parametrize("kind", KINDS)
def test_every_parameter_reaches_the_map(kind):
    """No copies of weights: the map is a function of every parameter of the model."""
    net = tiny_net(kind)
    interp = interpreters.build("lrp", net)
    heat = interp(_x(batch=2), "pred", create_graph=True)
    params = dict(net.named_parameters())
    grads = torch.autograd.grad((heat * torch.randn_like(heat)).sum(), list(params.values()), allow_unused=True)
    assert [n for n, g in zip(params, grads) if g is None] == []


def test_unsupported_model_names_its_type():
    with pytest.raises(ValueError, match=r"Sequential.*supported: SmallVGG"):
        build_adapter(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))

    class Shifted(tv_resnet.ResNet):   # a changed forward (e.g. a pre-softmax shift) is not the plan's forward
        def forward(self, x):
            return super().forward(x) + 1

    net = Shifted(tv_resnet.BasicBlock, [1, 1, 1, 1])
    with pytest.raises(ValueError, match="Shifted"):
        interpreters.build("lrp", net)


def test_unknown_layer_type_inside_a_supported_model():
    net = models.build("small_vgg", num_classes=4, width=4, hidden=8)
    net.features[2] = nn.GELU()
    with pytest.raises(ValueError, match=r"features\.2 \(GELU\)"):
        build_adapter(net)

    class StandardizedConv(nn.Conv2d):   # same type family, different forward: the rules would not fit
        def forward(self, x):
            return self._conv_forward(x, self.weight - self.weight.mean(), self.bias)

    net = tiny_net("resnet_bottleneck")
    net.layer2[0].conv2 = StandardizedConv(16, 16, 3, padding=1)
    with pytest.raises(ValueError, match=r"layer2\.0\.conv2 \(StandardizedConv\)"):
        build_adapter(net)


def test_batchnorm_in_training_mode_is_refused():
    net = tiny_net("small_vgg").train()
    with pytest.raises(ValueError, match="eval"):
        interpreters.build("lrp", net)(_x(), "pred")


def test_target_layer_must_be_a_cut():
    net = tiny_net("resnet_bottleneck")
    with pytest.raises(ValueError, match="layer4.0.conv2"):
        interpreters.build("lrpT", net, layer="layer4.0.conv2")
    # container names alias their first block; any block boundary works
    a = interpreters.build("lrpT", net, layer="layer3")(_x(side=64), 1)
    b = interpreters.build("lrpT", net, layer="layer3.0")(_x(side=64), 1)
    torch.testing.assert_close(a, b)
    assert a.shape == (3, 8, 8)   # input of layer3 = output of layer2 at 64x64


def test_explain_needs_its_own_forward():
    net = tiny_net("small_vgg")
    fwd = interpreters.build("gradcam", net).forward(_x())
    with pytest.raises(ValueError, match="its own forward"):
        interpreters.build("lrp", net).explain(fwd, "pred")


def test_narrow_resnet_is_a_torchvision_resnet():
    net = narrow_resnet(tv_resnet.Bottleneck)
    assert type(net) is tv_resnet.ResNet and net.target_layer == "layer4.0"
