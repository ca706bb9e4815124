"""Second-order exactness: the gradient of a heatmap penalty w.r.t. the parameters - conv and linear
weights, BatchNorm weights and biases (folded into convs, or BN-first in DenseNet) - equals central
finite differences (``directional_fd_check``, float64, eval mode) within 1e-4 relative.

FD step 1e-7 along a random direction (float64 rounding costs ~1e-8 relative at that step). The maps
are piecewise smooth (ReLU, max-pool switches, the sign in the stabiliser, min-max normalisation) and
so is the network itself: with step 1e-6 the tiny ResNet below has a ReLU pre-activation 2.6e-6 from
zero (layer3.1, after bn2), and even the plain logit's gradient is 0.7% off its finite difference there.
Seeds are fixed, so a kink inside the step shows up as a deterministic failure, not as flakiness.
The last layer's bias is left out on purpose: it only rescales each map, which normalisation
removes, so its gradient is 0 up to rounding.
"""
import pytest
import torch
import torch.nn.functional as F

from interpfool import interpreters
from interpfool.gradcheck import directional_fd_check
from interpfool.lrp.testing import tiny_net



TOL = 1e-4
FD_STEP = 1e-7
PARAMS = {
    "small_vgg": ["features.0.weight", "features.1.weight", "features.1.bias", "features.8.weight",
                  "features.12.weight", "features.12.bias", "classifier.0.weight", "classifier.3.weight"],
    "resnet_bottleneck": ["conv1.weight", "bn1.weight", "layer3.1.conv2.weight", "layer3.1.bn2.bias",
                          "layer4.0.bn3.weight", "layer4.0.bn3.bias", "layer4.0.downsample.1.weight",
                          "layer4.0.downsample.1.bias", "fc.weight"],
    "densenet": ["features.conv0.weight", "features.norm0.bias", "features.transition1.norm.weight",
                 "features.transition1.conv.weight", "features.denseblock2.denselayer2.norm1.weight",
                 "features.denseblock2.denselayer2.norm1.bias", "features.denseblock2.denselayer2.norm2.bias",
                 "features.norm5.weight", "features.norm5.bias", "classifier.weight"],
    "small_resnet": ["conv1.weight", "bn1.bias", "layer2.0.downsample.0.weight", "layer3.1.conv1.weight",
                     "layer3.1.bn2.weight", "layer3.1.bn2.bias", "fc.weight"],
    "small_densenet": ["features.conv0.weight", "features.norm0.bias", "features.transition1.conv.weight",
                       "features.denseblock2.denselayer2.norm1.weight", "features.denseblock2.denselayer2.conv2.weight",
                       "features.norm5.bias", "classifier.weight"],
}
CASES = [  # net, side, interpreter, options
    ("small_vgg", 32, "lrpT", {}),
    ("small_vgg", 32, "lrp", {}),
    ("small_vgg", 32, "lrp", {"maxpool": "proportional", "score": "prob"}),
    ("resnet_bottleneck", 64, "lrpT", {}),
    ("resnet_bottleneck", 64, "lrp", {}),
    ("resnet_bottleneck", 64, "lrpT", {"add": "proportional"}),
    ("densenet", 32, "lrpT", {}),
    ("densenet", 32, "lrp", {}),
    ("densenet", 32, "lrp", {"bn_first": "zplus"}),
    ("small_resnet", 32, "lrpT", {}),
    ("small_densenet", 32, "lrp", {}),
]


@pytest.mark.parametrize("kind,side,name,options", CASES)
def test_penalty_gradient_matches_finite_differences(kind, side, name, options):
    net = tiny_net(kind)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, side, side, dtype=torch.float64, generator=gen)
    interp = interpreters.build(name, net, **options)
    index = interp.forward(x).logits.argmax(1)
    mask = torch.rand(interp(x, index).shape, dtype=torch.float64, generator=gen)

    def penalty():
        return F.mse_loss(interp(x, index, create_graph=True), mask)

    result = directional_fd_check(penalty, net, PARAMS[kind], eps=FD_STEP)
    for param, (analytic, numeric, rel) in result.items():
        assert abs(analytic) > 1e-9, f"{param}: gradient {analytic} is ~0, the check would be empty"
        assert rel <= TOL, f"{param}: analytic {analytic} vs finite differences {numeric} (rel {rel:.2e})"


def test_one_forward_fooling_step_has_exact_gradients():
    """The LightningModule's step: ONE forward whose logits feed CE and whose trace feeds the map;
    loss = CE + lambda * penalty, one gradient."""
    net = tiny_net("small_vgg")
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64, generator=gen)
    labels = torch.tensor([0, 3, 1])
    interp = interpreters.build("lrpT", net)
    mask = torch.rand(3, 8, 8, dtype=torch.float64, generator=gen)

    def loss():
        fwd = interp.forward(x)
        heat = interp.explain(fwd, "label", labels, create_graph=True)
        return F.cross_entropy(fwd.logits, labels) + 2.0 * F.mse_loss(heat, mask)

    for param, (analytic, numeric, rel) in directional_fd_check(loss, net, PARAMS["small_vgg"], eps=FD_STEP).items():
        assert rel <= TOL, f"{param}: analytic {analytic} vs finite differences {numeric} (rel {rel:.2e})"
