"""A small DenseNet-BC of torchvision's own ``_DenseLayer`` / ``_Transition`` for Fashion-MNIST (28x28) and
the synthetic benchmark.

Same shape of computation as DenseNet121 (a conv-BN-ReLU-pool stem, dense blocks of BN-ReLU-1x1conv-
BN-ReLU-3x3conv layers, a BN-ReLU-1x1conv-avgpool transition, a final BatchNorm, a functional ReLU, an
adaptive average pool and a linear head), small enough to train on a 2-core CPU in minutes. The blocks
are ``CutDenseBlock`` (torchvision's block with a running concatenation) so that every dense layer's
input is a cut (DESIGN.md 2.1); the forward is DenseNet121's (no in-place ReLU). The LRP adapter's
DenseNet rules (BN-first, concatenation split by channels) apply unchanged.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.densenet import _DenseBlock, _Transition

from interpfool.models.torchvision_models import CutDenseBlock


def _block(layers: int, c_in: int, growth: int, bn_size: int) -> CutDenseBlock:
    """torchvision's ``_DenseBlock`` (its ``_DenseLayer``s, names denselayer1..L) as a ``CutDenseBlock``."""
    return CutDenseBlock.of(_DenseBlock(layers, c_in, bn_size=bn_size, growth_rate=growth, drop_rate=0.0))


class SmallDenseNet(nn.Module):
    """features: conv0 3x3 (w) - norm0 - relu0 - pool0 (max 2x2); denseblock1 (``layers`` layers, growth g);
    transition1 (halves the channels and the resolution); denseblock2; norm5. Then relu, avgpool (1x1),
    classifier.

    ``target_layer = "features.denseblock2.denselayer<L>"``: the input of the last dense layer, i.e. the
    running concatenation of the last block, (w + L g) / 2 + (L - 1) g channels at H/4 x W/4 (7x7 at 28x28,
    16x16 at 64x64), as DenseNet121's ``features.denseblock4.denselayer16`` (DESIGN.md 2.1). It reaches the
    logits through that layer and directly through the block's output concatenation, and both use the
    same tensor (``CutDenseBlock``). ``last_pool = "avgpool"`` (an ``AdaptiveAvgPool2d(1)`` module, as
    interpfool's DenseNet121) is where the pre-softmax manipulation reads A_00k (DESIGN.md 2.4).
    """

    target_layer = "features.denseblock2.denselayer4"
    last_pool = "avgpool"

    def __init__(self, num_classes: int = 8, width: int = 24, growth: int = 12, layers: int = 4, bn_size: int = 4):
        super().__init__()
        if layers < 1:
            raise ValueError(f"small_densenet layers={layers!r}; allowed: an integer >= 1")
        c1 = width + layers * growth
        c2 = c1 // 2
        self.features = nn.Sequential(OrderedDict([
            ("conv0", nn.Conv2d(3, width, 3, padding=1, bias=False)),
            ("norm0", nn.BatchNorm2d(width)),
            ("relu0", nn.ReLU(inplace=False)),
            ("pool0", nn.MaxPool2d(2)),
            ("denseblock1", _block(layers, width, growth, bn_size)),
            ("transition1", _Transition(c1, c2)),
            ("denseblock2", _block(layers, c2, growth, bn_size)),
            ("norm5", nn.BatchNorm2d(c2 + layers * growth)),
        ]))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c2 + layers * growth, num_classes)
        self.target_layer = f"features.denseblock2.denselayer{layers}"
        for m in self.modules():   # torchvision DenseNet's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)
            if getattr(m, "inplace", False):   # torchvision's layers use ReLU(inplace=True)
                m.inplace = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # = DenseNet121.forward
        out = F.relu(self.features(x), inplace=False)
        return self.classifier(torch.flatten(self.avgpool(out), 1))
