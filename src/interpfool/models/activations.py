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


@contextmanager
def capture_inputs(net: nn.Module, layers: list[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, ``store[name]`` is the input of module ``name`` of the last forward."""
    store: dict[str, torch.Tensor] = {}
    handles = []
    for name in layers:
        def hook(_module, args, name=name):
            inp, replaced = args[0], False
            if isinstance(inp, (list, tuple)):
                # DenseNet layers take the list of earlier feature maps and concatenate inside;
                # feed them the concatenation instead, so the captured tensor is on the graph.
                inp, replaced = torch.cat(list(inp), 1), True
            if torch.is_grad_enabled() and not inp.requires_grad:
                # Nothing upstream is differentiable (frozen theta0, plain input): make the
                # activation a leaf so gradients w.r.t. it exist. No path to a parameter is cut.
                inp, replaced = inp.detach().requires_grad_(True), True
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
