"""Small networks and helpers for checking LRP (tests, ``bench/lrp_oracle_table.py``).

Tiny members of each supported family, BatchNorm statistics that are not the identity (a fresh BN
in eval mode is y = x / sqrt(1 + eps) and would hide folding mistakes), bias-free variants for
conservation, and the "head" above a target layer as a module Zennit can explain.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import densenet as tv_densenet
from torchvision.models import resnet as tv_resnet

from interpfool.models import build, disable_inplace
from interpfool.models.small_densenet import SmallDenseNet
from interpfool.models.small_resnet import SmallResNet
from interpfool.models.torchvision_models import DenseNet121, cut_dense_blocks


class TinyDenseNet(tv_densenet.DenseNet):
    """A two-block DenseNet with interpfool's DenseNet121 forward (non-in-place head, ``avgpool`` module) and
    cut-preserving blocks (``CutDenseBlock``)."""

    forward = DenseNet121.forward
    target_layer = "features.denseblock2.denselayer2"

    def __init__(self, num_classes: int = 5, growth_rate: int = 4, block_config=(2, 2), num_init_features: int = 8):
        super().__init__(growth_rate=growth_rate, block_config=block_config, num_init_features=num_init_features,
                         bn_size=2, num_classes=num_classes)
        cut_dense_blocks(self)
        self.avgpool = nn.AdaptiveAvgPool2d(1)


def tiny_net(kind: str, num_classes: int = 5, seed: int = 0) -> nn.Module:
    """float64, eval, in-place off, random BN statistics; ``net.target_layer`` set.

    ``small_vgg`` (width 4), ``resnet_basic`` / ``resnet_bottleneck`` (one block per stage, the last
    block is the target as in ResNet50's ``layer4.2``), ``densenet`` (TinyDenseNet), ``small_resnet`` /
    ``small_densenet`` (``models.build`` at width 4, growth 4)."""
    torch.manual_seed(seed)
    if kind == "small_vgg":
        net = build("small_vgg", num_classes=num_classes, width=4, hidden=16)
    elif kind in ("resnet_basic", "resnet_bottleneck"):
        net = narrow_resnet(tv_resnet.BasicBlock if kind == "resnet_basic" else tv_resnet.Bottleneck,
                            num_classes=num_classes)
    elif kind == "densenet":
        net = TinyDenseNet(num_classes)
    elif kind == "small_resnet":
        net = build("small_resnet", num_classes=num_classes, width=4)
    elif kind == "small_densenet":
        net = build("small_densenet", num_classes=num_classes, width=8, growth=4, layers=2, bn_size=2)
    else:
        raise ValueError(f"unknown tiny net {kind!r}")
    disable_inplace(net)
    randomize_batchnorm(net, seed)
    return net.double().eval()


def narrow_resnet(block, widths=(8, 16, 32, 64), blocks=(1, 1, 2, 1), num_classes: int = 5) -> tv_resnet.ResNet:
    """A torchvision ``ResNet`` (its class, forward and blocks) with narrow stages: ResNet-50's layout
    (stem, 4 stages of ``block``, avgpool, fc) at a fraction of the cost. ``target_layer`` is the last
    block, as ``layer4.2`` in ResNet-50; ``layer3`` has two blocks so that one block without a
    downsample path (identity shortcut) is covered."""
    net = tv_resnet.ResNet(block, [1, 1, 1, 1], num_classes=num_classes)
    net.inplanes = widths[0]
    net.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(widths[0])
    for i, (width, count) in enumerate(zip(widths, blocks)):
        setattr(net, f"layer{i + 1}", net._make_layer(block, width, count, stride=1 if i == 0 else 2))
    net.fc = nn.Linear(widths[-1] * block.expansion, num_classes)
    net.target_layer = f"layer4.{blocks[-1] - 1}"
    return net


@torch.no_grad()
def randomize_batchnorm(net: nn.Module, seed: int = 0, shift: float = 0.2, positive_scale: bool = False) -> nn.Module:
    """Random BN weight (in [0.5, 1.5], or [-1.5, -0.5] u [0.5, 1.5] unless ``positive_scale``), bias and
    running statistics; ``shift=0`` makes every BN shift-free (zero bias, zero running mean)."""
    gen = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            weight = torch.rand(n, generator=gen) + 0.5
            if not positive_scale:
                weight = weight * torch.where(torch.rand(n, generator=gen) < 0.2, -1.0, 1.0)
            m.weight.copy_(weight)
            m.bias.copy_(torch.randn(n, generator=gen) * shift)
            m.running_mean.copy_(torch.randn(n, generator=gen) * shift)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
    return net


@torch.no_grad()
def make_bias_free(net: nn.Module) -> nn.Module:
    """Zero every conv / linear bias and every BN shift (bias and running mean), BN scales positive:
    a bias-free ReLU network, on which LRP-0-like rules conserve relevance. (With a negative BN scale
    the pass-through BN-first rule can hand relevance to a negative value, which the z+ rule below it
    cannot pass on.)"""
    randomize_batchnorm(net, shift=0.0, positive_scale=True)
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            m.bias.zero_()
    return net


class _DenseHead(nn.Module):
    """x -> cat([x, layer(x)]) -> norm5 -> relu -> avgpool -> classifier (DenseNet above its last layer)."""

    def __init__(self, net: nn.Module, layer: nn.Module):
        super().__init__()
        self.layer, self.norm5, self.avgpool, self.classifier = layer, net.features.norm5, net.avgpool, net.classifier

    def forward(self, x):
        out = torch.cat([x, self.layer(x)], 1)
        out = torch.relu(self.norm5(out))
        return self.classifier(torch.flatten(self.avgpool(out), 1))


def head_above(net: nn.Module, layer: str) -> nn.Module:
    """The part of ``net`` above the input of ``layer``, as a module (for a Zennit LRP_T reference).
    Supports a ``features.K`` layer of a VGG, the last block of a ResNet and the last DenseNet layer."""
    if hasattr(net, "features") and hasattr(net, "classifier") and layer.startswith("features.") \
            and layer.split(".")[1].isdigit():
        k = int(layer.split(".")[1])
        return nn.Sequential(*list(net.features)[k:], net.avgpool, nn.Flatten(), *net.classifier)
    if isinstance(net, (tv_resnet.ResNet, SmallResNet)):
        stage, idx = layer.split(".")
        blocks = list(getattr(net, stage))[int(idx):]
        last = SmallResNet.stages[-1] if isinstance(net, SmallResNet) else "layer4"
        if stage != last:
            raise ValueError(f"head_above supports ResNet target layers in {last}")
        return nn.Sequential(*blocks, net.avgpool, nn.Flatten(), net.fc)
    if isinstance(net, (tv_densenet.DenseNet, SmallDenseNet)):
        block_name, layer_name = layer.split(".")[1:3]
        block = getattr(net.features, block_name)
        if list(block.keys())[-1] != layer_name or list(net.features.named_children())[-1][0] != "norm5":
            raise ValueError("head_above supports the last layer of the last DenseNet block")
        return _DenseHead(net, block[layer_name])
    raise ValueError(f"head_above does not support {type(net).__name__} / {layer}")


def max_rel_dev(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|: the deviation measure of the agreement tests."""
    return float((a - b).abs().max() / b.abs().max())
