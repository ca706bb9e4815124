"""Layer defense: explain another cut of the network (DESIGN.md 2.1). Heo et al. (2019) fool the map at
the target layer; a cut one block earlier sees the same decision through other activations.

``earlier_layer(net, layer)``: the previous sibling of ``layer`` of the same module type in its parent
container (VGG: the conv before the last conv; ResNet: the block before the last block; DenseNet: the dense
layer before the last one), a one-line error when there is none.
"""
from __future__ import annotations

import torch
from torch import nn

from interpfool.defenses.wrapped import DefendedInterpreter, InterpreterFactory
from interpfool.models.builders import resolve_module


def earlier_layer(net: nn.Module, layer: str) -> str:
    target = resolve_module(net, layer)
    parent_name, _, leaf = layer.rpartition(".")
    parent = resolve_module(net, parent_name) if parent_name else net
    names = [n for n, _ in parent.named_children()]
    before = [n for n in names[:names.index(leaf)] if type(getattr(parent, n)) is type(target)]
    if not before:
        raise ValueError(f"defense layer: {layer!r} has no earlier {type(target).__name__} in "
                         f"{parent_name or type(net).__name__}; give the defense's layer=<module name>")
    return f"{parent_name}.{before[-1]}" if parent_name else before[-1]


class OtherLayer(DefendedInterpreter):
    defense = "layer"

    def __init__(self, net, factory: InterpreterFactory, layer: str | None = None):
        super().__init__(net, factory)
        if not self.inner.uses_layer:
            raise ValueError(f"defense layer: {self.inner.name} explains the input, not a layer; "
                             f"allowed with: layer-level interpreters (gradcam, lrpT, simplegT, ...)")
        self.layer = layer or earlier_layer(net, self.inner.layer)
        self.moved = factory(net=net, layer=self.layer)      # the same method and settings, another cut
        self.name = f"{self.inner.name}+layer={self.layer}"

    def defended_raw(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return self.inner_raw(self.moved, x, index)      # at the cut's own resolution, as the method's maps are
