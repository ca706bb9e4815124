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
import torch.nn.functional as F
from torch import nn
from torchvision.models import densenet as tv_densenet
from torchvision.models import resnet as tv_resnet
from torchvision.models import vgg as tv_vgg

from interpfool.lrp import rules
from interpfool.lrp.composites import Composite

Tensor = torch.Tensor
_BN = nn.modules.batchnorm._BatchNorm
# exact types: a subclass may change forward, and the rules would then explain a different function
_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm)
_LAYER_TYPES = {nn.Conv2d: "Conv2d", nn.Linear: "Linear", **{t: "BatchNorm" for t in _BN_TYPES},
                nn.ReLU: "ReLU", nn.Dropout: "Dropout", nn.Identity: "Identity", nn.Flatten: "Flatten",
                nn.MaxPool2d: "MaxPool2d", nn.AvgPool2d: "AvgPool2d", nn.AdaptiveAvgPool2d: "AdaptiveAvgPool2d",
                nn.Sequential: "Sequential"}


def _check(module: nn.Module, allowed: tuple, where: str) -> nn.Module:
    """``module`` if its type is exactly one of ``allowed``, else a ValueError naming it."""
    if type(module) not in allowed:
        names = ", ".join(_LAYER_TYPES.get(t, t.__name__) for t in dict.fromkeys(allowed))
        raise ValueError(f"LRP has no rule for {where} ({type(module).__name__}); expected exactly: {names}")
    return module


# ================================================================ ops ======================================

class Op:
    """One step of the plan. ``names``: module names whose *input* is this op's input (target layers).
    ``forward(x) -> (y, saved)``; ``backward(saved, R_out, comp) -> R_in``."""

    names: tuple[str, ...] = ()
    nonneg_in: bool = False   # is the input known to be >= 0 (it follows a ReLU)?

    def out_nonneg(self, nonneg_in: bool) -> bool:
        return False

    def forward(self, x: Tensor) -> tuple[Tensor, Any]:
        raise NotImplementedError

    def backward(self, saved: Any, relevance: Tensor, comp: Composite) -> Tensor:
        raise NotImplementedError

    def batchnorms(self) -> list[_BN]:
        return []


class AffineOp(Op):
    """Conv2d or Linear, optionally followed by the BatchNorm folded into it (functionally, at backward
    time, from the current parameters)."""

    def __init__(self, names, layer: nn.Module, bn: _BN | None = None):
        self.names, self.layer, self.bn = tuple(names), layer, bn
        if isinstance(layer, nn.Conv2d):
            geo = rules.ConvGeometry.of(layer)
            self.apply, self.transpose = geo.apply, geo.transpose
        elif isinstance(layer, nn.Linear):
            self.apply, self.transpose = rules.linear_apply, rules.linear_transpose
        else:
            raise ValueError(f"AffineOp needs Conv2d or Linear, got {type(layer).__name__}")
        self.is_conv = isinstance(layer, nn.Conv2d)

    def forward(self, x):
        y = self.layer(x)
        return (self.bn(y) if self.bn is not None else y), x

    def backward(self, a, relevance, comp):
        weight, bias = rules.fold_batchnorm(self.layer.weight, self.layer.bias, self.bn)
        rule = comp.conv if self.is_conv else comp.linear
        if rule == "epsilon":
            return rules.epsilon_rule(a, relevance, weight, bias, comp.epsilon, self.apply, self.transpose)
        return rules.zplus_rule(a, relevance, weight, bias, comp.stabilizer, self.apply, self.transpose,
                                self.nonneg_in)

    def batchnorms(self):
        return [self.bn] if self.bn is not None else []


class ReLUOp(Op):
    """ReLU (module or functional; never in place): relevance passes (Montavon et al. 2019 Sec. 10.2.1
    write the rules for neurons a_k = max(0, z_k): the ReLU is part of the neuron)."""

    def __init__(self, names=()):
        self.names = tuple(names)

    def out_nonneg(self, nonneg_in):
        return True

    def forward(self, x):
        return F.relu(x), None

    def backward(self, saved, relevance, comp):
        return relevance


class DropoutOp(Op):
    def __init__(self, names, module: nn.Dropout):
        self.names, self.module = tuple(names), module

    def out_nonneg(self, nonneg_in):
        return nonneg_in

    def forward(self, x):
        return F.dropout(x, self.module.p, self.module.training, inplace=False), None

    def backward(self, saved, relevance, comp):
        return relevance


class IdentityOp(DropoutOp):
    def forward(self, x):
        return x, None


class FlattenOp(Op):
    def __init__(self, names=(), start_dim: int = 1):
        self.names, self.start_dim = tuple(names), start_dim

    def out_nonneg(self, nonneg_in):
        return nonneg_in

    def forward(self, x):
        return torch.flatten(x, self.start_dim), x.shape

    def backward(self, shape, relevance, comp):
        return relevance.reshape(shape)


class MaxPoolOp(Op):
    def __init__(self, names, module: nn.MaxPool2d):
        self.names, self.module = tuple(names), module

    def out_nonneg(self, nonneg_in):
        return nonneg_in

    def forward(self, x):
        return self.module(x), x

    def backward(self, a, relevance, comp):
        if comp.maxpool == "wta":
            return rules.maxpool_winner_take_all(a, relevance, self.module)
        return rules.maxpool_proportional(a, relevance, self.module, comp.stabilizer)


class AvgPoolOp(Op):
    """AvgPool2d / AdaptiveAvgPool2d (module), or DenseNet's functional adaptive pool (module None)."""

    def __init__(self, names, module: nn.Module | None, output_size=(1, 1)):
        self.names, self.module, self.output_size = tuple(names), module, output_size

    def out_nonneg(self, nonneg_in):
        return nonneg_in

    def pool(self, x):
        return self.module(x) if self.module is not None else F.adaptive_avg_pool2d(x, self.output_size)

    def forward(self, x):
        return self.pool(x), x

    def backward(self, a, relevance, comp):
        return rules.pool_rule(a, relevance, self.pool, comp.stabilizer, positive=comp.avgpool == "zplus")


class BatchNormFirstOp(Op):
    """A BatchNorm with no conv before it to fold into (DenseNet's BN-ReLU-Conv)."""

    def __init__(self, names, bn: _BN):
        self.names, self.bn = tuple(names), bn

    def forward(self, x):
        return self.bn(x), x

    def backward(self, a, relevance, comp):
        if comp.bn_first == "pass":
            return relevance
        return rules.batchnorm_zplus(a, relevance, self.bn, comp.stabilizer)

    def batchnorms(self):
        return [self.bn]


class Chain:
    """A sub-plan run in sequence (inside a block); not itself a target-layer boundary."""

    def __init__(self, ops: list[Op], nonneg_in: bool):
        self.ops = ops
        for op in ops:
            op.nonneg_in = nonneg_in
            nonneg_in = op.out_nonneg(nonneg_in)
        self.nonneg_out = nonneg_in

    def forward(self, x):
        saved = []
        for op in self.ops:
            x, s = op.forward(x)
            saved.append(s)
        return x, saved

    def backward(self, saved, relevance, comp):
        for op, s in zip(reversed(self.ops), reversed(saved)):
            relevance = op.backward(s, relevance, comp)
        return relevance

    def batchnorms(self):
        return [bn for op in self.ops for bn in op.batchnorms()]


class ResidualBlockOp(Op):
    """torchvision BasicBlock / Bottleneck: relu(branch(x) + shortcut(x)). The add is split by positive
    parts (or proportionally, ``add='proportional'``), then each part goes down its own path and the two
    relevances at x are summed."""

    def __init__(self, names, block: nn.Module):
        self.names, self.block = tuple(names), block
        where = names[0] if names else "block"
        _check(block, (tv_resnet.BasicBlock, tv_resnet.Bottleneck), where)
        convs = ["conv1", "conv2"] + (["conv3"] if type(block) is tv_resnet.Bottleneck else [])
        self.pairs = [(_check(getattr(block, c), (nn.Conv2d,), f"{where}.{c}"),
                       _check(getattr(block, "bn" + c[-1]), _BN_TYPES, f"{where}.bn{c[-1]}")) for c in convs]
        self.shortcut_pair = None
        if block.downsample is not None:
            ds = list(_check(block.downsample, (nn.Sequential,), f"{where}.downsample"))
            if len(ds) != 2:
                raise ValueError(f"{where}.downsample: expected (Conv2d, BatchNorm), got {block.downsample}")
            self.shortcut_pair = (_check(ds[0], (nn.Conv2d,), f"{where}.downsample.0"),
                                  _check(ds[1], _BN_TYPES, f"{where}.downsample.1"))

    def out_nonneg(self, nonneg_in):
        return True

    def _chains(self) -> tuple[Chain, Chain]:
        # built on first use, after the plan has set this op's input flag (nonneg_in)
        if getattr(self, "_built", None) is None or self._built[0] != self.nonneg_in:
            ops: list[Op] = []
            for i, (conv, bn) in enumerate(self.pairs):
                if i:
                    ops.append(ReLUOp())
                ops.append(AffineOp((), conv, bn))
            branch = Chain(ops, self.nonneg_in)
            shortcut = Chain([AffineOp((), *self.shortcut_pair)] if self.shortcut_pair else [], self.nonneg_in)
            self._built = (self.nonneg_in, branch, shortcut)
        return self._built[1], self._built[2]

    def forward(self, x):
        branch, shortcut = self._chains()
        out, b_saved = branch.forward(x)
        identity, s_saved = shortcut.forward(x)
        return F.relu(out + identity), (b_saved, s_saved, out, identity)

    def backward(self, saved, relevance, comp):
        branch, shortcut = self._chains()
        b_saved, s_saved, out, identity = saved
        r_out, r_id = rules.sum_rule([out, identity], relevance, comp.stabilizer, positive=comp.add == "positive")
        return branch.backward(b_saved, r_out, comp) + shortcut.backward(s_saved, r_id, comp)

    def batchnorms(self):
        bns = [bn for _, bn in self.pairs]
        return bns + ([self.shortcut_pair[1]] if self.shortcut_pair else [])


class DenseLayerOp(Op):
    """torchvision _DenseLayer as x -> cat([x, new(x)], 1) (the block's running concatenation, which is
    exactly the layer's input in torchvision's forward). Relevance: the channels of x keep theirs, the
    new channels go down norm1-relu1-conv1(+norm2 folded)-relu2-conv2 and are added to x's."""

    def __init__(self, names, layer: nn.Module):
        self.names, self.layer = tuple(names), layer
        where = names[0] if names else "dense layer"
        _check(layer, (tv_densenet._DenseLayer,), where)
        for sub in ("norm1", "conv1", "norm2", "conv2"):
            _check(getattr(layer, sub), _BN_TYPES if sub.startswith("norm") else (nn.Conv2d,), f"{where}.{sub}")
        self.chain = Chain([BatchNormFirstOp((), layer.norm1), ReLUOp(), AffineOp((), layer.conv1, layer.norm2),
                            ReLUOp(), AffineOp((), layer.conv2)], nonneg_in=False)

    def forward(self, x):
        new, saved = self.chain.forward(x)
        if self.layer.drop_rate > 0:
            new = F.dropout(new, p=self.layer.drop_rate, training=self.layer.training)
        return torch.cat([x, new], 1), (saved, x.shape[1])

    def backward(self, saved, relevance, comp):
        chain_saved, channels = saved
        r_x, r_new = rules.split_channels(relevance, [channels, relevance.shape[1] - channels])
        return r_x + self.chain.backward(chain_saved, r_new, comp)

    def batchnorms(self):
        return self.chain.batchnorms()


# ================================================================ plans ====================================

def _sequential_ops(prefix: str, modules: list[tuple[str, nn.Module]]) -> list[Op]:
    """Ops for a plain sequence of layers; a BatchNorm right after a Conv/Linear is folded into it."""
    ops: list[Op] = []
    i = 0
    while i < len(modules):
        name, m = modules[i]
        full = f"{prefix}{name}"
        nxt = modules[i + 1][1] if i + 1 < len(modules) else None
        kind = type(_check(m, tuple(_LAYER_TYPES), full))
        if kind in (nn.Conv2d, nn.Linear):
            if type(nxt) in _BN_TYPES:
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
        stage = _check(getattr(net, lname), (nn.Sequential,), lname)
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
    children = list(_check(net.features, (nn.Sequential,), "features").named_children())
    i = 0
    while i < len(children):
        name, m = children[i]
        full = f"features.{name}"
        if isinstance(m, tv_densenet._DenseBlock):
            # both forwards compute cat([x, layer1(x), ...]) with layer i seeing the running concatenation
            _check(m, (tv_densenet._DenseBlock, CutDenseBlock), full)
            ops += _alias([DenseLayerOp((f"{full}.{ln}",), layer) for ln, layer in m.items()], full)
        elif isinstance(m, tv_densenet._Transition):
            _check(m, (tv_densenet._Transition,), full)
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
