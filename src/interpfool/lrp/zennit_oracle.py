"""First-order reference maps from Zennit 0.5.1 (a test dependency, imported lazily).

Zennit's ``EpsilonPlus(epsilon=0.01)`` with its canonizers is rule for rule our ``zennit_epsilon_plus``
composite (and our default ``epsilon_plus`` wherever no residual add or pooling of signed values
occurs, e.g. VGG): Linear -> Epsilon, Conv -> ZPlus (positive bias kept), AvgPool and the canonizer's
residual ``Sum`` -> Norm (signed proportional), BatchNorm -> Pass (after merging into the preceding
conv), MaxPool / Dropout / functional ops -> plain gradient (winner-take-all for max-pooling).
Zennit's hooks rebuild parameters from ``.data``, so its maps carry no correct second-order gradient
(DESIGN.md 4): use it for first-order values only.
"""
from __future__ import annotations

import torch
from torch import nn


def _zennit():
    try:
        from zennit.attribution import Gradient
        from zennit.canonizers import CompositeCanonizer, NamedMergeBatchNorm, SequentialMergeBatchNorm
        from zennit.composites import EpsilonPlus
        from zennit.torchvision import ResNetBasicBlockCanonizer, ResNetBottleneckCanonizer
    except ImportError as err:  # pragma: no cover - the test extra installs it
        raise ImportError("the Zennit oracle needs zennit==0.5.1 (pip install -e '.[test]')") from err
    return (Gradient, EpsilonPlus, SequentialMergeBatchNorm, NamedMergeBatchNorm, CompositeCanonizer,
            ResNetBottleneckCanonizer, ResNetBasicBlockCanonizer)


def _exact(merge_cls):
    """Zennit's merge leaves the BatchNorm computing x / sqrt(1 + eps) instead of the identity (it resets
    mean, var, weight, bias but keeps eps), so the merged model's activations are off by a factor
    (1 + eps)^-1/2 ~ 1 - 5e-6 per BatchNorm and its maps deviate from the model's LRP by ~1e-5 relative
    (measured: 2e-5 on small_vgg, 5e-5 on a small ResNet-50). This variant also sets eps = 0 while merged."""
    class Exact(merge_cls):
        def register(self, linears, batch_norm):
            super().register(linears, batch_norm)
            self.saved_eps, batch_norm.eps = batch_norm.eps, 0.0

        def remove(self):
            super().remove()
            self.batch_norm.eps = self.saved_eps

    Exact.__name__ = f"Exact{merge_cls.__name__}"
    return Exact


def canonizers_for(net: nn.Module, exact_merge: bool = True) -> list:
    """Zennit canonizers that merge every BatchNorm that directly follows a conv (and split ResNet adds).
    ``exact_merge=False``: Zennit's merge as shipped (see ``_exact``)."""
    from torchvision.models import densenet as tv_densenet
    from torchvision.models import resnet as tv_resnet

    _, _, sequential_merge, named_merge, composite, bottleneck, basic_block = _zennit()
    if exact_merge:
        sequential_merge, named_merge = _exact(sequential_merge), _exact(named_merge)
    if any(isinstance(m, (tv_resnet.BasicBlock, tv_resnet.Bottleneck)) for m in net.modules()):
        # = zennit.torchvision.ResNetCanonizer
        return [composite((sequential_merge(), bottleneck(), basic_block()))]
    if any(isinstance(m, tv_densenet._DenseLayer) for m in net.modules()):
        # SequentialMergeBatchNorm would merge a layer's norm1 into the previous layer's conv2 (leaf order
        # is not data flow in a DenseNet): name the true conv -> BN pairs instead.
        pairs = []
        for name, m in net.named_modules():
            if isinstance(m, tv_densenet._DenseLayer):
                pairs.append(([f"{name}.conv1"], f"{name}.norm2"))
            elif name.endswith("conv0") and isinstance(m, nn.Conv2d):
                pairs.append(([name], name[:-5] + "norm0"))
        return [named_merge(pairs)]
    return [sequential_merge()]


def zennit_relevance(net: nn.Module, x: torch.Tensor, index: torch.Tensor, epsilon: float = 0.01,
                     score: str = "logit", exact_merge: bool = True) -> torch.Tensor:
    """Zennit EpsilonPlus relevance at the input of ``net`` for classes ``index`` ([B]); relevance starts
    from the logit (or probability) of the class, as ours does."""
    gradient, epsilon_plus, *_ = _zennit()
    composite = epsilon_plus(epsilon=epsilon, canonizers=canonizers_for(net, exact_merge))

    def start(out: torch.Tensor) -> torch.Tensor:
        value = torch.softmax(out, 1) if score == "prob" else out
        return (torch.nn.functional.one_hot(index, out.shape[1]).to(out.dtype) * value).detach()

    with gradient(model=net, composite=composite) as attributor:
        _, relevance = attributor(x.clone(), start)
    return relevance.detach()
