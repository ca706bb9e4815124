"""A small VGG-style CNN with BatchNorm for the offline synthetic benchmark.

Same shape of computation as VGG19 (conv-BN-ReLU blocks, max-pooling, a target layer that is
the input of the last conv, an adaptive average pool and a fully connected head), small enough
to train on a 2-core CPU in a couple of minutes at 64x64. No module acts in place.
"""
from __future__ import annotations

import torch
from torch import nn


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=False)]


class SmallVGG(nn.Module):
    """features: [conv-bn-relu, pool] x2, conv-bn-relu, conv-bn-relu, pool; avgpool(4); fc-relu-fc.

    ``target_layer = "features.11"`` is the last conv: its input, 4w x H/4 x W/4, is the map that
    Grad-CAM / LRP_T / SimpleG_T explain, as VGG19's ``features.34`` (DESIGN.md 2.1).
    ``last_pool = "avgpool"`` is where the pre-softmax manipulation reads A_00k (DESIGN.md 2.4).
    """

    target_layer = "features.11"
    last_pool = "avgpool"

    def __init__(self, num_classes: int = 8, width: int = 32, hidden: int = 128, dropout: float = 0.3):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_conv_bn_relu(3, w), nn.MaxPool2d(2),          # 0-3
            *_conv_bn_relu(w, 2 * w), nn.MaxPool2d(2),      # 4-7
            *_conv_bn_relu(2 * w, 4 * w),                   # 8-10
            *_conv_bn_relu(4 * w, 4 * w), nn.MaxPool2d(2),  # 11-14 (11: target conv)
        )
        self.avgpool = nn.AdaptiveAvgPool2d(4)
        self.classifier = nn.Sequential(
            nn.Linear(4 * w * 16, hidden), nn.ReLU(inplace=False), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))
