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
            inp = args[0]
            if isinstance(inp, (list, tuple)):
                # DenseNet layers take the list of earlier feature maps and concatenate inside;
                # feed them the concatenation instead, so the captured tensor is on the graph.
                inp = torch.cat(list(inp), 1)
                store[name] = inp
                return (inp, *args[1:])
            store[name] = inp
            return None
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
