"""``softplus_copy(net, beta)``: a deep copy of a ReLU network with every ReLU replaced by softplus-beta.

Dombrowski et al. (2019, "Explanations can be manipulated and geometry is to blame", Sec. 4 / Theorem 2):
the input Hessian of a ReLU network is zero almost everywhere, so the gradient of a gradient-based map
w.r.t. the input carries no second-order term; replacing ReLU(x) by softplus_beta(x) = log(1 + e^{beta x}) / beta
(-> ReLU as beta -> inf) makes it smooth, which the explanation attack differentiates through (and which
explanation-time defenses use to smooth the maps themselves).

Where the models use ReLU (``interpfool.models``):
* ``nn.ReLU`` modules: small_vgg (features and head), small_resnet / torchvision ResNet (stem and every
  BasicBlock / Bottleneck ``relu``), small_densenet / DenseNet121 (``relu0``, every ``_DenseLayer``'s
  ``relu1`` / ``relu2``, every ``_Transition``'s ``relu``), torchvision VGG19. They are replaced by
  ``nn.Softplus(beta)`` modules (no parameters: the state dict is unchanged).
* functional calls: the head of SmallDenseNet / DenseNet121 calls ``F.relu(features)`` in its forward.
  The copy's forward runs under a ``TorchFunctionMode`` that turns every ``F.relu`` / ``torch.relu`` /
  ``Tensor.relu`` (and their in-place variants, computed out of place) into softplus-beta, so ReLUs called
  from any forward, module or not, are replaced too.

The copy keeps its class's attributes (``target_layer``, ``last_pool``), module names, parameters (copied
values) and train / eval mode; ``net`` itself is not changed.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

RELU_FUNCTIONS = (F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_)


def check_beta(beta) -> float:
    """beta > 0 and finite, else a one-line ValueError naming it."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"softplus beta={beta!r}; allowed: a finite number > 0 (large beta -> ReLU)")
    return float(beta)


class SoftplusMode(TorchFunctionMode):
    """Every relu call inside the block computes softplus_beta instead (Dombrowski et al. 2019, Sec. 4)."""

    def __init__(self, beta: float):
        super().__init__()
        self.beta = beta

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in RELU_FUNCTIONS:
            return F.softplus(args[0], beta=self.beta)      # in-place variants: out of place (no aliasing)
        return func(*args, **kwargs)


class _SoftplusForward:
    """Mixed into the copy's class: its forward runs under ``SoftplusMode`` (functional relu calls)."""

    softplus_beta: float

    def forward(self, *args, **kwargs):
        with SoftplusMode(self.softplus_beta):
            return super().forward(*args, **kwargs)


def _replace_relu_modules(net: nn.Module, beta: float) -> int:
    count = 0
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(parent, name, nn.Softplus(beta=beta))
                count += 1
    return count


def softplus_copy(net: nn.Module, beta: float) -> nn.Module:
    """A deep copy of ``net`` whose ReLUs (modules and functional calls) are softplus-beta (module docstring).

    ``net`` is not modified; the copy's parameters are copies (changing them does not change ``net``)."""
    beta = check_beta(beta)
    net = getattr(net, "_orig_mod", net)           # a torch.compile wrapper: copy the original module
    smooth = copy.deepcopy(net)
    _replace_relu_modules(smooth, beta)
    cls = type(smooth)
    if issubclass(cls, _SoftplusForward):          # a copy of a copy: its softplus modules take the new beta
        for module in smooth.modules():
            if isinstance(module, nn.Softplus):
                module.beta = beta
    else:
        smooth.__class__ = type(f"Softplus{cls.__name__}", (_SoftplusForward, cls), {"__module__": __name__})
    smooth.softplus_beta = beta
    return smooth
