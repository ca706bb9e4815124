"""A small ResNet of torchvision's own ``BasicBlock`` for Fashion-MNIST (28x28) and the synthetic benchmark.

Same shape of computation as ResNet50 (a conv-BN-ReLU stem, stages of residual blocks with identity and
1x1-conv downsample shortcuts, an adaptive average pool and a linear head), small enough to train on a
2-core CPU in minutes. Every block is ``torchvision.models.resnet.BasicBlock``, so the LRP adapter's
ResNet rules (residual add split, BN folded into each conv) apply unchanged. No module acts in place.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock


def _stage(c_in: int, c_out: int, blocks: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or c_in != c_out:
        downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
    layers = [BasicBlock(c_in, c_out, stride=stride, downsample=downsample)]
    layers += [BasicBlock(c_out, c_out) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class SmallResNet(nn.Module):
    """conv3x3-bn-relu stem (width w); layer1: BasicBlock(w) at full resolution; layer2: BasicBlock(2w,
    stride 2, downsample); layer3: BasicBlock(4w, stride 2, downsample), BasicBlock(4w) (identity
    shortcut); avgpool (1x1); fc.

    ``target_layer = "layer3.1"``: the input of the last residual block of the last stage, 4w x H/4 x W/4
    (7x7 at 28x28, 16x16 at 64x64), as ResNet50's ``layer4.2`` (DESIGN.md 2.1). A block input is a cut:
    the block is its only consumer, and both the branch and the identity shortcut run inside the block.
    ``last_pool = "avgpool"`` (an ``AdaptiveAvgPool2d(1)`` module, as torchvision's ResNet) is where the
    pre-softmax manipulation reads A_00k (DESIGN.md 2.4).
    """

    target_layer = "layer3.1"
    last_pool = "avgpool"
    stem = ("conv1", "bn1", "relu")
    stages = ("layer1", "layer2", "layer3")

    def __init__(self, num_classes: int = 8, width: int = 16, blocks: tuple[int, int, int] = (1, 1, 2)):
        super().__init__()
        blocks = tuple(int(b) for b in blocks)   # a Hydra ListConfig too
        if len(blocks) != 3 or min(blocks) < 1 or blocks[-1] < 2:
            raise ValueError(f"small_resnet blocks={blocks!r}; allowed: three counts >= 1, the last >= 2 "
                             f"(the target layer is the input of the last block of layer3)")
        w = width
        self.conv1 = nn.Conv2d(3, w, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=False)
        self.layer1 = _stage(w, w, blocks[0], 1)
        self.layer2 = _stage(w, 2 * w, blocks[1], 2)
        self.layer3 = _stage(2 * w, 4 * w, blocks[2], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * w, num_classes)
        self.target_layer = f"layer3.{blocks[-1] - 1}"
        for m in self.modules():   # torchvision ResNet's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            if getattr(m, "inplace", False):   # torchvision's BasicBlock uses ReLU(inplace=True)
                m.inplace = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))
