"""LRP ops: the steps of a plan (``lrp.plans``), each an explicit forward over the model's own modules and
the relevance rule (``lrp.rules``, chosen by the ``Composite``) that walks it back.

An op is a conv or linear layer with the BatchNorm that follows it, a ReLU, a pooling layer, a whole
ResNet block (its add split by ``rules.sum_rule``), a whole DenseNet layer (its concatenation split by
``rules.split_channels``) ... ``forward(x) -> (y, saved)`` runs the op with the model's modules and
parameters (no copies); ``backward(saved, R_out, comp) -> R_in`` applies its rule. Ops know nothing about
architectures: which ops a model is made of is its plan's business.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import densenet as tv_densenet
from torchvision.models import resnet as tv_resnet

from interpfool.lrp import rules
from interpfool.lrp.composites import Composite

Tensor = torch.Tensor
_BN = nn.modules.batchnorm._BatchNorm
# exact types: a subclass may change forward, and the rules would then explain a different function
BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm)
LAYER_TYPES = {nn.Conv2d: "Conv2d", nn.Linear: "Linear", **{t: "BatchNorm" for t in BN_TYPES},
               nn.ReLU: "ReLU", nn.Dropout: "Dropout", nn.Identity: "Identity", nn.Flatten: "Flatten",
               nn.MaxPool2d: "MaxPool2d", nn.AvgPool2d: "AvgPool2d", nn.AdaptiveAvgPool2d: "AdaptiveAvgPool2d",
               nn.Sequential: "Sequential"}


def check_type(module: nn.Module, allowed: tuple, where: str) -> nn.Module:
    """``module`` if its type is exactly one of ``allowed``, else a ValueError naming it."""
    if type(module) not in allowed:
        names = ", ".join(LAYER_TYPES.get(t, t.__name__) for t in dict.fromkeys(allowed))
        raise ValueError(f"LRP has no rule for {where} ({type(module).__name__}); expected exactly: {names}")
    return module


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
        check_type(block, (tv_resnet.BasicBlock, tv_resnet.Bottleneck), where)
        convs = ["conv1", "conv2"] + (["conv3"] if type(block) is tv_resnet.Bottleneck else [])
        self.pairs = [(check_type(getattr(block, c), (nn.Conv2d,), f"{where}.{c}"),
                       check_type(getattr(block, "bn" + c[-1]), BN_TYPES, f"{where}.bn{c[-1]}")) for c in convs]
        self.shortcut_pair = None
        if block.downsample is not None:
            ds = list(check_type(block.downsample, (nn.Sequential,), f"{where}.downsample"))
            if len(ds) != 2:
                raise ValueError(f"{where}.downsample: expected (Conv2d, BatchNorm), got {block.downsample}")
            self.shortcut_pair = (check_type(ds[0], (nn.Conv2d,), f"{where}.downsample.0"),
                                  check_type(ds[1], BN_TYPES, f"{where}.downsample.1"))

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
        check_type(layer, (tv_densenet._DenseLayer,), where)
        for sub in ("norm1", "conv1", "norm2", "conv2"):
            check_type(getattr(layer, sub), BN_TYPES if sub.startswith("norm") else (nn.Conv2d,), f"{where}.{sub}")
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

