"""torchvision VGG19 / ResNet50 / DenseNet121 made safe for double backprop.

Target layers and the "input of that module" convention come from the authors' code
(DESIGN.md 2.1). DenseNet's head calls ``F.relu(inplace=True)`` (pitfall, DESIGN.md 4):
``DenseNet121`` re-states that forward without acting in place.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm


class DenseNet121(tvm.DenseNet):
    """torchvision's DenseNet-121 (same parameters and state-dict keys) without in-place ReLU."""

    def __init__(self, num_classes: int = 1000):
        super().__init__(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
                         num_classes=num_classes)
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # a module, so the last pooling layer has a name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)
        out = F.relu(features, inplace=False)
        out = self.avgpool(out)
        return self.classifier(torch.flatten(out, 1))


TORCHVISION_SPECS = {
    # name: (constructor, target layer, last pooling layer, weights enum name)
    "vgg19": (lambda n: tvm.vgg19(weights=None, num_classes=n), "features.34", "features.36",
              "VGG19_Weights"),
    "resnet50": (lambda n: tvm.resnet50(weights=None, num_classes=n), "layer4.2", "avgpool",
                 "ResNet50_Weights"),
    "densenet121": (lambda n: DenseNet121(num_classes=n), "features.denseblock4.denselayer16",
                    "avgpool", "DenseNet121_Weights"),
}
