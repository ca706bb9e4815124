"""models: target layers (input of that module), no in-place ops, DenseNet's head, and one line for every way
pretrained / local weights can fail (offline download, corrupt cache, not a state dict, does not fit)."""
from __future__ import annotations

import urllib.error

import pytest
import torch
from torch import nn

from interpfool import models
from interpfool.experiment.cli import BadInput
from interpfool.experiment.build import checked_build
from interpfool.models.builders import pretrained_cache_file

SHAPES = {"small_vgg": ("features.11", (128, 16, 16), "avgpool"),
          "small_resnet": ("layer3.1", (64, 16, 16), "avgpool"),
          "small_densenet": ("features.denseblock2.denselayer4", (72, 16, 16), "avgpool"),
          "vgg19": ("features.34", (512, 4, 4), "features.36"),
          "resnet50": ("layer4.2", (2048, 2, 2), "avgpool"),
          "densenet121": ("features.denseblock4.denselayer16", (992, 2, 2), "avgpool")}


@pytest.mark.parametrize("arch", list(SHAPES))
def test_target_layer_is_the_input_of_that_module_and_nothing_acts_in_place(arch):
    layer, shape, pool = SHAPES[arch]
    net = models.build(arch, num_classes=3).eval()
    assert net.target_layer == layer and net.last_pool == pool
    assert not [n for n, m in net.named_modules() if getattr(m, "inplace", False)]
    x = torch.randn(1, 3, 64, 64)
    seen = {}
    handle = models.resolve_module(net, layer).register_forward_pre_hook(
        lambda _m, args: seen.setdefault("input", args[0]))
    with models.capture_inputs(net, [layer]) as store:
        logits = net(x)
    handle.remove()
    assert store[layer].shape == (1, *shape) and logits.shape == (1, 3)
    assert store[layer] is seen["input"]   # the very tensor the module gets (a cut: test_target_layer_cut.py)
    if "densenet" in arch:   # DenseNet's head: torchvision's F.relu(inplace=True) would clip the features in place
        out = {}
        net.features.register_forward_hook(lambda _m, _a, o: out.setdefault("f", o))
        net(x)
        assert out["f"]._version == 0 and (out["f"] < 0).any()


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))   # an empty hub cache
    return tmp_path / "torch_home"


def _pretrained(compose_cfg, arch="resnet50", extra=()):
    return compose_cfg([f"model={arch}", "model.pretrained=true", "model.num_classes=1000", *extra])


@pytest.mark.parametrize("how", ["urlopen", "load_state_dict_from_url"])
def test_pretrained_offline_stops_with_one_line_saying_where_the_file_goes(compose_cfg, torch_home, monkeypatch,
                                                                           how):
    def refuse(*_a, **_k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(torch.hub, how, refuse)
    with pytest.raises(BadInput) as err:
        checked_build(_pretrained(compose_cfg))
    message = str(err.value)
    cached = pretrained_cache_file("ResNet50_Weights")
    assert str(cached).startswith(str(torch_home)) and cached.name == "resnet50-0676ba61.pth"
    assert "\n" not in message
    assert "model.pretrained=true could not download ResNet50_Weights.IMAGENET1K_V1 for resnet50" in message
    assert "URLError" in message and f"put it at {cached}" in message
    assert "model.weights_path=/path/to/resnet50.pth" in message and "model.pretrained=false" in message
    assert not cached.exists()


def test_pretrained_corrupt_cached_file(compose_cfg, torch_home):
    cached = pretrained_cache_file("ResNet50_Weights")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"half a download")
    with pytest.raises(BadInput) as err:
        checked_build(_pretrained(compose_cfg, "resnet50"))
    assert f"the cached ResNet50_Weights.IMAGENET1K_V1 for resnet50 at {cached} cannot be loaded" in str(err.value)
    assert "delete that file" in str(err.value) and "\n" not in str(err.value)


def test_pretrained_cached_weights_that_do_not_fit(compose_cfg, torch_home):
    cached = pretrained_cache_file("DenseNet121_Weights")
    cached.parent.mkdir(parents=True)
    torch.save({"fc.weight": torch.zeros(2, 2)}, cached)
    with pytest.raises(BadInput) as err:
        checked_build(_pretrained(compose_cfg, "densenet121"))
    assert "does not fit DenseNet121: Missing key(s) in state_dict" in str(err.value) and "\n" not in str(err.value)


def test_pretrained_loads_from_a_warm_hub_cache_with_weights_only(compose_cfg, torch_home, monkeypatch):
    reference = models.build("densenet121", num_classes=1000)
    cached = pretrained_cache_file("DenseNet121_Weights")
    cached.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cached)
    calls = []
    original = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k.get("weights_only")) or original(*a, **k))
    net = checked_build(_pretrained(compose_cfg, "densenet121")).net
    assert calls == [True]
    assert torch.equal(net.classifier.weight, reference.classifier.weight)


def test_pretrained_needs_1000_classes_and_a_torchvision_model(compose_cfg):
    with pytest.raises(BadInput, match="model.num_classes=4 with pretrained ImageNet weights; allowed: 1000"):
        checked_build(compose_cfg(["model=vgg19", "model.pretrained=true", "model.num_classes=4"]))
    with pytest.raises(BadInput, match="model.pretrained=true is not available for small_vgg"):
        checked_build(compose_cfg(["model.pretrained=true"]))


def test_weights_path_replaces_the_download(compose_cfg, torch_home, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("downloaded"))
    ref = models.build("small_vgg", num_classes=8, width=4)
    torch.save(ref.state_dict(), tmp_path / "w.pt")
    net = checked_build(compose_cfg(["model.width=4", f"model.weights_path={tmp_path / 'w.pt'}"])).net
    assert torch.equal(net.features[0].weight, ref.features[0].weight)


@pytest.mark.parametrize("model, content, expected", [
    ("small_vgg", None, "does not exist; give a state-dict file saved with torch.save(model.state_dict(), path)"),
    ("small_vgg", b"not a checkpoint", "is not a loadable state dict (UnpicklingError); save one with torch.save"),
    ("small_vgg", {"lr": 0.1, "epoch": 3}, "holds a dict, not a state dict of tensors"),
    ("small_vgg", [torch.zeros(2)], "holds a list, not a state dict of tensors"),
    ("small_vgg", "width8", "does not fit SmallVGG: size mismatch for features.0.weight"),
    ("vgg19", "width4", "does not fit VGG: Missing key(s) in state_dict"),
])
def test_weights_path_failures_are_one_line(compose_cfg, tmp_path, model, content, expected):
    path = tmp_path / "w.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content in ("width4", "width8"):
        torch.save(models.build("small_vgg", num_classes=4, width=int(content[5:])).state_dict(), path)
    elif content is not None:
        torch.save(content, path)
    cfg = compose_cfg([f"model={model}", "data.num_classes=4", "model.width=4" if model == "small_vgg" else
                       "model.target_layer=null", f"model.weights_path={path}"])
    with pytest.raises(BadInput) as err:
        checked_build(cfg)
    assert expected in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert f"model.weights_path={str(path)!r}" in str(err.value)
