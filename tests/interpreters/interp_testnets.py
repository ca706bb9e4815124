"""Small float64 networks and inputs shared by the interpreter tests and ``bench/oracle_table.py``.

Random weights, BatchNorm statistics and affine parameters randomised (so BN is not the identity
and its parameters matter), eval mode. Targets are the predicted classes (DESIGN.md 4: with random
weights the true label can give all-zero Grad-CAM maps); the default seeds give non-zero CAM maps
for every sample (seed 0 of the small VGG gives all-zero Grad-CAM maps: ReLU of a negative sum).
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from interpfool import models


def randomise_batchnorm(net: nn.Module, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))
    return net


def small_vgg(seed: int = 3) -> nn.Module:
    """``models.build("small_vgg", num_classes=5, width=8, hidden=16)``: target layer features.11
    (input 32 x 8 x 8 at 32 x 32)."""
    torch.manual_seed(seed)
    net = models.build("small_vgg", num_classes=5, width=8, hidden=16)
    return randomise_batchnorm(net, seed).double().eval()


def small_resnet(seed: int = 3) -> nn.Module:
    """torchvision ResNet with one BasicBlock per stage (ResNet-10), 5 classes; target layer
    ``layer4.0`` (input 256 x 4 x 4 at 64 x 64): residual adds and a downsample branch."""
    torch.manual_seed(seed)
    net = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=5)
    models.disable_inplace(net)
    net.target_layer = "layer4.0"
    return randomise_batchnorm(net, seed).double().eval()


def inputs(batch: int = 3, side: int = 32, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, side, side, generator=gen, dtype=torch.float64)


def predicted(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x).argmax(1)


def max_rel_dev(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """max |ours - ref| / max |ref| over the batch; no sample of the reference may be all zero
    (the comparison would prove nothing for it)."""
    ours = torch.as_tensor(ours).detach().to(torch.float64)
    ref = torch.as_tensor(ref).detach().to(torch.float64)
    if ours.shape != ref.shape:
        raise AssertionError(f"shapes differ: {tuple(ours.shape)} vs {tuple(ref.shape)}")
    zero = (ref.flatten(1).abs().amax(1) == 0).nonzero().flatten().tolist()
    if zero:
        raise AssertionError(f"reference is all zero for samples {zero}: the comparison would prove nothing")
    scale = float(ref.abs().max())
    return float((ours - ref).abs().max()) / scale
