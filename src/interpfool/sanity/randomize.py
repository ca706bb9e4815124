"""Model-parameter randomisation (Adebayo et al. 2018, "Sanity Checks for Saliency Maps", Sec. 3.1).

Cascading: re-initialise the layers from the top (logits) down, cumulatively: step k has the top k layers random.
Independent: re-initialise one layer at a time, every other layer keeping its trained weights.

A *layer* is a module with its own parameters, in the model's registration order (the forward order of the
VGG-style models; a ResNet's downsample branch comes after its block's convolutions); a normalisation layer
(BatchNorm, GroupNorm, LayerNorm) belongs to the layer before it, as BatchNorm belongs to its convolution, so
"randomising conv k" randomises its BatchNorm too (affine parameters and running statistics reset to the identity).
Adebayo et al. re-initialise from a truncated normal; here each module's own initialiser (``reset_parameters``:
Kaiming-uniform for Conv / Linear, as torch builds them) is used, so a random layer has the scale of an untrained
one; a module without ``reset_parameters`` gets N(mean, std) of its own trained tensors.

The original model is never touched: every randomised model is a deep copy. The random weights of a layer depend only
on ``seed`` and the layer's index (drawn on the CPU under ``torch.random.fork_rng``, then copied to the model's
device), so cascading step k and independent step k give that layer the same random weights, on any device, and
the caller's RNG is not consumed.
"""
from __future__ import annotations

import copy
from typing import Iterator

import torch
from torch import nn

NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _owns_state(m: nn.Module) -> bool:
    return any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False))


def parameter_layers(net: nn.Module) -> list[list[str]]:
    """The randomisable layers, input to output: each a list of module names (a module with its own parameters,
    followed by the normalisation layers that come right after it)."""
    layers: list[list[str]] = []
    for name, m in net.named_modules():
        if not name or not _owns_state(m):
            continue
        if isinstance(m, NORMS) and layers:
            layers[-1].append(name)          # BatchNorm (also without affine parameters: its running statistics)
        elif any(True for _ in m.parameters(recurse=False)):
            layers.append([name])
    return layers


def layer_label(layer: list[str]) -> str:
    """A layer's name in tables and figures: its first module's (``features.11``, ``classifier.3``)."""
    return layer[0]


def _fresh_state(module: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """A re-initialised state dict of ``module`` (own parameters and buffers), drawn on the CPU from ``seed``."""
    fresh = copy.deepcopy(module).to("cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if hasattr(fresh, "reset_parameters"):
            fresh.reset_parameters()          # BatchNorm's also resets its running statistics
        else:
            with torch.no_grad():
                for p in fresh.parameters(recurse=False):
                    p.normal_(float(p.mean()), float(p.std()) if p.numel() > 1 else 1.0)
    return {k: v for k, v in fresh.state_dict().items() if "." not in k}


def randomize_layer(net: nn.Module, layer: list[str], seed: int) -> nn.Module:
    """Re-initialise, in place, the modules of ``layer`` in ``net`` (a copy: callers pass ``copy.deepcopy``)."""
    modules = dict(net.named_modules())
    for i, name in enumerate(layer):
        module = modules[name]
        state = _fresh_state(module, seed * 100_003 + i)
        with torch.no_grad():
            for key, value in state.items():
                getattr(module, key).copy_(value)
    return net


def _seed(seed: int, index: int) -> int:
    return int(seed) * 1_000_003 + index


def cascading(net: nn.Module, seed: int = 0, layers: list[list[str]] | None = None
              ) -> Iterator[tuple[str, nn.Module]]:
    """(label, model) for step 0 (``"original"``: an unrandomised copy) and step k = 1..L (the top k layers
    re-initialised, label = the k-th layer from the top). Every step yields the *same* copy, randomised further:
    use it before asking for the next (``copy.deepcopy`` it to keep it)."""
    layers = parameter_layers(net) if layers is None else layers
    work = copy.deepcopy(net)
    yield "original", work
    for index in reversed(range(len(layers))):
        randomize_layer(work, layers[index], _seed(seed, index))
        yield layer_label(layers[index]), work


def independent(net: nn.Module, seed: int = 0, layers: list[list[str]] | None = None
                ) -> Iterator[tuple[str, nn.Module]]:
    """(label, model) for step 0 (``"original"``) and one model per layer, top down, with only that layer
    re-initialised (the same random weights as the cascading step of that layer). A new copy each step."""
    layers = parameter_layers(net) if layers is None else layers
    yield "original", copy.deepcopy(net)
    for index in reversed(range(len(layers))):
        yield layer_label(layers[index]), randomize_layer(copy.deepcopy(net), layers[index], _seed(seed, index))


MODES = {"cascading": cascading, "independent": independent}
