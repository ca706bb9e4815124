"""Per-architecture LRP plans: which ops (``lrp.ops``) a model is made of, in forward order.

A plan turns a model into a flat list of ops over the model's own modules (a conv with the BatchNorm
that follows it, a ReLU, a pooling layer, a whole ResNet block, a whole DenseNet layer ...). Every op
boundary is a cut of the network (every path from the input to the logits passes through it), so the
relevance at the input of op k is a proper LRP layer relevance; ``Op.names`` are the module names
whose input is that boundary (the layers LRP_T may stop at).

Supported: ``SmallVGG`` and torchvision ``VGG`` (features / avgpool / classifier), torchvision
``ResNet`` (BasicBlock, Bottleneck) and ``SmallResNet`` (BasicBlock), torchvision ``DenseNet`` (stock
``_DenseBlock`` or the cut-preserving ``CutDenseBlock``), interpfool's ``DenseNet121`` and ``SmallDenseNet``.
A new architecture is a new plan function here (plus its line in ``family_of`` / ``PLANS`` /
``SUPPORTED``), never an edit of the rules, the ops or the walker (``lrp.walker``).
"""
from __future__ import annotations

from typing import Callable

from torch import nn
from torchvision.models import densenet as tv_densenet
from torchvision.models import resnet as tv_resnet
from torchvision.models import vgg as tv_vgg

from interpfool.lrp.ops import (BN_TYPES, LAYER_TYPES, AffineOp, AvgPoolOp, BatchNormFirstOp, DenseLayerOp, DropoutOp,
                                FlattenOp, IdentityOp, MaxPoolOp, Op, ReLUOp, ResidualBlockOp, check_type)
from interpfool.models.small_densenet import SmallDenseNet
from interpfool.models.small_resnet import SmallResNet
from interpfool.models.small_vgg import SmallVGG
from interpfool.models.torchvision_models import CutDenseBlock, DenseNet121


def sequential_ops(prefix: str, modules: list[tuple[str, nn.Module]]) -> list[Op]:
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
            ops += alias(sequential_ops(f"{full}.", list(m.named_children())), full)
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


def alias(ops: list[Op], name: str) -> list[Op]:
    """The input of a container is the input of its first op."""
    if ops:
        ops[0].names = (name, *ops[0].names)
    return ops


def vgg_plan(net: nn.Module) -> list[Op]:
    ops = sequential_ops("", [("features", net.features), ("avgpool", net.avgpool)])
    ops.append(FlattenOp())
    return ops + sequential_ops("", [("classifier", net.classifier)])


def resnet_plan(net: nn.Module, stem=("conv1", "bn1", "relu", "maxpool"),
                 stages=("layer1", "layer2", "layer3", "layer4")) -> list[Op]:
    """torchvision ResNet (or ``SmallResNet``: its own ``stem`` / ``stages`` names): stem, stages of
    residual blocks, avgpool, flatten, fc."""
    ops = sequential_ops("", [(n, getattr(net, n)) for n in stem])
    for lname in stages:
        stage = check_type(getattr(net, lname), (nn.Sequential,), lname)
        ops += alias([ResidualBlockOp((f"{lname}.{i}",), b) for i, b in enumerate(stage)], lname)
    ops += sequential_ops("", [("avgpool", net.avgpool)])
    ops.append(FlattenOp())
    return ops + sequential_ops("", [("fc", net.fc)])


def small_resnet_plan(net: nn.Module) -> list[Op]:
    return resnet_plan(net, stem=net.stem, stages=net.stages)


def densenet_plan(net: nn.Module) -> list[Op]:
    """torchvision DenseNet, interpfool's DenseNet121 or ``SmallDenseNet``: features (stem, dense blocks,
    transitions, norm5), the forward's functional ReLU, the pool, flatten, classifier."""
    ops: list[Op] = []
    children = list(check_type(net.features, (nn.Sequential,), "features").named_children())
    i = 0
    while i < len(children):
        name, m = children[i]
        full = f"features.{name}"
        if isinstance(m, tv_densenet._DenseBlock):
            # both forwards compute cat([x, layer1(x), ...]) with layer i seeing the running concatenation
            check_type(m, (tv_densenet._DenseBlock, CutDenseBlock), full)
            ops += alias([DenseLayerOp((f"{full}.{ln}",), layer) for ln, layer in m.items()], full)
        elif isinstance(m, tv_densenet._Transition):
            check_type(m, (tv_densenet._Transition,), full)
            ops += alias(sequential_ops(f"{full}.", list(m.named_children())), full)
        else:
            # stem (conv0, norm0, relu0, pool0) and norm5; a Conv followed by BN is folded
            j = i + 1
            while j < len(children) and not isinstance(children[j][1], (tv_densenet._DenseBlock,
                                                                          tv_densenet._Transition)):
                j += 1
            ops += sequential_ops("features.", children[i:j])
            i = j
            continue
        i += 1
    ops = alias(ops, "features")
    ops.append(ReLUOp())  # forward's functional relu
    if type(net).forward is tv_densenet.DenseNet.forward:
        ops.append(AvgPoolOp((), None, (1, 1)))    # torchvision: F.adaptive_avg_pool2d(out, (1, 1))
    else:
        ops += sequential_ops("", [("avgpool", net.avgpool)])
    ops.append(FlattenOp())
    ops += sequential_ops("", [("classifier", net.classifier)])
    return ops


def family_of(net: nn.Module, cls: type | None = None) -> str | None:
    """The plan family whose forward the model's class (or ``cls``) runs unchanged, or None."""
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


PLANS: dict[str, Callable[[nn.Module], list[Op]]] = {
    "vgg": vgg_plan, "resnet": resnet_plan, "small_resnet": small_resnet_plan, "densenet": densenet_plan}
