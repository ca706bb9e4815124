"""Capture the input of named modules during an ordinary forward pass.

The captured tensors are the very tensors of the graph (no copy, no ``.detach()``), so
``torch.autograd.grad(score, captured, create_graph=True)`` gives exact higher-order
gradients. Requires in-place ops to be off (``models.disable_inplace``).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from interpfool.models.builders import resolve_module


def _not_a_cut(name: str, inp) -> str:
    return (f"layer {name!r} receives a {type(inp).__name__} of {len(inp)} tensors, not one tensor: its input is not "
            f"a cut of the network (DESIGN.md 2.1), and a private concatenation would miss the paths that bypass "
            f"the layer; build the model with interpfool.models.build (DenseNet: "
            f"interpfool.models.torchvision_models.cut_dense_blocks(net)) or pick another layer")


@contextmanager
def capture_inputs(net: nn.Module, layers: list[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, ``store[name]`` is the input of module ``name`` of the last forward.

    That input must be one tensor, a cut of the network (every path from the input to the logits passes
    through it and every consumer uses it, DESIGN.md 2.1): a module called with a list or tuple (stock
    torchvision ``_DenseLayer`` inside a ``_DenseBlock``) raises a one-line ``ValueError``."""
    store: dict[str, torch.Tensor] = {}
    net_inputs: list[torch.Tensor] = []   # the caller's tensors, never flagged in place

    def record(_module, args, kwargs):
        net_inputs.extend(t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor))

    handles = [net.register_forward_pre_hook(record, with_kwargs=True)]
    for name in layers:
        def hook(_module, args, name=name):
            inp, replaced = args[0], False
            if isinstance(inp, (list, tuple)):
                raise ValueError(_not_a_cut(name, inp))
            if torch.is_grad_enabled() and not inp.requires_grad:
                # Nothing upstream is differentiable (frozen theta0, plain input): make the activation
                # a leaf so gradients w.r.t. it exist. No path to a parameter is cut. An intermediate
                # tensor is flagged in place, so that *every* consumer of it (a DenseNet block's
                # concatenation too, not only this module) sees the same leaf and the cut is kept; the
                # caller's own input tensor is not modified: this module gets a leaf copy of it.
                if any(inp is t for t in net_inputs):
                    inp, replaced = inp.detach().requires_grad_(True), True
                else:
                    inp.requires_grad_(True)
            store[name] = inp
            return (inp, *args[1:]) if replaced else None
        handles.append(resolve_module(net, name).register_forward_pre_hook(hook))
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


def forward_with_activation(net: nn.Module, x: torch.Tensor, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and the input of ``layer`` from one forward pass."""
    with capture_inputs(net, [layer]) as store:
        logits = net(x)
    return logits, store[layer]
