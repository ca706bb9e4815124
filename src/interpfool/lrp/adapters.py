"""Model adapters: an explicit forward over a model's own modules that records what LRP needs, and the
relevance pass that walks it back.

An adapter turns a model into a *plan*: a flat list of ops (a conv with the BatchNorm that follows it,
a ReLU, a pooling layer, a whole ResNet block, a whole DenseNet layer ...). ``forward`` runs the ops with
the model's modules and parameters (no copies, so the logits are bit-for-bit ``net(x)`` and gradients
reach the parameters) and keeps each op's input; ``relevance`` runs the ops' rules in reverse. Every op
boundary is a cut of the network (every path from the input to the logits passes through it), so the
relevance at the input of op k is a proper LRP layer relevance, and stopping there (``stop=name``)
makes LRP_T cost only the head above the target layer.

Supported: ``SmallVGG`` and torchvision ``VGG`` (features / avgpool / classifier), torchvision
``ResNet`` (BasicBlock, Bottleneck) and ``SmallResNet`` (BasicBlock), torchvision ``DenseNet`` (stock
``_DenseBlock`` or the cut-preserving ``CutDenseBlock``), interpfool's ``DenseNet121`` and ``SmallDenseNet``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torchvision.models import densenet as tv_densenet
from torchvision.models import resnet as tv_resnet
from torchvision.models import vgg as tv_vgg

from interpfool.lrp.composites import Composite
from interpfool.lrp.ops import (BN_TYPES, LAYER_TYPES, AffineOp, AvgPoolOp, BatchNormFirstOp, DenseLayerOp, DropoutOp,
                                FlattenOp, IdentityOp, MaxPoolOp, Op, ReLUOp, ResidualBlockOp, check_type)

Tensor = torch.Tensor


# ================================================================ plans ====================================

def _sequential_ops(prefix: str, modules: list[tuple[str, nn.Module]]) -> list[Op]:
    """Ops for a plain sequence of layers; a BatchNorm right after a Conv/Linear is folded into it."""
    ops: list[Op] = []
    i = 0
    while i < len(modules):
        name, m = modules[i]
        full = f"{prefix}{name}"
        nxt = modules[i + 1][1] if i + 1 < len(modules) else None
        kind = type(check_type(m, tuple(LAYER_TYPES), full))
        if kind in (nn.Conv2d, nn.Linear):
            if type(nxt) in BN_TYPES:
                ops.append(AffineOp((full,), m, nxt))
                i += 2
                continue
            ops.append(AffineOp((full,), m))
        elif kind is nn.Sequential:
            ops += _alias(_sequential_ops(f"{full}.", list(m.named_children())), full)
        elif kind is nn.ReLU:
            ops.append(ReLUOp((full,)))
        elif kind is nn.Dropout:
            ops.append(DropoutOp((full,), m))
        elif kind is nn.Identity:
            ops.append(IdentityOp((full,), m))
        elif kind is nn.Flatten:
            if m.end_dim != -1:
                raise ValueError(f"unsupported {full}: {m}")
            ops.append(FlattenOp((full,), m.start_dim))
        elif kind is nn.MaxPool2d:
            ops.append(MaxPoolOp((full,), m))
        elif kind in (nn.AvgPool2d, nn.AdaptiveAvgPool2d):
            ops.append(AvgPoolOp((full,), m))
        else:
            ops.append(BatchNormFirstOp((full,), m))
        i += 1
    return ops


def _alias(ops: list[Op], name: str) -> list[Op]:
    """The input of a container is the input of its first op."""
    if ops:
        ops[0].names = (name, *ops[0].names)
    return ops


def _vgg_plan(net: nn.Module) -> list[Op]:
    ops = _sequential_ops("", [("features", net.features), ("avgpool", net.avgpool)])
    ops.append(FlattenOp())
    return ops + _sequential_ops("", [("classifier", net.classifier)])


def _resnet_plan(net: nn.Module, stem=("conv1", "bn1", "relu", "maxpool"),
                 stages=("layer1", "layer2", "layer3", "layer4")) -> list[Op]:
    """torchvision ResNet (or ``SmallResNet``: its own ``stem`` / ``stages`` names): stem, stages of
    residual blocks, avgpool, flatten, fc."""
    ops = _sequential_ops("", [(n, getattr(net, n)) for n in stem])
    for lname in stages:
        stage = check_type(getattr(net, lname), (nn.Sequential,), lname)
        ops += _alias([ResidualBlockOp((f"{lname}.{i}",), b) for i, b in enumerate(stage)], lname)
    ops += _sequential_ops("", [("avgpool", net.avgpool)])
    ops.append(FlattenOp())
    return ops + _sequential_ops("", [("fc", net.fc)])


def _small_resnet_plan(net: nn.Module) -> list[Op]:
    return _resnet_plan(net, stem=net.stem, stages=net.stages)


def _densenet_plan(net: nn.Module) -> list[Op]:
    """torchvision DenseNet, interpfool's DenseNet121 or ``SmallDenseNet``: features (stem, dense blocks,
    transitions, norm5), the forward's functional ReLU, the pool, flatten, classifier."""
    from interpfool.models.torchvision_models import CutDenseBlock

    ops: list[Op] = []
    children = list(check_type(net.features, (nn.Sequential,), "features").named_children())
    i = 0
    while i < len(children):
        name, m = children[i]
        full = f"features.{name}"
        if isinstance(m, tv_densenet._DenseBlock):
            # both forwards compute cat([x, layer1(x), ...]) with layer i seeing the running concatenation
            check_type(m, (tv_densenet._DenseBlock, CutDenseBlock), full)
            ops += _alias([DenseLayerOp((f"{full}.{ln}",), layer) for ln, layer in m.items()], full)
        elif isinstance(m, tv_densenet._Transition):
            check_type(m, (tv_densenet._Transition,), full)
            ops += _alias(_sequential_ops(f"{full}.", list(m.named_children())), full)
        else:
            # stem (conv0, norm0, relu0, pool0) and norm5; a Conv followed by BN is folded
            j = i + 1
            while j < len(children) and not isinstance(children[j][1], (tv_densenet._DenseBlock,
                                                                          tv_densenet._Transition)):
                j += 1
            ops += _sequential_ops("features.", children[i:j])
            i = j
            continue
        i += 1
    ops = _alias(ops, "features")
    ops.append(ReLUOp())  # forward's functional relu
    if type(net).forward is tv_densenet.DenseNet.forward:
        ops.append(AvgPoolOp((), None, (1, 1)))    # torchvision: F.adaptive_avg_pool2d(out, (1, 1))
    else:
        ops += _sequential_ops("", [("avgpool", net.avgpool)])
    ops.append(FlattenOp())
    ops += _sequential_ops("", [("classifier", net.classifier)])
    return ops


# ================================================================ adapter ==================================

@dataclass
class Trace:
    """What one adapter forward recorded: the logits and each op's saved tensors (its input first)."""

    logits: Tensor
    inputs: list[Tensor]
    saved: list[Any] = field(default_factory=list)


def _supported_forward(net: nn.Module, cls: type | None = None) -> str | None:
    """The plan family whose forward the model's class (or ``cls``) runs unchanged, or None."""
    from interpfool.models.small_densenet import SmallDenseNet
    from interpfool.models.small_resnet import SmallResNet
    from interpfool.models.small_vgg import SmallVGG
    from interpfool.models.torchvision_models import DenseNet121

    cls = cls or type(net)
    if isinstance(net, SmallVGG) and cls.forward is SmallVGG.forward:
        return "vgg"
    if isinstance(net, tv_vgg.VGG) and cls.forward is tv_vgg.VGG.forward:
        return "vgg"
    if isinstance(net, tv_resnet.ResNet) and cls.forward is tv_resnet.ResNet.forward \
            and cls._forward_impl is tv_resnet.ResNet._forward_impl:
        return "resnet"
    if isinstance(net, tv_densenet.DenseNet) and cls.forward in (tv_densenet.DenseNet.forward, DenseNet121.forward):
        return "densenet"
    if isinstance(net, SmallResNet) and cls.forward is SmallResNet.forward:
        return "small_resnet"
    if isinstance(net, SmallDenseNet) and cls.forward is SmallDenseNet.forward:
        return "densenet"
    return None


SUPPORTED = ("SmallVGG", "SmallResNet", "SmallDenseNet", "torchvision VGG (vgg11..vgg19, with or without BN)",
             "torchvision ResNet", "torchvision DenseNet / interpfool DenseNet121")


class LRPAdapter:
    """Explicit forward + relevance pass for one model (see the module docstring)."""

    def __init__(self, net: nn.Module, cls: type | None = None):
        """``cls``: plan ``net`` as an instance of that class (a subclass that only wraps the forward, such as
        the pre-softmax shifted model, is planned as its base class)."""
        family = _supported_forward(net, cls)
        if family is None:
            raise ValueError(f"LRP has no adapter for {type(net).__module__}.{type(net).__name__}; supported: "
                             f"{'; '.join(SUPPORTED)} (with their own forward)")
        self.net, self.family = net, family
        self.ops = {"vgg": _vgg_plan, "resnet": _resnet_plan, "small_resnet": _small_resnet_plan,
                    "densenet": _densenet_plan}[family](net)
        nonneg = False
        for op in self.ops:
            op.nonneg_in = nonneg
            nonneg = op.out_nonneg(nonneg)
        self._bns = [bn for op in self.ops for bn in op.batchnorms()]
        self.boundaries = {name: k for k, op in enumerate(self.ops) for name in op.names}

    def check_layer(self, layer: str) -> int:
        """Index of the op whose input is ``layer``'s input, or a ValueError naming the allowed layers."""
        if layer not in self.boundaries:
            names = list(self.boundaries)
            raise ValueError(f"LRP cannot stop at the input of {layer!r} in {type(self.net).__name__} (not a "
                             f"cut of the network, or inside a fused conv+BN / block); allowed: "
                             f"{', '.join(names[-12:])}{' ...' if len(names) > 12 else ''}")
        return self.boundaries[layer]

    def forward(self, x: Tensor) -> Trace:
        """Logits (== net(x)) and the recorded inputs, in one pass with the model's modules."""
        for bn in self._bns:
            if bn.training:
                raise ValueError("LRP needs BatchNorm in eval mode (its rule folds the running statistics); "
                                 "call net.eval() (frozen BatchNorm statistics, DESIGN.md 2.2)")
        inputs, saved = [], []
        for op in self.ops:
            inputs.append(x)
            x, s = op.forward(x)
            saved.append(s)
        return Trace(x, inputs, saved)

    def relevance(self, trace: Trace, relevance: Tensor, comp: Composite, stop: str | None = None) -> Tensor:
        """Propagate ``relevance`` (shaped like the logits) down to the model input, or to the input of
        layer ``stop`` (then only the ops above it run)."""
        last = 0 if stop is None else self.check_layer(stop)
        for k in range(len(self.ops) - 1, last - 1, -1):
            relevance = self.ops[k].backward(trace.saved[k], relevance, comp)
        return relevance

    def activation(self, trace: Trace, layer: str) -> Tensor:
        return trace.inputs[self.check_layer(layer)]


def build_adapter(net: nn.Module) -> LRPAdapter:
    """The adapter for ``net``'s type; ValueError naming the type and what is supported otherwise.
    A pre-softmax shifted model (``models.presoftmax_shift``) gets ``PresoftmaxShiftAdapter``."""
    from interpfool.models.presoftmax import PresoftmaxShifted

    if isinstance(net, PresoftmaxShifted):
        from interpfool.lrp.presoftmax import PresoftmaxShiftAdapter
        return PresoftmaxShiftAdapter(net)
    return LRPAdapter(net)
