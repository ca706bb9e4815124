"""``models.build``: one entry point for every classifier, with its target layer attached."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from interpfool.models.small_densenet import SmallDenseNet
from interpfool.models.small_resnet import SmallResNet
from interpfool.models.small_vgg import SmallVGG
from interpfool.models.torchvision_models import TORCHVISION_SPECS

# models trained from scratch (Fashion-MNIST, the synthetic benchmark): name -> class; kwargs go to the class
SMALL_MODELS = {"small_vgg": SmallVGG, "small_resnet": SmallResNet, "small_densenet": SmallDenseNet}
MODEL_NAMES = (*SMALL_MODELS, *TORCHVISION_SPECS)

def disable_inplace(net: nn.Module) -> nn.Module:
    """Turn ``inplace`` off everywhere: in-place ReLU breaks activation capture (DESIGN.md 4)."""
    for module in net.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    return net

def resolve_module(net: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` (dotted), or a one-line error listing what exists."""
    modules = dict(net.named_modules())
    if name not in modules:
        close = [n for n in modules if n and n.split(".")[0] == name.split(".")[0]][:8]
        hint = f"; for example {', '.join(close)}" if close else ""
        raise ValueError(f"layer {name!r} does not exist in {type(net).__name__}{hint}")
    return modules[name]

def _load_weights_file(net: nn.Module, path: str) -> None:
    """Load a local state dict with ``weights_only=True``; every failure is one line saying what to do."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"model.weights_path={path!r} does not exist; give a state-dict file "
                                f"saved with torch.save(model.state_dict(), path)")
    load_state_file(net, file, "model.weights_path", hint="; save one with torch.save(model.state_dict(), path)")


def load_state_file(net: nn.Module, path: str | Path, what: str, hint: str = "") -> nn.Module:
    """Load the state dict at ``path`` into ``net`` (``weights_only=True``; a Lightning checkpoint's
    ``state_dict`` with ``model.`` prefixes is accepted). A file that is not a state dict of tensors or
    does not fit: one-line ValueError naming ``what``=path (and ``hint``)."""
    named = f"{what}={str(path)!r}"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a state dict"
        raise ValueError(f"{named} is not a loadable state dict ({type(err).__name__}){hint}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = {k.removeprefix("model."): v for k, v in state["state_dict"].items()}
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{named} holds a {type(state).__name__}, not a state dict of tensors{hint}")
    _load_state(net, state, named)
    return net


def state_mismatch(expected: dict, state: dict) -> str | None:
    """How ``state`` (a state dict) does not fit a model whose own state dict is ``expected``: the first missing
    key, unexpected key or size mismatch (with how many more), as one line; ``None`` when it fits.
    Checked before loading: ``load_state_dict`` copies what fits before it raises for what does not."""
    def first(kind: str, keys: list[str]) -> str:
        more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
        return f"{kind} {keys[0]}{more}"

    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        return first("missing key", missing) + (f"; unexpected key {unexpected[0]}" if unexpected else "")
    if unexpected:
        return first("unexpected key", unexpected)
    shapes = [k for k in expected if not isinstance(state[k], torch.Tensor) or state[k].shape != expected[k].shape]
    if shapes:
        k = shapes[0]
        got = list(state[k].shape) if isinstance(state[k], torch.Tensor) else type(state[k]).__name__
        more = f" (and {len(shapes) - 1} more)" if len(shapes) > 1 else ""
        return f"size mismatch for {k}: the file has {got}, this model {list(expected[k].shape)}{more}"
    return None


def _load_state(net: nn.Module, state: dict, what: str) -> None:
    """``net.load_state_dict(state)`` (strict) with the first mismatch as a one-line ValueError."""
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        first = lines[1] if len(lines) > 1 else lines[0] if lines else type(err).__name__
        raise ValueError(f"{what} does not fit {type(net).__name__}: {first}") from None


def pretrained_cache_file(weights_enum: str) -> Path:
    """Where torch hub keeps (and looks for) the torchvision ImageNet weights: TORCH_HOME/hub/checkpoints."""
    from torchvision import models as tvm

    url = getattr(tvm, weights_enum).IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def _load_pretrained(net: nn.Module, name: str, weights_enum: str) -> None:
    """torchvision's weights API (``VGG19_Weights.IMAGENET1K_V1`` ...): its URL, fetched through the torch hub
    cache (TORCH_HOME/hub/checkpoints) as ``WeightsEnum.get_state_dict`` does, but loaded with
    ``weights_only=True`` (DESIGN.md 2.5). Offline with a cold cache, a corrupt cached file, or weights that
    do not fit: one line saying what to do."""
    from torchvision import models as tvm

    weights = getattr(tvm, weights_enum).IMAGENET1K_V1
    cached = pretrained_cache_file(weights_enum)
    what = f"{weights_enum}.IMAGENET1K_V1 for {name}"
    was_cached = cached.is_file()
    try:
        state = torch.hub.load_state_dict_from_url(weights.url, progress=False, check_hash=True,
                                                   weights_only=True)
    except Exception as err:  # noqa: BLE001 - offline, proxy, bad hash, corrupt cache ...
        reason = f"{type(err).__name__}: {' '.join(str(err).split())[:120]}"
        if was_cached:
            raise RuntimeError(
                f"model.pretrained=true: the cached {what} at {cached} cannot be loaded ({reason}); delete "
                f"that file and retry with internet, or pass model.weights_path=/path/to/{name}.pth") from None
        raise RuntimeError(
            f"model.pretrained=true could not download {what} from {weights.url} ({reason}); where you have "
            f"internet, download that file and put it at {cached} (TORCH_HOME/hub/checkpoints), or pass "
            f"model.weights_path=/path/to/{name}.pth, or set model.pretrained=false") from None
    _load_state(net, state, f"model.pretrained=true ({cached})")


def build(name: str, pretrained: bool = False, num_classes: int = 1000, weights_path: str | None = None,
          target_layer: str | None = None, **kwargs) -> nn.Module:
    """Build ``name`` with in-place ops off; ``net.target_layer`` / ``net.last_pool`` name its layers.

    ``pretrained`` uses torchvision's weights API; ``weights_path`` loads a local state dict with
    ``weights_only=True`` (and, when both are given, replaces the download); both fail with one line
    saying what to do.
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODEL_NAMES)}")
    if name in SMALL_MODELS:
        if pretrained:
            raise ValueError(f"model.pretrained=true is not available for {name}; it is trained from scratch "
                             f"(synthetic benchmark, Fashion-MNIST): leave pretrained=false")
        net = SMALL_MODELS[name](num_classes=num_classes, **kwargs)
        layer, last_pool = net.target_layer, net.last_pool
    else:
        make, layer, last_pool, weights_enum = TORCHVISION_SPECS[name]
        if pretrained and num_classes != 1000:
            raise ValueError(f"model.num_classes={num_classes} with pretrained ImageNet weights; "
                             f"allowed: 1000")
        net = make(num_classes)
        if pretrained and not weights_path:   # a local file replaces the download (it would overwrite it)
            _load_pretrained(net, name, weights_enum)
    if weights_path:
        _load_weights_file(net, weights_path)
    disable_inplace(net)
    net.target_layer = target_layer or layer
    net.last_pool = last_pool
    resolve_module(net, net.target_layer)
    return net

