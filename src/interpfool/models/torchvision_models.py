"""torchvision VGG19 / ResNet50 / DenseNet121 made safe for double backprop.

Target layers and the "input of that module" convention come from the authors' code
(DESIGN.md 2.1). DenseNet's head calls ``F.relu(inplace=True)`` (pitfall, DESIGN.md 4):
``DenseNet121`` re-states that forward without acting in place.

DenseNet target layers are cuts (DESIGN.md 2.1): torchvision's ``_DenseBlock`` hands each layer the
*list* of earlier feature maps and the layer concatenates them privately, so no tensor that the
block output uses is ever the input of a layer. ``CutDenseBlock`` re-states the block's forward with a
running concatenation, cat_1 = x, cat_{i+1} = cat(cat_i, layer_i(cat_i)), block output = cat_{L+1}:
the input of layer i is one tensor that feeds both the layer and (through the later concatenations)
the block output, so dS/dA at a layer input holds the direct part and the part through the layer
(the authors' ``dx_init + dx``). Same parameters, state-dict keys and output (concatenation is
associative, bit for bit).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm
from torchvision.models import densenet as tv_densenet


class CutDenseBlock(tv_densenet._DenseBlock):
    """torchvision's ``_DenseBlock`` (same layers, keys, output) whose layer inputs are cuts (module docstring)."""

    def forward(self, init_features: torch.Tensor) -> torch.Tensor:
        features = init_features
        for layer in self.values():
            features = torch.cat([features, layer(features)], 1)   # layer(features) sees this very tensor
        return features

    @classmethod
    def of(cls, block: tv_densenet._DenseBlock) -> "CutDenseBlock":
        """The same layer modules (not copies) in a ``CutDenseBlock``, in the same order."""
        new = cls.__new__(cls)
        nn.ModuleDict.__init__(new, block)
        new.train(block.training)
        return new


def cut_dense_blocks(net: nn.Module) -> nn.Module:
    """Replace every torchvision ``_DenseBlock`` of ``net`` (in place) by a ``CutDenseBlock`` over the same
    layers; parameters, buffers and state-dict keys are unchanged."""
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is tv_densenet._DenseBlock:
                setattr(parent, name, CutDenseBlock.of(child))
    return net


class DenseNet121(tvm.DenseNet):
    """torchvision's DenseNet-121 (same parameters and state-dict keys) without in-place ReLU and with
    cut-preserving dense blocks (``CutDenseBlock``)."""

    def __init__(self, num_classes: int = 1000):
        super().__init__(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
                         num_classes=num_classes)
        cut_dense_blocks(self)
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
